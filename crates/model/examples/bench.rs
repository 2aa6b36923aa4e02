//! Training and inference throughput of the small CNN and ResNet-18/50 on a device.
//!
//! `cargo run --release -p embcam-model --example bench -- [device] [iters] [only]`
//! (device: flex | tch-cpu | tch-cuda, default flex; iters default 3; `only` keeps the cases whose
//! `backbone-size` name starts with it, e.g. `small-cnn-96`). Prints a markdown table.
//! `tch-*` needs `--features tch` (see the crate README); LibTorch's CPU thread count follows
//! `OMP_NUM_THREADS`. flex is single-threaded unless burn's `rayon` feature is enabled
//! (`--features burn/rayon,burn/simd`). Numbers and exact commands: `results/bench-model.md`.

use embcam_model::bench::{BenchConfig, measure};
use embcam_model::{BackboneKind, NetConfig, parse_device};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let device_name = args.next().unwrap_or_else(|| "flex".into());
    let iters: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(3);
    let only = args.next().unwrap_or_default();
    let device = parse_device(&device_name)?;
    let cases = [
        (BackboneKind::SmallCnn, 96, 32),
        (BackboneKind::SmallCnn, 128, 32),
        (BackboneKind::Resnet18, 224, 16),
        (BackboneKind::Resnet50, 224, 16),
    ];
    println!("| model | input | batch | train img/s | inference img/s | inference, BN folded |");
    println!("|---|---|---|---|---|---|");
    for (backbone, input_size, batch) in cases {
        if !format!("{backbone}-{input_size}").starts_with(&only) {
            continue;
        }
        let cfg = BenchConfig {
            net: NetConfig::embedding(backbone, 128, true),
            input_size,
            batch,
            warmup: 1,
            iters,
        };
        let r = measure(&cfg, &device)?;
        println!(
            "| {backbone} | {input_size}² | {batch} | {:.1} | {:.1} | {:.1} |",
            r.train_images_per_sec, r.infer_images_per_sec, r.infer_folded_images_per_sec
        );
    }
    Ok(())
}
