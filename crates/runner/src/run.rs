//! `embcam run`: every cell × seed of an experiment through the cached stages, then one run folder
//! with the resolved configuration, a manifest, per-image metrics (CSV + Parquet), summary tables
//! (markdown + CSV), plots and galleries.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use serde_json::json;

use crate::cli::ForceStage;
use crate::config;
use crate::pipeline;
use crate::report::{self, EpochPoint, FaithPoint, ReportData, TauPoint};
use crate::store::{self, write_atomic};
use crate::table;

/// How far to go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Until {
    /// Data and training.
    Train,
    /// Heatmaps.
    Explain,
    /// Scores (printed as a table; no run folder).
    Evaluate,
    /// Everything: a run folder with tables and plots.
    Report,
}

/// Run an experiment file as far as `until`; returns the run folder when one was written.
pub fn run(path: &Path, force: Option<ForceStage>, until: Until) -> Result<Option<PathBuf>> {
    let experiments = config::load(path)?;
    let first = &experiments[0];
    let exp_dir = first.file.output.dir.join(&first.name);
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut data = ReportData {
        baselines: first.file.eval.baselines.iter().map(|b| b.to_string()).collect(),
        ..Default::default()
    };
    let mut manifest_cells = Vec::new();
    let mut galleries = Vec::new();
    let mut warnings: Vec<String> = Vec::new();
    let mut gt_rows: Vec<report::benchmark::GtRow> = Vec::new();
    let mut sanity_points: Vec<report::benchmark::SanityPoint> = Vec::new();
    let started = Instant::now();
    for (i, exp) in experiments.iter().enumerate() {
        let what = if exp.cell.is_empty() {
            format!("seed {}", exp.seed)
        } else {
            format!("{} seed {}", exp.cell, exp.seed)
        };
        eprintln!("[{}/{}] {} {what}", i + 1, experiments.len(), exp.name);
        let t0 = Instant::now();
        let dataset = pipeline::data(exp)?;
        pipeline::check_against_data(exp, &dataset)
            .with_context(|| format!("in experiment file {}", path.display()))?;
        let t_data = t0.elapsed().as_secs_f64();
        for w in &dataset.warnings {
            if !warnings.contains(w) {
                eprintln!("warning: {w}");
                warnings.push(w.clone());
            }
        }
        let device = pipeline::device(&exp.file.model.device)?;
        let resolved = config::resolve(exp, dataset.split.train_classes.len());
        let job = pipeline::Job {
            exp_dir: &exp_dir,
            exp,
            resolved: &resolved,
            data: &dataset,
            device: &device,
            force,
        };
        let trained = pipeline::trained(&job)?;
        data.training.extend(trained.history.iter().map(|r| EpochPoint {
            cell: exp.cell.clone(),
            seed: exp.seed,
            epoch: r.epoch,
            loss: r.loss,
            map_at_r: r.val.map_at_r,
            recall_at_1: r.val.recall_at_1(),
        }));
        let verb = |reused: bool| if reused { "reused" } else { "computed" };
        eprintln!("  train: {} {}", verb(trained.reused), trained.stage.dir.display());
        if until == Until::Train {
            continue;
        }
        let explained = pipeline::explain(&job, &trained)?;
        eprintln!("  explain: {} {}", verb(explained.reused), explained.stage.dir.display());
        if until == Until::Explain {
            continue;
        }
        let scored = pipeline::evaluate(&job, &trained, &explained)?;
        eprintln!("  evaluate: {} {}", verb(scored.reused), scored.stage.dir.display());
        // The benchmark's tables are in the run folder only: `evaluate` leaves them out.
        let bench = match until {
            Until::Report => benchmark(&job, &trained, &mut gt_rows, &mut sanity_points)?,
            _ => (serde_json::Value::Null, serde_json::Value::Null),
        };
        let (stage, scored, explain_stage) = (scored.stage, scored.value, explained.stage);
        let (r, s) = scored.rows(exp);
        data.rows.extend(r);
        data.split.extend(s);
        for (k, curve) in &scored.tau_curves {
            data.tau.extend(curve.iter().map(|&(tau, loc_acc)| TauPoint {
                key: pipeline::stored_key(exp, k),
                seed: exp.seed,
                // The f32 grid value as written in decimal (0.01, not 0.009999999776).
                tau: tau.to_string().parse().unwrap_or(f64::from(tau)),
                loc_acc,
            }));
        }
        for (k, curve) in &scored.faith_curves {
            data.faith.extend(curve.iter().map(|&(fraction, deletion, insertion)| FaithPoint {
                key: pipeline::stored_key(exp, k),
                seed: exp.seed,
                fraction,
                deletion,
                insertion,
            }));
        }
        if i == 0 {
            galleries = pipeline::galleries(&explain_stage);
        }
        for w in &scored.warnings {
            if !warnings.contains(w) {
                eprintln!("warning: {w}");
                warnings.push(w.clone());
            }
        }
        manifest_cells.push(json!({
            "cell": exp.cell,
            "seed": exp.seed,
            "split": exp.file.dataset.split,
            "train_images": dataset.split.train.len(),
            "eval_images": dataset.split.eval.len(),
            "stages": {
                "data": {"key": dataset.key, "seconds": t_data},
                "train": {"dir": trained.stage.dir, "seconds": trained.stage.seconds()},
                "explain": {"dir": explain_stage.dir, "seconds": explain_stage.seconds()},
                "evaluate": {"dir": stage.dir, "seconds": stage.seconds()},
                "ground_truth": bench.0,
                "sanity": bench.1,
            },
        }));
    }
    match until {
        Until::Train | Until::Explain => return Ok(None),
        Until::Evaluate => {
            let baselines: Vec<&str> = data.baselines.iter().map(String::as_str).collect();
            println!(
                "{}",
                table::markdown(&table::summarize(&data.rows, &data.split, &baselines)?)
            );
            return Ok(None);
        }
        Until::Report => {}
    }

    let config_key = store::key_of(&(text.as_str(), env!("CARGO_PKG_VERSION")))?;
    // Held until the run folder is complete: no other process writes into it.
    let (run, _held) = store::run_dir(&exp_dir, &config_key)?;
    write_atomic(&run.join("config.toml"), text.as_bytes())?;
    let resolved: Vec<String> = experiments
        .iter()
        .map(|e| Ok(format!("# cell: {} seed: {}\n{}", e.cell, e.seed, toml::to_string(&e.file)?)))
        .collect::<Result<_>>()?;
    write_atomic(&run.join("config.resolved.toml"), resolved.join("\n").as_bytes())?;

    report::write_data(&run, &data)?;
    let mut summary = report::render(&run, &data)?;
    if !gt_rows.is_empty() {
        let md = report::benchmark::write_ground_truth(&run, &gt_rows, &data.baselines)?;
        summary.push_str(&format!("\nGround truth on SynthCUB's interventions:\n\n{md}"));
    }
    if !sanity_points.is_empty() {
        let md = report::benchmark::write_randomisation(&run, &sanity_points)?;
        summary.push_str(&format!("\nModel randomisation (sanity checks):\n\n{md}"));
    }
    let gdir = run.join("gallery");
    for g in &galleries {
        let name = g.file_name().context("gallery file name")?;
        std::fs::create_dir_all(&gdir).with_context(|| format!("creating {}", gdir.display()))?;
        std::fs::copy(g, gdir.join(name)).with_context(|| format!("copying {}", g.display()))?;
    }
    let manifest = json!({
        "experiment": first.name,
        "file": path,
        "embcam_version": env!("CARGO_PKG_VERSION"),
        "git_commit": git_commit(),
        "backend": first.file.model.device,
        "device": first.file.model.device,
        "seeds": first.file.seeds,
        "baselines": data.baselines,
        "cells": manifest_cells,
        // `embcam report` checks metrics.csv against it (a file cut at a line boundary parses).
        "metrics_rows": data.rows.len(),
        "warnings": warnings,
        "seconds": started.elapsed().as_secs_f64(),
    });
    write_atomic(&run.join("manifest.json"), &serde_json::to_vec_pretty(&manifest)?)?;
    write_atomic(&run.join("DONE"), b"")?;
    println!("{summary}");
    if !warnings.is_empty() {
        println!("warnings:\n  {}", warnings.join("\n  "));
    }
    println!("run folder: {}", run.display());
    for f in [
        "summary.md",
        "summary.csv",
        "metrics.csv",
        "metrics.parquet",
        "plots/",
        "gallery/",
        "manifest.json",
    ] {
        println!("  {}", run.join(f).display());
    }
    Ok(Some(run))
}

