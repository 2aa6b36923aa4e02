//! `embcam slurm`: an experiment's jobs as a Slurm job array. Two `sbatch` scripts are written:
//!
//! - `<name>-array.sbatch`: `--array=1-N`, task `I` runs `embcam run FILE --shard I/N` (each
//!   shard's jobs through the cached stages, leaving one record per job, [`crate::jobs`]);
//! - `<name>-collect.sbatch`: `embcam run FILE --collect`, submitted with
//!   `--dependency=afterok:<array job>`, so it starts once every task has succeeded (a failed
//!   task leaves it pending with reason `DependencyNeverSatisfied`; rerun that task, then collect
//!   by hand).
//!
//! The tasks share the experiment's results folder (stage cache, records, run folders): it must
//! be on a file system every node mounts at the same path. Locks and records assume what
//! `crate::lock` says of that file system. A GPU is one flag: `--device tch-cuda` is passed to
//! every `embcam run` and asks each task for one GPU (`--gres=gpu:1`); Slurm sets
//! `CUDA_VISIBLE_DEVICES`, so the task's GPU is `cuda:0`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};

use crate::cli::SlurmArgs;
use crate::jobs::Plan;

/// The two scripts and the command line that submits them.
#[derive(Debug)]
struct Scripts {
    array: PathBuf,
    collect: PathBuf,
    shards: usize,
}

/// `embcam slurm`.
pub fn command(a: &SlurmArgs) -> Result<()> {
    let plan = Plan::load(&a.experiment, a.device.as_deref())?;
    let scripts = write(a, &plan)?;
    let (array, collect) = (scripts.array.display(), scripts.collect.display());
    if !a.submit {
        println!("wrote {array}\n  and {collect}");
        println!(
            "submit both (the collect job waits for every array task to succeed):\n  \
             jid=$(sbatch --parsable {}) && sbatch --dependency=afterok:$jid {}",
            quote(&array.to_string()),
            quote(&collect.to_string())
        );
        return Ok(());
    }
    let array_id = sbatch(&[], &scripts.array)?;
    let collect_id = sbatch(&[format!("--dependency=afterok:{array_id}")], &scripts.collect)?;
    println!(
        "submitted array job {array_id} ({} tasks) from {array}\nsubmitted collect job \
         {collect_id} (starts once every task of {array_id} has succeeded) from {collect}",
        scripts.shards
    );
    println!(
        "follow them with `squeue -j {array_id},{collect_id}`; logs in {}; the run folder \
         appears under {}",
        scripts.array.parent().map(|d| d.join("logs")).unwrap_or_default().display(),
        plan.exp_dir.join("runs").display()
    );
    Ok(())
}

