//! Images decoded + resized + normalised per second, on CUB-sized (500 px long side) SynthCUB JPEGs.
//!
//! `cargo bench -p embcam-cub --bench decode`; numbers are recorded in `results/bench-data.md`.
#![allow(missing_docs, clippy::unwrap_used)]

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use embcam_cub::load::{EvalTransform, TrainTransform, Transform, load_batch};
use embcam_cub::synth::{SynthConfig, generate};
use embcam_cub::{Dataset, Silent};

fn decode(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = SynthConfig {
        classes: 4,
        images_per_class: 16,
        min_side: 500,
        max_side: 500,
        seed: 0,
        ..SynthConfig::default()
    };
    generate(&dir.path().join("s"), &cfg, &Silent).unwrap();
    let ds = Dataset::open(&dir.path().join("s/CUB_200_2011"), None).unwrap();
    let idx: Vec<usize> = (0..ds.images.len()).collect();
    let mut g = c.benchmark_group("decode_resize_normalise");
    g.throughput(Throughput::Elements(idx.len() as u64));
    g.sample_size(10).measurement_time(Duration::from_secs(8));
    for (name, t) in [
        ("eval_crop_224", Transform::Eval(EvalTransform::center_crop(224))),
        ("train_rrc_224", Transform::Train(TrainTransform::new(224, 0))),
        ("eval_squash_128", Transform::Eval(EvalTransform::squash(128))),
    ] {
        g.bench_function(name, |b| b.iter(|| load_batch(&ds, &idx, &t, 0).unwrap()));
    }
    g.finish();
}

fn synth(c: &mut Criterion) {
    let mut g = c.benchmark_group("synth_generate");
    let cfg = SynthConfig {
        classes: 20,
        images_per_class: 40,
        min_side: 160,
        max_side: 256,
        ..SynthConfig::default()
    };
    g.throughput(Throughput::Elements(800));
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    g.bench_function("20x40_160-256px", |b| {
        b.iter_with_setup(
            || tempfile::tempdir().unwrap(),
            |dir| {
                generate(&dir.path().join("s"), &cfg, &Silent).unwrap();
                dir
            },
        )
    });
    g.finish();
}

criterion_group!(benches, decode, synth);
criterion_main!(benches);
