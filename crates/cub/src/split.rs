//! Train/evaluation splits and deterministic subsets for quick runs.
//!
//! - *Class-disjoint* (the metric-learning convention, default): the first half of the classes
//!   (by id) trains, the rest is evaluated; on CUB, classes 1–100 / 101–200. With an odd number of
//!   classes the extra class goes to evaluation.
//! - *Official*: CUB's `train_test_split.txt`, over all classes.
//!
//! A [`Subset`] first keeps the first N classes (by id), then at most M images per class (lowest
//! ids first), and only then splits: the same options always give the same images.

use std::collections::BTreeMap;

use crate::dataset::Dataset;
use crate::error::{CubError, Result};

/// Which split to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SplitKind {
    /// First half of the classes trains, the rest is evaluated.
    #[default]
    ClassDisjoint,
    /// `train_test_split.txt`.
    Official,
}

impl std::fmt::Display for SplitKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SplitKind::ClassDisjoint => "class-disjoint",
            SplitKind::Official => "official",
        })
    }
}

impl std::str::FromStr for SplitKind {
    type Err = CubError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "class-disjoint" => Ok(SplitKind::ClassDisjoint),
            "official" => Ok(SplitKind::Official),
            _ => Err(CubError::Invalid(format!(
                "unknown split `{s}`; use `class-disjoint` or `official`"
            ))),
        }
    }
}

/// Limits for quick runs; `None` keeps everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Subset {
    /// Keep only the first N classes (by id).
    pub max_classes: Option<usize>,
    /// Keep at most M images per class (lowest image ids first).
    pub max_per_class: Option<usize>,
}

/// A split: indices into [`Dataset::images`], sorted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// How it was made.
    pub kind: SplitKind,
    /// Training images.
    pub train: Vec<usize>,
    /// Evaluation images.
    pub eval: Vec<usize>,
    /// Class ids with training images.
    pub train_classes: Vec<u32>,
    /// Class ids with evaluation images.
    pub eval_classes: Vec<u32>,
}

impl Dataset {
    /// Make a split of (a subset of) the dataset. Fails when a side would be empty.
    pub fn split(&self, kind: SplitKind, subset: &Subset) -> Result<Split> {
        let mut class_ids: Vec<u32> = self.classes.iter().map(|c| c.id).collect();
        if let Some(n) = subset.max_classes {
            class_ids.truncate(n);
        }
        // Images per kept class, in id order (images are sorted by id).
        let mut by_class: BTreeMap<u32, Vec<usize>> =
            class_ids.iter().map(|&c| (c, Vec::new())).collect();
        for (k, rec) in self.images.iter().enumerate() {
            if let Some(v) = by_class.get_mut(&rec.class_id)
                && subset.max_per_class.is_none_or(|m| v.len() < m)
            {
                v.push(k);
            }
        }
        let n_train_classes = class_ids.len() / 2;
        let (mut train, mut eval) = (Vec::new(), Vec::new());
        for (rank, idx) in by_class.values().enumerate() {
            for &k in idx {
                let to_train = match kind {
                    SplitKind::ClassDisjoint => rank < n_train_classes,
                    SplitKind::Official => self.images[k].is_train,
                };
                if to_train { train.push(k) } else { eval.push(k) }
            }
        }
        train.sort_unstable();
        eval.sort_unstable();
        let classes_of = |idx: &[usize]| {
            let mut c: Vec<u32> = idx.iter().map(|&k| self.images[k].class_id).collect();
            c.sort_unstable();
            c.dedup();
            c
        };
        let split = Split {
            kind,
            train_classes: classes_of(&train),
            eval_classes: classes_of(&eval),
            train,
            eval,
        };
        if split.train.is_empty() || split.eval.is_empty() {
            return Err(CubError::Invalid(format!(
                "the {kind} split of {} with {subset:?} leaves {} training and {} evaluation \
                 images; both need at least one (use more classes or images)",
                self.root.display(),
                split.train.len(),
                split.eval.len()
            )));
        }
        Ok(split)
    }
}