/// Check the options and write both scripts.
fn write(a: &SlurmArgs, plan: &Plan) -> Result<Scripts> {
    let jobs = plan.experiments.len();
    let mut shards = a.shards.unwrap_or(jobs);
    ensure!(shards >= 1, "--shards must be at least 1");
    if shards > jobs {
        eprintln!(
            "note: --shards {shards} for {jobs} jobs: {jobs} array tasks, one job each (a task \
             without a job would only wait in the queue)"
        );
        shards = jobs;
    }
    ensure!(a.max_parallel != Some(0), "--max-parallel must be at least 1");
    ensure!(a.cpus_per_task >= 1, "--cpus-per-task must be at least 1");
    for (flag, value) in [
        ("--partition", a.partition.as_deref()),
        ("--account", a.account.as_deref()),
        ("--mem", a.mem.as_deref()),
        ("--time", Some(a.time.as_str())),
        ("--device", a.device.as_deref()),
    ] {
        if let Some(v) = value {
            ensure!(
                !v.is_empty()
                    && v.chars().all(|c| c.is_ascii_alphanumeric() || "-_:.,".contains(c)),
                "{flag} `{v}` is not a Slurm word: letters, digits and `-_:.,` only (e.g. \
                 --time 02:00:00, --mem 16G)"
            );
        }
    }
    if let Some(line) = a.setup.iter().find(|l| l.contains(['\n', '\r'])) {
        bail!("--setup `{line}` holds a line break; give each line its own --setup");
    }
    let device = a.device.clone().unwrap_or_else(|| plan.experiments[0].file.model.device.clone());
    let cuda = device.parse::<embcam_model::DeviceSpec>()?.is_cuda();
    let gpus = a.gpus_per_job.unwrap_or(u32::from(cuda));
    check_device(a, &device, cuda, gpus)?;

    let embcam = match &a.embcam {
        Some(p) if !p.is_file() => bail!(
            "--embcam {} is not a file; give the embcam binary the tasks should run, on storage \
             every node sees",
            p.display()
        ),
        Some(p) => p.clone(),
        None => std::env::current_exe().context("finding this embcam binary (give --embcam)")?,
    };
    let embcam = absolute(&embcam, "--embcam")?;
    let file = absolute(&a.experiment, "the experiment file")?;
    let out = a.out.clone().unwrap_or_else(|| plan.exp_dir.join("slurm"));
    let logs = out.join("logs");
    std::fs::create_dir_all(&logs)
        .with_context(|| format!("creating the script and log folder {}", logs.display()))?;
    let out = absolute(&out, "--out")?;
    let logs = out.join("logs");
    let name = &plan.experiments[0].name;

    let mut common = Vec::new();
    common.push(format!("#SBATCH --time={}", a.time));
    for (flag, v) in [("partition", &a.partition), ("account", &a.account), ("mem", &a.mem)] {
        if let Some(v) = v {
            common.push(format!("#SBATCH --{flag}={v}"));
        }
    }
    let device_flag =
        a.device.as_ref().map(|d| format!(" --device {}", quote(d))).unwrap_or_default();
    let setup: String = a.setup.iter().map(|l| format!("{l}\n")).collect();
    let run = format!(
        "exec {} run {}",
        quote(&embcam.display().to_string()),
        quote(&file.display().to_string())
    );
    let header = |what: &str| {
        format!(
            "#!/bin/bash\n\
             # {what}\n\
             # Experiment `{name}` ({file}): {jobs} jobs (grid cells × seeds) in {shards} shards.\n\
             # Written by `embcam slurm`. Every task shares {dir} (stage cache, job records,\n\
             # run folders): it must be on a file system all nodes mount at this path.\n",
            file = file.display(),
            dir = plan.exp_dir.display(),
        )
    };

    let mut array =
        header("Array: task I runs shard I of the jobs (`embcam run FILE --shard I/N`).");
    array.push_str(&format!("#SBATCH --job-name=embcam-{name}\n"));
    let limit = a.max_parallel.map(|k| format!("%{k}")).unwrap_or_default();
    array.push_str(&format!("#SBATCH --array=1-{shards}{limit}\n"));
    array.push_str(&format!("#SBATCH --output={}/%x-%A_%a.out\n", logs.display()));
    array.push_str(&format!("#SBATCH --cpus-per-task={}\n", a.cpus_per_task));
    if gpus > 0 {
        array.push_str(&format!("#SBATCH --gres=gpu:{gpus}\n"));
    }
    for line in &common {
        array.push_str(&format!("{line}\n"));
    }
    array.push_str("set -euo pipefail\n");
    array.push_str(&setup);
    array.push_str(&format!("{run} --shard \"${{SLURM_ARRAY_TASK_ID}}/{shards}\"{device_flag}\n"));

    let mut collect = header(
        "Collect: one run folder from every job's record. Submit it with \
         --dependency=afterok:<array job id>.",
    );
    collect.push_str(&format!("#SBATCH --job-name=embcam-{name}-collect\n"));
    collect.push_str(&format!("#SBATCH --output={}/%x-%j.out\n", logs.display()));
    collect.push_str("#SBATCH --cpus-per-task=1\n");
    for line in &common {
        collect.push_str(&format!("{line}\n"));
    }
    collect.push_str("set -euo pipefail\n");
    collect.push_str(&setup);
    collect.push_str(&format!("{run} --collect{device_flag}\n"));

    let scripts = Scripts {
        array: out.join(format!("{name}-array.sbatch")),
        collect: out.join(format!("{name}-collect.sbatch")),
        shards,
    };
    crate::store::write_atomic(&scripts.array, array.as_bytes())?;
    crate::store::write_atomic(&scripts.collect, collect.as_bytes())?;
    Ok(scripts)
}

/// Refuse a device this binary cannot run when the tasks run this binary; warn about GPUs asked
/// for and left idle, or a CUDA device without a GPU.
fn check_device(a: &SlurmArgs, device: &str, cuda: bool, gpus: u32) -> Result<()> {
    if let Err(e) = crate::pipeline::device(device) {
        if a.embcam.is_none() {
            return Err(e).context(format!(
                "the array tasks would run this embcam on `{device}`; build one that can (for \
                 LibTorch: `cargo build --release --features tch`, crates/model/README.md) and \
                 run its `embcam slurm`, or point --embcam at it"
            ));
        }
        eprintln!(
            "note: this embcam cannot run `{device}` ({e:#}); the tasks run --embcam {} instead, \
             which must be a build that can",
            a.embcam.as_deref().unwrap_or(Path::new("")).display()
        );
    }
    if cuda && gpus == 0 {
        eprintln!("warning: device `{device}` with --gpus-per-job 0: the tasks get no GPU");
    }
    if !cuda && gpus > 0 {
        eprintln!(
            "warning: {gpus} GPU(s) per task for device `{device}`: they would sit idle; add \
             --device tch-cuda"
        );
    }
    Ok(())
}

/// `path` made absolute (against the working directory), so the script runs from anywhere.
fn absolute(path: &Path, what: &str) -> Result<PathBuf> {
    std::path::absolute(path)
        .with_context(|| format!("{what} {} has no absolute form", path.display()))
}

/// `s` as one shell word in single quotes.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Submit `script` with `sbatch --parsable` and `extra` options; its job id.
fn sbatch(extra: &[String], script: &Path) -> Result<String> {
    let out = Command::new("sbatch").arg("--parsable").args(extra).arg(script).output();
    let out = match out {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "sbatch is not on PATH: --submit needs Slurm's commands (run it on a login node); \
             the scripts are written, submit them there without --submit's help"
        ),
        Err(e) => return Err(e).context("running sbatch"),
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "sbatch {} failed ({}): {}",
        script.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    // `--parsable` prints `id` or `id;cluster`.
    let id = stdout.trim().split(';').next().unwrap_or_default().to_string();
    ensure!(
        !id.is_empty() && id.chars().all(|c| c.is_ascii_digit()),
        "sbatch {} printed `{}`, not a job id",
        script.display(),
        stdout.trim()
    );
    Ok(id)
}
