//! Walk a whole dataset and report every problem, not just the first: index files, every image
//! decoded, every box against its image, every mask against its image, every visible part.

use std::fmt;
use std::path::Path;

use rayon::prelude::*;

use crate::dataset::{Dataset, ImageRecord};
use crate::error::CubError;
use crate::progress::Progress;
use crate::split::{SplitKind, Subset};

/// Counts that describe a dataset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Classes in `classes.txt`.
    pub classes: usize,
    /// Images whose index lines all parse.
    pub images: usize,
    /// Images decoded without error.
    pub decoded: usize,
    /// Greyscale images (converted to RGB on loading).
    pub greyscale: usize,
    /// Official split: training images.
    pub official_train: usize,
    /// Official split: test images.
    pub official_test: usize,
    /// Class-disjoint split: training images.
    pub disjoint_train: usize,
    /// Class-disjoint split: evaluation images.
    pub disjoint_eval: usize,
    /// Masks read and matching their image.
    pub masks: usize,
    /// Whether a segmentation root was given.
    pub has_segmentations: bool,
    /// Images with part annotations.
    pub images_with_parts: usize,
    /// Visible part annotations.
    pub visible_parts: usize,
}

/// The outcome of [`validate()`].
#[derive(Debug, Default)]
pub struct Report {
    /// Every problem found, index files first, then images in id order.
    pub problems: Vec<CubError>,
    /// What the dataset holds.
    pub summary: Summary,
}

impl Report {
    /// Whether no problem was found.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// What checking one image found.
#[derive(Default)]
struct ImageCheck {
    problems: Vec<CubError>,
    decoded: bool,
    greyscale: bool,
    mask: bool,
}

/// Check a dataset completely: parse the index files, decode every image, check every box, mask
/// and visible part against its image. `progress` advances once per image.
pub fn validate(root: &Path, segmentations: Option<&Path>, progress: &dyn Progress) -> Report {
    let mut problems = Vec::new();
    let mut ds = Dataset::read(root, segmentations, &mut problems);
    let has_segmentations = ds.segmentations.is_some();
    if let Err(e) = ds.check_segmentation_folder(&ds.images) {
        // One problem for the folder, not one per image.
        problems.push(e);
        ds.segmentations = None;
    }
    progress.start(ds.images.len() as u64);
    let checks: Vec<ImageCheck> =
        ds.images.par_iter().map(|r| check(&ds, r)).inspect(|_| progress.advance(1)).collect();

    let count = |kind| ds.split(kind, &Subset::default()).map(|s| (s.train.len(), s.eval.len()));
    let (official_train, official_test) = count(SplitKind::Official).unwrap_or_default();
    let (disjoint_train, disjoint_eval) = count(SplitKind::ClassDisjoint).unwrap_or_default();
    let summary = Summary {
        classes: ds.classes.len(),
        images: ds.images.len(),
        decoded: checks.iter().filter(|c| c.decoded).count(),
        greyscale: checks.iter().filter(|c| c.greyscale).count(),
        official_train,
        official_test,
        disjoint_train,
        disjoint_eval,
        masks: checks.iter().filter(|c| c.mask).count(),
        has_segmentations,
        images_with_parts: ds.images.iter().filter(|r| !r.parts.is_empty()).count(),
        visible_parts: ds.images.iter().flat_map(|r| &r.parts).filter(|p| p.visible).count(),
    };
    problems.extend(checks.into_iter().flat_map(|c| c.problems));
    Report { problems, summary }
}

fn check(ds: &Dataset, rec: &ImageRecord) -> ImageCheck {
    let mut out = ImageCheck::default();
    let path = ds.image_path(rec);
    let img = match crate::load::open_image(&path, rec.id) {
        Ok(img) => img,
        Err(e) => {
            out.problems.push(e);
            return out;
        }
    };
    out.decoded = true;
    out.greyscale = !img.color().has_color();
    let (w, h) = (img.width(), img.height());
    drop(img);
    if !rec.bbox.inside(w, h, 1.0) || rec.bbox.area() <= 0.0 {
        out.problems.push(ds.box_outside(rec, w, h));
    }
    for p in rec.parts.iter().filter(|p| p.visible) {
        if p.x < 0.0 || p.y < 0.0 || p.x > w as f32 + 1.0 || p.y > h as f32 + 1.0 {
            out.problems.push(CubError::Invalid(format!(
                "{}: image id {}: visible part {} at ({}, {}) lies outside the {w}×{h} image",
                ds.root.join("parts/part_locs.txt").display(),
                rec.id,
                p.part_id,
                p.x,
                p.y
            )));
        }
    }
    match ds.read_mask(rec) {
        Ok(m) => out.mask = m.is_some(),
        Err(e) => out.problems.push(e),
    }
    out
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "classes               {}", self.classes)?;
        writeln!(
            f,
            "images                {} ({} decoded, {} greyscale)",
            self.images, self.decoded, self.greyscale
        )?;
        writeln!(
            f,
            "official split        {} train / {} test",
            self.official_train, self.official_test
        )?;
        writeln!(
            f,
            "class-disjoint split  {} train / {} eval",
            self.disjoint_train, self.disjoint_eval
        )?;
        if self.has_segmentations {
            writeln!(f, "masks                 {} of {}", self.masks, self.images)?;
        } else {
            writeln!(f, "masks                 none (no segmentation folder given)")?;
        }
        write!(
            f,
            "parts                 {} images annotated, {} visible parts",
            self.images_with_parts, self.visible_parts
        )
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.problems {
            writeln!(f, "problem: {p}")?;
        }
        writeln!(f, "{}", self.summary)?;
        match self.problems.len() {
            0 => write!(f, "ok: no problems found"),
            n => write!(f, "{n} problem(s) found"),
        }
    }
}
