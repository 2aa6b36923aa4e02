//! P×K batch sampler: every batch holds `P` distinct classes with `K` images each, so that every
//! anchor has positives and negatives (Hermans et al. 2017, "In Defense of the Triplet Loss").
//!
//! One epoch: each class's items are shuffled and cut into chunks of `K` (a class with fewer than
//! `K` items gives one chunk drawn with replacement; a remainder shorter than `K` is left for
//! another epoch). Batches are then formed by repeatedly taking one chunk from each of the `P`
//! classes with the most chunks left (ties broken by a random class order), until fewer than `P`
//! classes have chunks. Everything is drawn from `(seed, epoch)`, so the batches of an epoch can be
//! regenerated exactly, which is what makes resuming mid-run reproducible.

use std::collections::BTreeMap;

use rand::Rng;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::ModelError;

/// The sampler (see the module docs).
#[derive(Clone, Debug)]
pub struct PkSampler {
    p: usize,
    k: usize,
    /// Item indices by class, in ascending class order.
    by_class: BTreeMap<u32, Vec<usize>>,
}

impl PkSampler {
    /// A sampler over items `0..labels.len()` with class `labels[i]`.
    ///
    /// # Errors
    /// [`ModelError::InvalidConfig`] when `p < 2`, `k < 2`, or there are fewer than `p` classes.
    pub fn new(labels: &[u32], p: usize, k: usize) -> Result<Self, ModelError> {
        if p < 2 || k < 2 {
            return Err(ModelError::InvalidConfig(format!(
                "P×K sampler needs P ≥ 2 classes and K ≥ 2 images per class, got P = {p}, K = {k}"
            )));
        }
        let mut by_class: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        for (i, &c) in labels.iter().enumerate() {
            by_class.entry(c).or_default().push(i);
        }
        if by_class.len() < p {
            return Err(ModelError::InvalidConfig(format!(
                "P×K sampler: P = {p} classes per batch but the training split has only {} classes",
                by_class.len()
            )));
        }
        Ok(PkSampler { p, k, by_class })
    }

    /// Batch size `P·K`.
    pub fn batch_size(&self) -> usize {
        self.p * self.k
    }

    /// The batches of one epoch, as item indices (class-major within a batch).
    pub fn epoch(&self, seed: u64, epoch: u64) -> Vec<Vec<usize>> {
        // Mix seed and epoch (splitmix64 constant) so neighbouring epochs are unrelated streams.
        let mut rng =
            StdRng::seed_from_u64(seed ^ epoch.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let k = self.k;
        let mut chunks: Vec<(u32, Vec<Vec<usize>>)> = self
            .by_class
            .iter()
            .map(|(&c, items)| {
                let mut items = items.clone();
                items.shuffle(&mut rng);
                let list = if items.len() < k {
                    vec![(0..k).map(|_| items[rng.random_range(0..items.len())]).collect()]
                } else {
                    items.chunks_exact(k).map(|ch| ch.to_vec()).collect()
                };
                (c, list)
            })
            .collect();
        let mut batches = Vec::new();
        loop {
            let mut order: Vec<usize> =
                (0..chunks.len()).filter(|&i| !chunks[i].1.is_empty()).collect();
            if order.len() < self.p {
                break;
            }
            order.shuffle(&mut rng);
            order.sort_by_key(|&i| std::cmp::Reverse(chunks[i].1.len())); // stable: random ties
            let mut batch = Vec::with_capacity(self.batch_size());
            for &i in &order[..self.p] {
                if let Some(chunk) = chunks[i].1.pop() {
                    batch.extend(chunk);
                }
            }
            batches.push(batch);
        }
        batches
    }
}
