//! P×K sampler invariants.

use std::collections::{BTreeMap, BTreeSet};

use embcam_model::sampler::PkSampler;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn check_batches(labels: &[u32], p: usize, k: usize, batches: &[Vec<usize>]) {
    let min_class = {
        let mut counts: BTreeMap<u32, usize> = BTreeMap::new();
        labels.iter().for_each(|&c| *counts.entry(c).or_default() += 1);
        counts.values().copied().min().unwrap_or(0)
    };
    for batch in batches {
        assert_eq!(batch.len(), p * k);
        let mut per_class: BTreeMap<u32, usize> = BTreeMap::new();
        for &i in batch {
            *per_class.entry(labels[i]).or_default() += 1;
        }
        assert_eq!(per_class.len(), p, "P distinct classes");
        assert!(per_class.values().all(|&n| n == k), "K per class: {per_class:?}");
        if min_class >= k {
            let unique: BTreeSet<_> = batch.iter().collect();
            assert_eq!(unique.len(), batch.len(), "no repeats when every class has ≥ K items");
        }
    }
}

#[test]
fn batches_have_p_classes_of_k_and_are_reproducible() {
    let mut rng = StdRng::seed_from_u64(3);
    for trial in 0..20 {
        let classes = rng.random_range(4..12u32);
        let labels: Vec<u32> =
            (0..rng.random_range(40..120)).map(|_| rng.random_range(0..classes)).collect();
        let p = rng.random_range(2..4);
        let k = rng.random_range(2..4);
        let Ok(sampler) = PkSampler::new(&labels, p, k) else { continue };
        let a = sampler.epoch(trial, 0);
        check_batches(&labels, p, k, &a);
        assert_eq!(a, sampler.epoch(trial, 0), "same seed and epoch -> same batches");
        assert_ne!(a, sampler.epoch(trial, 1), "another epoch -> other batches");
        assert_ne!(a, sampler.epoch(trial + 100, 0), "another seed -> other batches");
    }
}

#[test]
fn balanced_classes_are_covered_exactly_once_per_epoch() {
    // 6 classes × 8 items, P = 3, K = 4: 12 chunks, 4 batches, every item exactly once.
    let labels: Vec<u32> = (0..48).map(|i| (i % 6) as u32).collect();
    let sampler = PkSampler::new(&labels, 3, 4).expect("sampler");
    let batches = sampler.epoch(5, 2);
    assert_eq!(batches.len(), 4);
    check_batches(&labels, 3, 4, &batches);
    let mut all: Vec<usize> = batches.concat();
    all.sort();
    assert_eq!(all, (0..48).collect::<Vec<_>>());
}

#[test]
fn small_classes_are_drawn_with_replacement() {
    // class 0 has one item: its chunk repeats it K times.
    let labels = vec![0, 1, 1, 1, 2, 2, 2];
    let sampler = PkSampler::new(&labels, 3, 3).expect("sampler");
    let batches = sampler.epoch(0, 0);
    assert_eq!(batches.len(), 1);
    check_batches(&labels, 3, 3, &batches);
    assert_eq!(batches[0].iter().filter(|&&i| i == 0).count(), 3);
}

#[test]
fn too_few_classes_or_tiny_p_k_are_refused() {
    let labels = vec![0, 0, 1, 1];
    assert!(PkSampler::new(&labels, 3, 2).is_err());
    assert!(PkSampler::new(&labels, 2, 1).is_err());
    assert!(PkSampler::new(&labels, 1, 2).is_err());
}
