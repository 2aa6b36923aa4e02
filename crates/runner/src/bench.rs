//! `embcam bench`: throughput of the harness's hot paths on a chosen device — training steps and
//! inference (the model crate's measurement), EmbeddingCAM heatmaps by autodiff and in closed
//! form, and metric scoring — printed as a markdown table with the machine and the command, so a
//! result can be pasted into `results/` as it is. The criterion benches of each crate measure the
//! same things on flex with statistics; this command is for devices (`tch-cpu`, `tch-cuda`) and
//! networks the benches do not cover.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::module::Module;
use burn::tensor::{Tensor, TensorData};
use embcam_cam::{CamOptions, ClosedForm, Method, ProxyBatch, explain};
use embcam_eval::{BaselineMap, EvalConfig, ImageTruth, score_image};
use embcam_model::bench::{BenchConfig, measure};
use embcam_model::{BackboneKind, NetConfig, Staged};

use crate::cli::BenchArgs;

/// A deterministic pseudo-random stream in `[-1, 1)` (speed does not depend on the values).
fn values(n: usize, salt: usize) -> Vec<f32> {
    (0..n).map(|i| (((i + salt) * 7919) % 1000) as f32 / 500.0 - 1.0).collect()
}

/// Seconds per call of `f`, after one untimed call, over `iters` calls.
fn seconds_per_call(iters: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    let start = Instant::now();
    for _ in 0..iters {
        f()?;
    }
    Ok(start.elapsed().as_secs_f64() / iters as f64)
}

/// Every number within its range (in `--help`), before a tensor is made: a size below the
/// network's downsampling would fail inside a convolution, a huge one exhaust memory.
fn check_args(a: &BenchArgs) -> Result<()> {
    let backbone: BackboneKind = a.backbone.parse()?;
    let min = crate::config::min_input_side(backbone);
    if !(min..=1024).contains(&a.size) {
        bail!(
            "--size {} is out of range for {backbone}: it must be {min}–1024 (the network \
             downsamples by {min})",
            a.size
        );
    }
    if !(4..=1024).contains(&a.batch) || !a.batch.is_multiple_of(4) {
        bail!("--batch {} must be a multiple of 4 from 4 to 1024", a.batch);
    }
    if !(1..=4096).contains(&a.dim) {
        bail!("--dim {} is out of range: it must be 1–4096", a.dim);
    }
    if !(1..=1000).contains(&a.iters) {
        bail!("--iters {} is out of range: it must be 1–1000", a.iters);
    }
    if let Some(p) = a.proxies.iter().find(|p| !(1..=1024).contains(*p)) {
        bail!("--proxies {p} is out of range: each must be 1–1024");
    }
    Ok(())
}

