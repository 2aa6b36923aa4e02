//! `embcam run`: every cell × seed of an experiment (its *jobs*, [`crate::jobs`]) through the
//! cached stages, each job's share written as a record, then one run folder assembled from the
//! records: the resolved configuration, a manifest, per-image metrics (CSV + Parquet), summary
//! tables (markdown + CSV), plots and galleries. `--shard I/N` runs a share of the jobs and
//! writes their records only; `--collect` assembles the run folder once every record is there.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use serde_json::json;

use crate::cli::ForceStage;
use crate::config::{self, Experiment};
use crate::jobs::{Plan, Record, Shard};
use crate::pipeline;
use crate::report::{self, EpochPoint, FaithPoint, InputRetrievalPoint, ReportData, TauPoint};
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

/// Run an experiment file as far as `until`, every job, `device` (when given) replacing the
/// file's `model.device`; returns the run folder when one was written.
pub fn run(
    path: &Path,
    force: Option<ForceStage>,
    device: Option<&str>,
    until: Until,
) -> Result<Option<PathBuf>> {
    let plan = Plan::load(path, device)?;
    let records = run_jobs(&plan, force, until, None)?;
    match until {
        Until::Train | Until::Explain => Ok(None),
        Until::Evaluate => {
            let first = &plan.experiments[0];
            let baselines: Vec<String> =
                first.file.eval.baselines.iter().map(|b| b.to_string()).collect();
            let baselines: Vec<&str> = baselines.iter().map(String::as_str).collect();
            let (mut rows, mut split) = (Vec::new(), Vec::new());
            for r in records {
                rows.extend(r.data.rows);
                split.extend(r.data.split);
            }
            println!("{}", table::markdown(&table::summarize(&rows, &split, &baselines)?));
            Ok(None)
        }
        // Assembled from the records on disk, as `--collect` does: the same bytes either way.
        Until::Report => collect_plan(&plan).map(Some),
    }
}

/// `embcam run FILE --shard I/N`: the shard's jobs through every stage, each leaving its record;
/// no run folder (`--collect` makes it once every shard has finished).
pub fn shard(
    path: &Path,
    force: Option<ForceStage>,
    device: Option<&str>,
    shard: Shard,
) -> Result<()> {
    let plan = Plan::load(path, device)?;
    let done = run_jobs(&plan, force, Until::Report, Some(shard))?;
    let jobs: Vec<String> = done.iter().map(|r| r.job.to_string()).collect();
    println!(
        "shard {shard}: {} of the {} jobs done (jobs {}); records in {}",
        done.len(),
        plan.experiments.len(),
        if jobs.is_empty() { "none".to_string() } else { jobs.join(", ") },
        plan.records().display()
    );
    println!("once every shard has finished: embcam run {} --collect", path.display());
    Ok(())
}

/// `embcam run FILE --list`: the jobs of `shard` (or all), with their state.
pub fn list(path: &Path, device: Option<&str>, shard: Option<Shard>) -> Result<()> {
    print!("{}", Plan::load(path, device)?.list(shard));
    Ok(())
}

/// `embcam run FILE --collect`: one run folder from every job's record; refused, naming the jobs
/// still without one, while a shard is unfinished.
pub fn collect(path: &Path, device: Option<&str>) -> Result<PathBuf> {
    collect_plan(&Plan::load(path, device)?)
}

/// The jobs of `shard` (or all) through the stages up to `until`; with [`Until::Report`] each
/// job's record is written as it finishes. Returns the jobs' records.
fn run_jobs(
    plan: &Plan,
    force: Option<ForceStage>,
    until: Until,
    shard: Option<Shard>,
) -> Result<Vec<Record>> {
    let mut printed: Vec<String> = Vec::new();
    let mut records = Vec::new();
    for (j, exp) in plan.jobs(shard) {
        let what = if exp.cell.is_empty() {
            format!("seed {}", exp.seed)
        } else {
            format!("{} seed {}", exp.cell, exp.seed)
        };
        eprintln!("[{j}/{}] {} {what}", plan.experiments.len(), exp.name);
        let record = job(plan, j, exp, force, until, &mut printed)?;
        if until == Until::Report {
            plan.write_record(&record)?;
        }
        records.push(record);
    }
    Ok(records)
}

