//! Heatmaps per second: by method, by batch size, and closed form vs autodiff at 1, 10 and 100
//! proxies per image. The small CNN (widths 32-64-128-256, d = 128, L2) at 128² on the flex CPU
//! backend, random weights (speed does not depend on training).
//!
//! `cargo bench -p embcam-cam --bench cam`; numbers are recorded in `results/bench-cam.md`.
#![allow(missing_docs, clippy::unwrap_used)]

use std::time::Duration;

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use embcam_cam::{CamOptions, ClosedForm, Method, ProxyBatch, explain};
use embcam_cub::Silent;
use embcam_model::{BackboneKind, Net, NetConfig};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const SIZE: usize = 128;
const DIM: usize = 128;

fn setup(batch: usize, n_proxies: usize) -> (Net, Tensor<4>, ProxyBatch) {
    let device = Device::flex();
    let net =
        NetConfig::embedding(BackboneKind::SmallCnn, DIM, true).init(&device, 0).unwrap().valid();
    let mut rng = StdRng::seed_from_u64(1);
    let mut rand =
        |n: usize| -> Vec<f32> { (0..n).map(|_| rng.random::<f32>() * 2.0 - 1.0).collect() };
    let x = Tensor::from_data(
        TensorData::new(rand(batch * 3 * SIZE * SIZE), [batch, 3, SIZE, SIZE]),
        &device,
    );
    let vectors = (0..batch).map(|_| (0..n_proxies).map(|_| rand(DIM)).collect()).collect();
    let proxies = ProxyBatch::from_vectors(
        (0..batch as u32).collect(),
        (0..n_proxies).map(|i| format!("p{i}")).collect(),
        vectors,
    )
    .unwrap();
    (net, x, proxies)
}

fn quick(g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    g.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
}

/// Every method at the last stage (`block4`, 8×8), batch 8, one proxy (Score-CAM: batch 1).
fn by_method(c: &mut Criterion) {
    let mut g = c.benchmark_group("method_block4_b8_p1");
    quick(&mut g);
    for m in Method::ALL {
        let batch = if m == Method::ScoreCam { 1 } else { 8 };
        let (net, x, proxies) = setup(batch, 1);
        g.throughput(Throughput::Elements(batch as u64));
        g.bench_function(m.name(), |b| {
            b.iter(|| {
                explain(&net, x.clone(), &proxies, m, &CamOptions::new("block4"), &Silent).unwrap()
            })
        });
    }
    g.finish();
}

/// Grad-CAM by autodiff at `block3` (16×16, deeper head) by batch size.
fn by_batch(c: &mut Criterion) {
    let mut g = c.benchmark_group("gradcam_autodiff_block3_by_batch");
    quick(&mut g);
    for batch in [1, 8, 32] {
        let (net, x, proxies) = setup(batch, 1);
        g.throughput(Throughput::Elements(batch as u64));
        g.bench_function(format!("b{batch}"), |b| {
            b.iter(|| {
                explain(
                    &net,
                    x.clone(),
                    &proxies,
                    Method::GradCam,
                    &CamOptions::new("block3"),
                    &Silent,
                )
                .unwrap()
            })
        });
    }
    g.finish();
}

/// Grad-CAM at `block4`, batch 8: closed form vs autodiff at 1, 10, 100 proxies per image
/// (throughput in heatmaps = images × proxies).
fn closed_form_vs_autodiff(c: &mut Criterion) {
    let mut g = c.benchmark_group("gradcam_block4_b8_by_proxies");
    quick(&mut g);
    for n_p in [1, 10, 100] {
        let (net, x, proxies) = setup(8, n_p);
        g.throughput(Throughput::Elements(8 * n_p as u64));
        for (name, cf) in [("closed_form", ClosedForm::Require), ("autodiff", ClosedForm::Off)] {
            let mut opts = CamOptions::new("block4");
            opts.closed_form = cf;
            g.bench_function(format!("{name}/p{n_p}"), |b| {
                b.iter(|| {
                    explain(&net, x.clone(), &proxies, Method::GradCam, &opts, &Silent).unwrap()
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, by_method, by_batch, closed_form_vs_autodiff);
criterion_main!(benches);
