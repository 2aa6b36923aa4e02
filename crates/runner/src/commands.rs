//! What each subcommand does.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use embcam_cub::synth::generate;

use crate::cli::{Cli, Command, ReportArgs, RunArgs, RunCommand, SynthArgs, ValidateArgs};
use crate::config::SynthSection;
use crate::progress::bar;
use crate::report;
use crate::run::Until;

/// Run a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Synth(a) => synth(a),
        Command::Validate(a) => validate(a),
        Command::Run(a) => run_command(a),
        Command::Train(a) => steps(&a, Until::Train),
        Command::Explain(a) => steps(&a, Until::Explain),
        Command::Evaluate(a) => steps(&a, Until::Evaluate),
        Command::Slurm(a) => crate::slurm::command(&a),
        Command::Report(a) => report(a),
        Command::Bench(a) => crate::bench::command(&a),
    }
}

/// `embcam run`: every job, a shard of them, their list, or the collection of their records.
fn run_command(a: RunCommand) -> Result<()> {
    let (file, device) = (&a.args.experiment, a.args.device.as_deref());
    if a.list {
        return crate::run::list(file, device, a.shard);
    }
    if a.collect {
        return crate::run::collect(file, device).map(drop);
    }
    match a.shard {
        Some(shard) => crate::run::shard(file, a.args.force, device, shard),
        None => steps(&a.args, Until::Report),
    }
}

/// The pipeline of every job up to `until`.
fn steps(a: &RunArgs, until: Until) -> Result<()> {
    crate::run::run(&a.experiment, a.force, a.device.as_deref(), until).map(drop)
}

/// `embcam report`: tables and plots from finished run folders.
fn report(a: ReportArgs) -> Result<()> {
    let labels = distinct_runs(&a.runs)?;
    let out = match (&a.out, a.runs.as_slice()) {
        (Some(out), _) => {
            if out.join("summary.md").exists() && !a.force {
                bail!(
                    "{} already holds a report; choose another --out, or --force to replace it",
                    out.display()
                );
            }
            std::fs::create_dir_all(out)
                .with_context(|| format!("creating the report folder {}", out.display()))?;
            out.clone()
        }
        (None, [one]) => one.clone(),
        (None, _) => bail!("several runs go into one report folder: give it with --out DIR"),
    };
    let data = if let [one] = a.runs.as_slice() {
        report::read_data(one)?
    } else {
        let mut all = report::ReportData::default();
        for (run, label) in a.runs.iter().zip(&labels) {
            all.merge(label, report::read_data(run)?);
        }
        all
    };
    if out != a.runs[0] || a.runs.len() > 1 {
        report::write_data(&out, &data)?;
    }
    let mut md = report::render(&out, &data)?;
    md.push_str(
        &report::benchmark::Benchmark::read_runs(&a.runs, &labels)?.write(&out, &data.baselines)?,
    );
    println!("{md}");
    println!("tables and plots: {}", out.display());
    Ok(())
}

/// Refuse a run folder named twice (under any spelling: `a/run-001`, `./a/run-001`, a link), and
/// two folders whose labels would merge them into one: either would count its images twice.
/// Returns each run's label, made from its canonical path.
fn distinct_runs(runs: &[PathBuf]) -> Result<Vec<String>> {
    let mut seen: Vec<(PathBuf, String, &Path)> = Vec::new();
    for run in runs {
        let real = std::fs::canonicalize(run)
            .with_context(|| format!("the run folder {} cannot be read", run.display()))?;
        let label = run_label(&real);
        for (other_real, other_label, other) in &seen {
            if *other_real == real {
                bail!(
                    "{} and {} are the same run folder; its images would be counted twice. \
                     Name each run once",
                    other.display(),
                    run.display()
                );
            }
            if *other_label == label {
                bail!(
                    "{} and {} would both be labelled `{label}` in the report, their cells merged \
                     into one; report them separately",
                    other.display(),
                    run.display()
                );
            }
        }
        seen.push((real, label, run));
    }
    Ok(seen.into_iter().map(|(_, label, _)| label).collect())
}

/// `<experiment>/<run-id>` from `<output>/<experiment>/runs/<run-id>`.
fn run_label(run: &Path) -> String {
    let name = |p: Option<&Path>| {
        p.and_then(Path::file_name).map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    };
    let experiment = run.parent().and_then(Path::parent);
    format!("{}/{}", name(experiment), name(Some(run)))
}

fn synth(a: SynthArgs) -> Result<()> {
    let cfg = SynthSection {
        classes: a.classes,
        images_per_class: a.images_per_class,
        min_side: a.min_side,
        max_side: a.max_side,
        seed: a.seed,
        difficulty: a.difficulty,
        bird_area: a.bird_area,
        clutter: a.clutter,
        occlusion: a.occlusion,
        pair_differences: a.pair_differences,
    }
    .config();
    let (root, seg) = (a.out.join("CUB_200_2011"), a.out.join("segmentations"));
    // The same lock as a run's data stage: one generation into a folder at a time.
    let _lock = crate::lock::acquire(&crate::lock::beside(&a.out), "SynthCUB generation")?;
    if !a.force && cfg.made_at(&a.out) {
        println!(
            "{} already holds this SynthCUB (same settings and seed); validating it",
            a.out.display()
        );
        return check(&root, Some(&seg));
    }
    if a.force && a.out.exists() {
        std::fs::remove_dir_all(&a.out)
            .with_context(|| format!("removing the old dataset at {}", a.out.display()))?;
    }
    let pb = bar("generating");
    let s = generate(&a.out, &cfg, &pb).with_context(|| {
        format!(
            "generating SynthCUB in {} (use --force to replace a different one)",
            a.out.display()
        )
    })?;
    pb.finish_and_clear();
    println!(
        "wrote {} images ({} greyscale, {} partly occluded) to {}; boxes cover {:.2} of the frame \
         on average, centred at ({:.2}, {:.2}) (CUB-200-2011: 0.34 at (0.50, 0.52))",
        s.images,
        s.greyscale,
        s.occluded,
        a.out.display(),
        s.mean_box_share,
        s.mean_box_centre.0,
        s.mean_box_centre.1
    );
    check(&s.root, Some(&s.segmentations))
}

fn validate(a: ValidateArgs) -> Result<()> {
    let root = dataset_root(&a.root)?;
    let seg = a.segmentations.or_else(|| {
        let beside = root.parent()?.join("segmentations");
        beside.is_dir().then_some(beside)
    });
    check(&root, seg.as_deref())
}

/// Accept either the `CUB_200_2011` folder or a folder that contains it.
fn dataset_root(path: &Path) -> Result<PathBuf> {
    if path.join("images.txt").is_file() {
        return Ok(path.to_path_buf());
    }
    let inner = path.join("CUB_200_2011");
    if inner.join("images.txt").is_file() {
        return Ok(inner);
    }
    bail!(
        "{} holds no images.txt (nor CUB_200_2011/images.txt); point at the extracted \
         CUB_200_2011 folder, or make a synthetic one with `embcam synth` (see datasets/README.md)",
        path.display()
    )
}

fn check(root: &Path, seg: Option<&Path>) -> Result<()> {
    let pb = bar("validating");
    let report = embcam_cub::validate(root, seg, &pb);
    pb.finish_and_clear();
    println!("{}:\n{report}", root.display());
    if !report.is_ok() {
        bail!("{} has {} problem(s), listed above", root.display(), report.problems.len());
    }
    Ok(())
}
