//! All per-image metrics (box and mask ratio, localisation accuracy and its τ curve, the
//! MaxBoxAccV2 sweep, PxAP histograms, pointing, part pointing) for a CUB-test-sized split —
//! 5,794 maps of 500×375 — scored in parallel over images and summarised.
//!
//! Maps are CAM-like (a 14×14 grid bilinearly upsampled, as from a ResNet stage), partly on a
//! synthetic elliptical object. A pool of 64 distinct images is cycled so the bench's memory stays
//! small; every image is still scored from scratch.
//!
//! Run: `cargo bench -p embcam-eval --bench metrics -- --sample-size 10`

// `criterion_group!` generates an undocumented function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use embcam_cub::{BBox, Mask, PartLoc, resize_bilinear};
use embcam_eval::{EvalConfig, Heatmap, ImageTruth, evaluate};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;

const IMAGES: usize = 5_794;
const POOL: usize = 64;
const W: u32 = 500;
const H: u32 = 375;

fn image(rng: &mut StdRng, id: u32) -> (Heatmap, ImageTruth) {
    let (fw, fh) = (W as f32, H as f32);
    let (rx, ry) = (rng.random_range(0.1..0.3) * fw, rng.random_range(0.1..0.3) * fh);
    let (cx, cy) = (rng.random_range(rx..fw - rx), rng.random_range(ry..fh - ry));
    let soft: Vec<u8> = (0..W * H)
        .map(|p| {
            let dx = ((p % W) as f32 + 0.5 - cx) / rx;
            let dy = ((p / W) as f32 + 0.5 - cy) / ry;
            if dx * dx + dy * dy <= 1.0 { 255 } else { 0 }
        })
        .collect();
    let bbox = BBox::from_corners(cx - rx, cy - ry, cx + rx, cy + ry);
    let parts = (1..=15)
        .map(|part_id| PartLoc {
            part_id,
            x: cx + rng.random_range(-rx..rx),
            y: cy + rng.random_range(-ry..ry),
            visible: rng.random_bool(0.7),
        })
        .collect();
    // Coarse map: noise plus a bump on the object (or elsewhere, one time in three).
    let c = 14;
    let (bx, by) =
        if rng.random_bool(0.67) { (cx / fw, cy / fh) } else { (rng.random(), rng.random()) };
    let coarse: Vec<f32> = (0..c * c)
        .map(|k| {
            let (u, v) = (((k % c) as f32 + 0.5) / c as f32, ((k / c) as f32 + 0.5) / c as f32);
            let bump = (-((u - bx).powi(2) + (v - by).powi(2)) / 0.02).exp();
            (bump + 0.4 * rng.random::<f32>() - 0.2).max(0.0)
        })
        .collect();
    let map = Heatmap { width: W, height: H, values: resize_bilinear(&coarse, c, c, W, H) };
    let truth = ImageTruth {
        id,
        width: W,
        height: H,
        bbox,
        mask: Some(Mask { width: W, height: H, soft }),
        parts,
        discriminative_part: Some(2),
    };
    (map, truth)
}

fn bench(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(2402_00909);
    let pool: Vec<(Heatmap, ImageTruth)> = (0..POOL as u32).map(|id| image(&mut rng, id)).collect();
    let cfg = EvalConfig::default();
    let mut group = c.benchmark_group("eval");
    group.sample_size(10).measurement_time(Duration::from_secs(60));
    group.bench_function("all per-image metrics, 5794 maps 500x375", |b| {
        b.iter(|| {
            let items = (0..IMAGES).into_par_iter().map(|i| {
                let (map, truth) = &pool[i % POOL];
                (map, truth)
            });
            black_box(evaluate("bench", items, &cfg).expect("synthetic inputs are valid"))
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
