//! `embcam run`: every cell × seed of an experiment through the cached stages, then one run folder
//! with the resolved configuration, a manifest, per-image metrics (CSV + Parquet), summary tables
//! (markdown + CSV), plots and galleries.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use serde_json::json;

use crate::config::{self, Experiment};
use crate::pipeline::{self, Scored};
use crate::store::{self, write_atomic};
use crate::{plots, table};

/// How far to go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Until {
    /// Data and training.
    Train,
    /// Everything, tables and plots included.
    Report,
}

/// Run an experiment file; returns the run folder (or `None` when stopping after training).
pub fn run(path: &Path, force: bool, until: Until) -> Result<Option<PathBuf>> {
    let experiments = config::load(path)?;
    let first = &experiments[0];
    let exp_dir = first.file.output.dir.join(&first.name);
    let text = std::fs::read_to_string(path)?;
    let mut rows = Vec::new();
    let mut split_rows = Vec::new();
    let mut manifest_cells = Vec::new();
    let mut curves = Vec::new();
    let mut histories = Vec::new();
    let mut galleries = Vec::new();
    let mut warnings: Vec<String> = Vec::new();
    let started = Instant::now();
    for (i, exp) in experiments.iter().enumerate() {
        let what = if exp.cell.is_empty() {
            format!("seed {}", exp.seed)
        } else {
            format!("{} seed {}", exp.cell, exp.seed)
        };
        eprintln!("[{}/{}] {} {what}", i + 1, experiments.len(), exp.name);
        let t0 = Instant::now();
        let data = pipeline::data(exp)?;
        let t_data = t0.elapsed().as_secs_f64();
        let device = pipeline::device(&exp.file.model.device)?;
        let trained = pipeline::trained(&exp_dir, exp, &data, &device, force)?;
        histories.push((what.clone(), trained.history.clone()));
        let verb = |reused: bool| if reused { "reused" } else { "computed" };
        eprintln!("  train: {} {}", verb(trained.reused), trained.stage.dir.display());
        if until == Until::Train {
            continue;
        }
        let (stage, scored, reused) =
            pipeline::explain_and_score(&exp_dir, exp, &data, &trained, &device, force)?;
        eprintln!("  explain: {} {}", verb(reused), stage.dir.display());
        let (r, s) = scored.rows(exp);
        rows.extend(r);
        split_rows.extend(s);
        curves.push((exp.clone(), scored.clone()));
        if i == 0 {
            galleries = pipeline::galleries(&stage);
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
            "train_images": data.split.train.len(),
            "eval_images": data.split.eval.len(),
            "stages": {
                "data": {"key": data.key, "seconds": t_data},
                "train": {"dir": trained.stage.dir, "seconds": trained.stage.seconds()},
                "explain": {"dir": stage.dir, "seconds": stage.seconds()},
            },
        }));
    }
    if until == Until::Train {
        return Ok(None);
    }

    let config_key = store::key_of(&(text.as_str(), env!("CARGO_PKG_VERSION")))?;
    let run = store::run_dir(&exp_dir, &config_key)?;
    write_atomic(&run.join("config.toml"), text.as_bytes())?;
    let resolved: Vec<String> = experiments
        .iter()
        .map(|e| Ok(format!("# cell: {} seed: {}\n{}", e.cell, e.seed, toml::to_string(&e.file)?)))
        .collect::<Result<_>>()?;
    write_atomic(&run.join("config.resolved.toml"), resolved.join("\n").as_bytes())?;

    let baselines: Vec<&str> = first.file.eval.baselines.iter().map(String::as_str).collect();
    let summary = report(&run, &rows, &split_rows, &curves, &histories, &baselines)?;
    let gdir = run.join("gallery");
    for g in &galleries {
        let name = g.file_name().context("gallery file name")?;
        std::fs::create_dir_all(&gdir)?;
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
        "cells": manifest_cells,
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

fn git_commit() -> Option<String> {
    let out = std::process::Command::new("git").args(["rev-parse", "HEAD"]).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Tables and plots of a run from its rows; returns the markdown summary.
pub fn report(
    run: &Path,
    rows: &[table::Row],
    split_rows: &[table::SplitRow],
    curves: &[(Experiment, Scored)],
    histories: &[(String, Vec<embcam_model::train::EpochReport>)],
    baselines: &[&str],
) -> Result<String> {
    let mut df = table::rows_frame(rows)?;
    table::write_csv(&mut df, &run.join("metrics.csv"))?;
    table::write_parquet(&mut df, &run.join("metrics.parquet"))?;
    let mut split = table::split_frame(split_rows)?;
    table::write_csv(&mut split, &run.join("split_metrics.csv"))?;
    let summaries = table::summarize(&df, &split, baselines)?;
    let md = table::markdown(&summaries);
    write_atomic(&run.join("summary.md"), md.as_bytes())?;
    write_atomic(&run.join("summary.csv"), table::summary_csv(&summaries)?.as_bytes())?;

    let plots_dir = run.join("plots");
    let cells: Vec<String> = {
        let mut c: Vec<String> = summaries.iter().map(|s| s.key.cell.clone()).collect();
        c.dedup();
        c
    };
    for (ci, cell) in cells.iter().enumerate() {
        let suffix = if cells.len() > 1 { format!("-cell{}", ci + 1) } else { String::new() };
        let of_cell: Vec<&table::Summary> =
            summaries.iter().filter(|s| &s.key.cell == cell).collect();
        for (metric, area, name, title) in [
            (0, 1, "box_ratio", "Mean heatmap ratio in the box"),
            (2, 3, "mask_ratio", "Mean heatmap ratio in the mask"),
            (5, 5, "loc_acc", "Localisation accuracy"),
        ] {
            let bars: Vec<plots::Bar> = of_cell
                .iter()
                .filter_map(|s| s.stats[metric].map(|st| (bar_label(&s.key), st.mean, st.spread)))
                .collect();
            if bars.is_empty() {
                continue;
            }
            let reference = (area != metric)
                .then(|| of_cell.iter().find_map(|s| s.stats[area].map(|st| st.mean)))
                .flatten()
                .map(|v| (v, "uniform map"));
            let title =
                if cell.is_empty() { title.to_string() } else { format!("{title} ({cell})") };
            plots::bars(
                &plots_dir.join(format!("{name}{suffix}.png")),
                &title,
                "mean ± 95% CI",
                &bars,
                reference,
            )?;
        }
    }
    // Localisation accuracy against τ, first cell and seed.
    if let Some((exp, scored)) = curves.first() {
        let series: Vec<plots::Series> = scored
            .tau_curves
            .iter()
            .map(|(k, c)| {
                (format!("{} / {}", k.0, k.1), c.iter().map(|&(t, a)| (t as f64, a)).collect())
            })
            .collect();
        let title = format!("Localisation accuracy vs τ (IoU ≥ {})", exp.file.eval.iou);
        plots::lines(&plots_dir.join("loc_acc_vs_tau.png"), &title, "τ", "accuracy", &series)?;
        let mut tau = String::from("source,proxy,stage,tau,loc_acc\n");
        for (k, c) in &scored.tau_curves {
            for (t, a) in c {
                tau.push_str(&format!("{},{},{},{t:.2},{a:.6}\n", k.0, k.1, k.2));
            }
        }
        write_atomic(&run.join("tau_curves.csv"), tau.as_bytes())?;
    }
    if histories.iter().any(|(_, h)| !h.is_empty()) {
        let loss: Vec<plots::Series> = histories
            .iter()
            .map(|(n, h)| {
                (format!("loss, {n}"), h.iter().map(|r| (r.epoch as f64, r.loss)).collect())
            })
            .collect();
        plots::lines(
            &plots_dir.join("training_loss.png"),
            "Training loss",
            "epoch",
            "triplet loss",
            &loss,
        )?;
        let map: Vec<plots::Series> = histories
            .iter()
            .map(|(n, h)| {
                (
                    format!("MAP@R, {n}"),
                    h.iter().map(|r| (r.epoch as f64, r.val.map_at_r)).collect(),
                )
            })
            .collect();
        plots::lines(
            &plots_dir.join("training_map_at_r.png"),
            "Validation MAP@R",
            "epoch",
            "MAP@R",
            &map,
        )?;
    }
    Ok(md)
}

fn bar_label(k: &table::Key) -> String {
    if k.proxy == "-" { k.source.clone() } else { format!("{} / {}", k.source, k.proxy) }
}