/// Run the benchmark; returns the markdown report.
pub fn bench(a: &BenchArgs) -> Result<String> {
    check_args(a)?;
    let device = embcam_model::device::parse_device(&a.device)?;
    let backbone: BackboneKind = a.backbone.parse()?;
    let net_cfg = NetConfig::embedding(backbone, a.dim, true);
    let mut rows: Vec<(String, String, f64, &str)> = Vec::new();
    let pb = crate::progress::bar("bench");
    pb.set_length(2 + 2 * a.proxies.len() as u64 + 1);

    let r = measure(
        &BenchConfig {
            net: net_cfg.clone(),
            input_size: a.size,
            batch: a.batch,
            warmup: 1,
            iters: a.iters,
        },
        &device,
    )?;
    rows.push((
        "training step (forward, triplet loss, backward, Adam)".into(),
        a.batch.to_string(),
        r.train_images_per_sec,
        "images/s",
    ));
    rows.push(("inference".into(), a.batch.to_string(), r.infer_images_per_sec, "images/s"));
    rows.push((
        "inference, BatchNorm folded into the convolutions".into(),
        a.batch.to_string(),
        r.infer_folded_images_per_sec,
        "images/s",
    ));
    pb.inc(2);

    let net = net_cfg.init(&device, 0)?.valid();
    let stage = net.stage_names().last().context("a network has stages")?.to_string();
    let x = Tensor::<4>::from_data(
        TensorData::new(values(a.batch * 3 * a.size * a.size, 0), [a.batch, 3, a.size, a.size]),
        &device,
    );
    for &p in &a.proxies {
        let vectors = (0..a.batch)
            .map(|b| (0..p).map(|k| values(a.dim, 31 * (b * p + k) + 1)).collect())
            .collect();
        let proxies = ProxyBatch::from_vectors(
            (0..a.batch as u32).collect(),
            (0..p).map(|k| format!("p{k}")).collect(),
            vectors,
        )?;
        for (name, closed) in [("autodiff", ClosedForm::Off), ("closed form", ClosedForm::Require)]
        {
            let mut opts = CamOptions::new(stage.clone());
            opts.closed_form = closed;
            let s = seconds_per_call(a.iters, || {
                explain(&net, x.clone(), &proxies, Method::GradCam, &opts, &embcam_cub::Silent)?;
                Ok(())
            })?;
            rows.push((
                format!(
                    "EmbeddingCAM at {stage}, {p} prox{} per image, {name}",
                    if p == 1 { "y" } else { "ies" }
                ),
                a.batch.to_string(),
                (a.batch * p) as f64 / s,
                "heatmaps/s",
            ));
            pb.inc(1);
        }
    }

    // Scoring one heatmap against its box and mask at CUB's typical 500 × 375 (CPU, rayon-free).
    let (w, h) = (500u32, 375u32);
    let inside = |i: u32| (150..350).contains(&(i % w)) && (100..300).contains(&(i / w));
    let soft: Vec<u8> = (0..w * h).map(|i| if inside(i) { 255 } else { 0 }).collect();
    let truth = ImageTruth {
        id: 1,
        width: w,
        height: h,
        bbox: embcam_cub::BBox::from_corners(150.0, 100.0, 350.0, 300.0),
        mask: Some(embcam_cub::Mask { width: w, height: h, soft }),
        parts: Vec::new(),
        discriminative_part: None,
    };
    let map = BaselineMap::CentreGaussian { sigma: 0.25 }.heatmap(&truth);
    let cfg = EvalConfig::default();
    let n = 20 * a.iters;
    let s = seconds_per_call(n, || {
        score_image(&map, &truth, &cfg)?;
        Ok(())
    })?;
    rows.push((
        "all per-image metrics, one 500×375 map, one core".into(),
        "1".into(),
        1.0 / s,
        "maps/s",
    ));
    pb.finish_and_clear();

    let mut md = String::new();
    writeln!(md, "# embcam bench: {} on {}", a.backbone, a.device)?;
    writeln!(md)?;
    writeln!(md, "- command: `embcam {}`", std::env::args().skip(1).collect::<Vec<_>>().join(" "))?;
    writeln!(md, "- machine: {}", machine())?;
    writeln!(
        md,
        "- network: {} at {}², embedding d = {} (L2), random weights; {} timed iterations after one untimed",
        a.backbone, a.size, a.dim, a.iters
    )?;
    writeln!(
        md,
        "- embcam {} (build profile: {})",
        env!("CARGO_PKG_VERSION"),
        if cfg!(debug_assertions) { "dev, dependencies optimised" } else { "release" }
    )?;
    writeln!(md)?;
    writeln!(md, "| what | batch | throughput | unit |")?;
    writeln!(md, "|---|---:|---:|---|")?;
    for (what, batch, v, unit) in rows {
        writeln!(md, "| {what} | {batch} | {v:.1} | {unit} |")?;
    }
    Ok(md)
}

/// CPU model and core count, from `/proc/cpuinfo` where there is one.
fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    format!("{model}, {cores} cores available")
}

/// `embcam bench` as a command: print the report, and write it to `--out` when given (never over
/// an existing file).
pub fn command(a: &BenchArgs) -> Result<()> {
    let md = bench(a)?;
    print!("{md}");
    if let Some(out) = &a.out {
        write_new(out, &md)?;
        println!("written to {}", out.display());
    }
    Ok(())
}

fn write_new(path: &Path, text: &str) -> Result<()> {
    if path.exists() {
        bail!(
            "{} exists; choose another --out (earlier results are never overwritten)",
            path.display()
        );
    }
    crate::store::write_atomic(path, text.as_bytes())
}