/// Job `j` (experiment `exp`) through the stages up to `until`: its record. Its warnings are
/// printed as they arise, unless `printed` (this process's so far) holds them.
fn job(
    plan: &Plan,
    j: usize,
    exp: &Experiment,
    force: Option<ForceStage>,
    until: Until,
    printed: &mut Vec<String>,
) -> Result<Record> {
    let t0 = Instant::now();
    let mut record =
        Record { job: j, cell: exp.cell.clone(), seed: exp.seed, ..Default::default() };
    let dataset = pipeline::data(exp)?;
    pipeline::check_against_data(exp, &dataset)
        .with_context(|| format!("in experiment file {}", plan.path.display()))?;
    let t_data = t0.elapsed().as_secs_f64();
    let mut warn = |record: &mut Record, ws: &[String]| {
        for w in ws {
            if !printed.contains(w) {
                eprintln!("warning: {w}");
                printed.push(w.clone());
            }
            if !record.warnings.contains(w) {
                record.warnings.push(w.clone());
            }
        }
    };
    warn(&mut record, &dataset.warnings);
    let device = pipeline::device(&exp.file.model.device)?;
    let resolved = config::resolve(exp, dataset.split.train_classes.len());
    let job = pipeline::Job {
        exp_dir: &plan.exp_dir,
        exp,
        resolved: &resolved,
        data: &dataset,
        device: &device,
        force,
    };
    let trained = pipeline::trained(&job)?;
    record.data.training.extend(trained.history.iter().map(|r| EpochPoint {
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
        return Ok(record);
    }
    let explained = pipeline::explain(&job, &trained)?;
    eprintln!("  explain: {} {}", verb(explained.reused), explained.stage.dir.display());
    record.data.input_retrieval.extend(explained.value.retrieval.iter().map(|r| {
        InputRetrievalPoint {
            cell: exp.cell.clone(),
            seed: exp.seed,
            network: r.network.clone(),
            transform: exp.file.dataset.eval_transform.to_string(),
            recall_at_1: r.recall_at_1,
            map_at_r: r.map_at_r,
        }
    }));
    if until == Until::Explain {
        return Ok(record);
    }
    let scored = pipeline::evaluate(&job, &trained, &explained)?;
    eprintln!("  evaluate: {} {}", verb(scored.reused), scored.stage.dir.display());
    // The benchmark's tables are in the run folder only: `evaluate` leaves them out.
    let bench = match until {
        Until::Report => benchmark(&job, &trained, &mut record)?,
        _ => (serde_json::Value::Null, serde_json::Value::Null),
    };
    let (stage, scored, explain_stage) = (scored.stage, scored.value, explained.stage);
    let (r, s) = scored.rows(exp);
    record.data.rows.extend(r);
    record.data.split.extend(s);
    for (k, curve) in &scored.tau_curves {
        record.data.tau.extend(curve.iter().map(|&(tau, loc_acc)| TauPoint {
            key: pipeline::stored_key(exp, k),
            seed: exp.seed,
            // The f32 grid value as written in decimal (0.01, not 0.009999999776).
            tau: tau.to_string().parse().unwrap_or(f64::from(tau)),
            loc_acc,
        }));
    }
    for (k, curve) in &scored.faith_curves {
        record.data.faith.extend(curve.iter().map(|&(fraction, deletion, insertion)| FaithPoint {
            key: pipeline::stored_key(exp, k),
            seed: exp.seed,
            fraction,
            deletion,
            insertion,
        }));
    }
    record.galleries.splice(0..0, pipeline::galleries(&explain_stage));
    warn(&mut record, &scored.warnings);
    record.manifest = json!({
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
    });
    record.seconds = t0.elapsed().as_secs_f64();
    Ok(record)
}

/// A new run folder from every job's record (in job order).
fn collect_plan(plan: &Plan) -> Result<PathBuf> {
    let records = plan.read_records()?;
    let started = Instant::now();
    let first = &plan.experiments[0];
    let mut data = ReportData {
        baselines: first.file.eval.baselines.iter().map(|b| b.to_string()).collect(),
        ..Default::default()
    };
    let mut manifest_cells = Vec::new();
    let mut warnings: Vec<String> = Vec::new();
    let mut gt_rows: Vec<report::benchmark::GtRow> = Vec::new();
    let mut sanity_points: Vec<report::benchmark::SanityPoint> = Vec::new();
    let galleries = records.first().map(|r| r.galleries.clone()).unwrap_or_default();
    let job_seconds: f64 = records.iter().map(|r| r.seconds).sum();
    for r in records {
        data.rows.extend(r.data.rows);
        data.split.extend(r.data.split);
        data.tau.extend(r.data.tau);
        data.faith.extend(r.data.faith);
        data.training.extend(r.data.training);
        data.input_retrieval.extend(r.data.input_retrieval);
        gt_rows.extend(r.ground_truth);
        sanity_points.extend(r.sanity);
        manifest_cells.push(r.manifest);
        for w in r.warnings {
            if !warnings.contains(&w) {
                warnings.push(w);
            }
        }
    }

    // Held until the run folder is complete: no other process writes into it.
    let (run, _held) = store::run_dir(&plan.exp_dir, &plan.key)?;
    write_atomic(&run.join("config.toml"), plan.text.as_bytes())?;
    let resolved: Vec<String> = plan
        .experiments
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
        "file": plan.path,
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
        "records": plan.records(),
        // The jobs' own seconds (in whichever processes ran them) and this assembly's.
        "seconds": job_seconds + started.elapsed().as_secs_f64(),
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
    Ok(run)
}

/// The `[benchmark]` stages of one job, when switched on: their rows into the record; returns
/// each stage's folder and seconds for the manifest (`null` when off).
fn benchmark(
    job: &pipeline::Job<'_>,
    trained: &pipeline::Trained,
    record: &mut Record,
) -> Result<(serde_json::Value, serde_json::Value)> {
    let (exp, b) = (job.exp, &job.exp.file.benchmark);
    let verb = |reused: bool| if reused { "reused" } else { "computed" };
    let mut out = (serde_json::Value::Null, serde_json::Value::Null);
    if b.ground_truth {
        let gt = pipeline::ground_truth(job, trained)?;
        eprintln!("  ground truth: {} {}", verb(gt.reused), gt.stage.dir.display());
        record.ground_truth.extend(gt.value.rows.into_iter().map(|(k, image_id, values)| {
            report::benchmark::GtRow {
                key: pipeline::stored_key(exp, &k),
                seed: exp.seed,
                image_id,
                values,
            }
        }));
        // One gallery row per intervention, after the explain stage's galleries.
        record.galleries.extend(pipeline::galleries(&gt.stage));
        out.0 = json!({"dir": gt.stage.dir, "seconds": gt.stage.seconds()});
    }
    if b.sanity_checks {
        let s = pipeline::sanity(job, trained)?;
        eprintln!("  sanity: {} {}", verb(s.reused), s.stage.dir.display());
        record.sanity.extend(s.value.rows.into_iter().map(|row| report::benchmark::SanityPoint {
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