/// The `[benchmark]` stages of one experiment, when switched on: their rows into `gt_rows` and
/// `sanity`; returns each stage's folder and seconds for the manifest (`null` when off).
fn benchmark(
    job: &pipeline::Job<'_>,
    trained: &pipeline::Trained,
    gt_rows: &mut Vec<report::benchmark::GtRow>,
    sanity: &mut Vec<report::benchmark::SanityPoint>,
) -> Result<(serde_json::Value, serde_json::Value)> {
    let (exp, b) = (job.exp, &job.exp.file.benchmark);
    let verb = |reused: bool| if reused { "reused" } else { "computed" };
    let mut out = (serde_json::Value::Null, serde_json::Value::Null);
    if b.ground_truth {
        let gt = pipeline::ground_truth(job, trained)?;
        eprintln!("  ground truth: {} {}", verb(gt.reused), gt.stage.dir.display());
        gt_rows.extend(gt.value.rows.into_iter().map(|(k, image_id, values)| {
            report::benchmark::GtRow {
                key: pipeline::stored_key(exp, &k),
                seed: exp.seed,
                image_id,
                values,
            }
        }));
        out.0 = json!({"dir": gt.stage.dir, "seconds": gt.stage.seconds()});
    }
    if b.sanity_checks {
        let s = pipeline::sanity(job, trained)?;
        eprintln!("  sanity: {} {}", verb(s.reused), s.stage.dir.display());
        sanity.extend(s.value.rows.into_iter().map(|row| report::benchmark::SanityPoint {
            cell: exp.cell.clone(),
            seed: exp.seed,
            row,
        }));
        out.1 = json!({"dir": s.stage.dir, "seconds": s.stage.seconds()});
    }
    Ok(out)
}

fn git_commit() -> Option<String> {
    let out = std::process::Command::new("git").args(["rev-parse", "HEAD"]).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}
