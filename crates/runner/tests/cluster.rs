//! Beyond one process: job lists, shards, collecting their records, and the Slurm scripts.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::run::tiny_with;
use crate::{embcam, text};

/// The tiny experiment with `seeds` and a `[grid]` over `key`.
fn grid(dir: &Path, seeds: &str, key: &str, values: &str) -> PathBuf {
    let exp = tiny_with(dir, "", &format!("[grid]\n\"{key}\" = {values}\n"));
    let t = std::fs::read_to_string(&exp).unwrap();
    std::fs::write(
        &exp,
        t.replacen("name = \"tiny\"\n", &format!("name = \"tiny\"\nseeds = {seeds}\n"), 1),
    )
    .unwrap();
    exp
}

/// A copy of experiment file `exp` whose results go to `out` (its own stage cache).
fn elsewhere(exp: &Path, out: &Path) -> PathBuf {
    let t = std::fs::read_to_string(exp).unwrap();
    let results = exp.parent().unwrap().join("results").display().to_string();
    let copy = exp.with_file_name("single.toml");
    std::fs::write(&copy, t.replace(&results, &out.display().to_string())).unwrap();
    copy
}

/// `embcam args…` started without waiting.
fn spawn(args: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_embcam"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn ok(o: &Output) -> String {
    let t = text(o);
    assert!(o.status.success(), "{t}");
    t
}

/// The job numbers of a `--list` output.
fn jobs(list: &str) -> Vec<usize> {
    list.lines().skip(1).map(|l| l.split('\t').next().unwrap().parse().unwrap()).collect()
}

/// The run folder a `run` or `--collect` printed.
fn run_folder(t: &str) -> PathBuf {
    PathBuf::from(t.lines().find_map(|l| l.strip_prefix("run folder: ")).unwrap())
}

/// Every table and data file of two run folders is byte-equal.
fn same_tables(a: &Path, b: &Path) {
    for f in [
        "summary.md",
        "summary.csv",
        "metrics.csv",
        "metrics.parquet",
        "split_metrics.csv",
        "comparisons.md",
        "comparisons.csv",
        "tau_curves.csv",
        "training.csv",
        "plots/box_ratio-cell1.png",
        "plots/box_ratio-cell2.png",
        "gallery/gallery-block4.png",
    ] {
        let read = |r: &Path| std::fs::read(r.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(read(a) == read(b), "{f} differs between {} and {}", a.display(), b.display());
    }
}

#[test]
fn the_job_list_is_deterministic_and_shards_partition_it_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = grid(tmp.path(), "[0, 1, 2]", "train.margin", "[0.1, 0.2]");
    let e = exp.to_str().unwrap();
    let all = ok(&embcam(&["run", e, "--list"]));
    // Cells in key order, seeds inner, numbered from 1; nothing run yet.
    let lines: Vec<&str> = all.lines().collect();
    assert_eq!(lines[0], "job\tseed\tstate\tcell");
    assert_eq!(lines[1], "1\t0\tpending\ttrain.margin=0.1");
    assert_eq!(lines[6], "6\t2\tpending\ttrain.margin=0.2");
    assert_eq!(lines.len(), 7);
    // The same list again, and from another working directory.
    assert_eq!(ok(&embcam(&["run", e, "--list"])), all);
    let o = Command::new(env!("CARGO_BIN_EXE_embcam"))
        .args(["run", e, "--list"])
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    assert_eq!(ok(&o), all);
    assert!(!tmp.path().join("data").exists(), "listing made the dataset");
    for n in [1usize, 2, 4, 6, 9] {
        let mut seen: Vec<usize> = Vec::new();
        for i in 1..=n {
            let part = ok(&embcam(&["run", e, "--list", "--shard", &format!("{i}/{n}")]));
            // Each shard's lines are the full list's lines, and job j is in shard (j − 1) mod N + 1.
            for line in part.lines().skip(1) {
                assert!(all.lines().any(|l| l == line), "{line}");
            }
            let mine = jobs(&part);
            assert!(mine.iter().all(|j| (j - 1) % n + 1 == i), "shard {i}/{n}: {mine:?}");
            seen.extend(mine);
        }
        seen.sort();
        assert_eq!(seen, (1..=6).collect::<Vec<_>>(), "{n} shards");
    }
    for bad in ["0/2", "3/2", "2", "x/y"] {
        let o = embcam(&["run", e, "--shard", bad]);
        let t = text(&o);
        assert!(!o.status.success() && t.contains("--shard") && t.contains("I/N"), "{t}");
        assert!(!t.contains("panicked"), "{t}");
    }
    let o = embcam(&["run", e, "--shard", "1/2", "--collect"]);
    assert!(!o.status.success() && text(&o).contains("cannot be used with"), "{}", text(&o));
}

#[test]
fn two_shards_started_together_then_collect_give_the_single_process_tables() {
    let tmp = tempfile::tempdir().unwrap();
    // 2 cells × 2 seeds; nothing generated yet: both shards race to generate the SynthCUB.
    let exp = grid(tmp.path(), "[0, 1]", "train.margin", "[0.1, 0.2]");
    let e = exp.to_str().unwrap();
    let (a, b) = (spawn(&["run", e, "--shard", "1/2"]), spawn(&["run", e, "--shard", "2/2"]));
    let (ta, tb) = (ok(&a.wait_with_output().unwrap()), ok(&b.wait_with_output().unwrap()));
    assert!(ta.contains("shard 1/2: 2 of the 4 jobs done (jobs 1, 3)"), "{ta}");
    assert!(tb.contains("shard 2/2: 2 of the 4 jobs done (jobs 2, 4)"), "{tb}");
    assert!(!tmp.path().join("results/tiny/runs").exists(), "a shard made a run folder");
    let list = ok(&embcam(&["run", e, "--list"]));
    assert_eq!(list.matches("\tdone\t").count(), 4, "{list}");

    let collected = run_folder(&ok(&embcam(&["run", e, "--collect"])));
    assert!(collected.join("DONE").is_file() && !collected.join("LOCK").exists());
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(collected.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["cells"].as_array().unwrap().len(), 4);

    // One process, its own stage cache: the same tables, byte for byte.
    let single = elsewhere(&exp, &tmp.path().join("single"));
    let t = ok(&embcam(&["run", single.to_str().unwrap()]));
    assert_eq!(t.matches("train: computed").count(), 4, "{t}");
    same_tables(&collected, &run_folder(&t));
    // Collecting again makes another run folder with the same tables.
    let again = run_folder(&ok(&embcam(&["run", e, "--collect"])));
    assert_ne!(again, collected);
    same_tables(&collected, &again);
    // No lock, no temporary record left behind.
    let jobs_dir = tmp.path().join("results/tiny/jobs");
    let key = std::fs::read_dir(&jobs_dir).unwrap().next().unwrap().unwrap().path();
    let mut names: Vec<String> = std::fs::read_dir(&key)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["job-0001.json", "job-0002.json", "job-0003.json", "job-0004.json"]);
    let stages = std::fs::read_dir(tmp.path().join("results/tiny/stages")).unwrap();
    let locks: Vec<_> = stages
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".lock"))
        .collect();
    assert!(locks.is_empty(), "{locks:?}");
}

#[test]
fn a_stage_one_shard_is_computing_is_waited_for_by_the_other() {
    let tmp = tempfile::tempdir().unwrap();
    // Two cells that differ only in scoring: both jobs need the same training and heatmaps.
    let exp = grid(tmp.path(), "[0]", "eval.tau", "[0.2, 0.3]");
    let e = exp.to_str().unwrap();
    let (a, b) = (spawn(&["run", e, "--shard", "1/2"]), spawn(&["run", e, "--shard", "2/2"]));
    let both = [a, b].map(|c| ok(&c.wait_with_output().unwrap())).join("\n");
    for stage in ["train", "explain"] {
        assert_eq!(both.matches(&format!("{stage}: computed")).count(), 1, "{stage}:\n{both}");
        assert_eq!(both.matches(&format!("{stage}: reused")).count(), 1, "{stage}:\n{both}");
    }
    assert_eq!(both.matches("evaluate: computed").count(), 2, "{both}");
    let collected = run_folder(&ok(&embcam(&["run", e, "--collect"])));
    let single = elsewhere(&exp, &tmp.path().join("single"));
    same_tables(&collected, &run_folder(&ok(&embcam(&["run", single.to_str().unwrap()]))));
}

#[test]
fn collect_refuses_while_a_shard_is_unfinished_and_names_the_missing_jobs() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = grid(tmp.path(), "[0, 1]", "train.margin", "[0.1, 0.2]");
    let e = exp.to_str().unwrap();
    let o = embcam(&["run", e, "--collect"]);
    let t = text(&o);
    assert!(!o.status.success() && t.contains("4 of its 4 jobs have no record"), "{t}");
    ok(&embcam(&["run", e, "--shard", "1/2"]));
    let o = embcam(&["run", e, "--collect"]);
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(t.contains("2 of its 4 jobs have no record yet"), "{t}");
    assert!(t.contains("job 2 (cell `train.margin=0.1` seed 1)"), "{t}");
    assert!(t.contains("job 4 (cell `train.margin=0.2` seed 1)"), "{t}");
    assert!(!t.contains("job 1 ") && !t.contains("job 3 ") && t.contains("--list"), "{t}");
    assert!(!t.contains("panicked"), "{t}");
    assert!(!tmp.path().join("results/tiny/runs").exists(), "a refused collect made a run folder");
    let list = ok(&embcam(&["run", e, "--list"]));
    assert!(list.contains("1\t0\tdone\t") && list.contains("2\t1\tpending\t"), "{list}");

    ok(&embcam(&["run", e, "--shard", "2/2"]));
    // A record of another job under this one's name is refused, not merged.
    let key = std::fs::read_dir(tmp.path().join("results/tiny/jobs")).unwrap().next();
    let key = key.unwrap().unwrap().path();
    let second = std::fs::read(key.join("job-0002.json")).unwrap();
    std::fs::copy(key.join("job-0001.json"), key.join("job-0002.json")).unwrap();
    let o = embcam(&["run", e, "--collect"]);
    let t = text(&o);
    assert!(!o.status.success() && t.contains("job-0002.json holds job 1"), "{t}");
    std::fs::write(key.join("job-0002.json"), second).unwrap();
    run_folder(&ok(&embcam(&["run", e, "--collect"])));

    // The file edited afterwards: its records are not mixed with the old ones, and the message
    // says why none are found.
    let t = std::fs::read_to_string(&exp).unwrap().replace("max_images = 8", "max_images = 6");
    std::fs::write(&exp, t).unwrap();
    let o = embcam(&["run", e, "--collect"]);
    let t = text(&o);
    assert!(!o.status.success() && t.contains("4 of its 4 jobs"), "{t}");
    assert!(t.contains("records of 1 other version(s) of this experiment"), "{t}");
}

#[test]
fn slurm_writes_an_array_of_shards_and_a_dependent_collect() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = grid(tmp.path(), "[0, 1]", "train.margin", "[0.1, 0.2]");
    let e = exp.to_str().unwrap();
    let bin = env!("CARGO_BIN_EXE_embcam");
    let out = tmp.path().join("scripts");
    let args = [
        "slurm",
        e,
        "--partition",
        "gpu",
        "--time",
        "01:30:00",
        "--cpus-per-task",
        "8",
        "--mem",
        "16G",
        "--device",
        "tch-cuda",
        "--embcam",
        bin,
        "--setup",
        "module load cuda/12.8",
        "--max-parallel",
        "2",
        "--out",
        out.to_str().unwrap(),
    ];
    let t = ok(&embcam(&args));
    let (array, collect) = (out.join("tiny-array.sbatch"), out.join("tiny-collect.sbatch"));
    assert!(t.contains(&format!("--dependency=afterok:$jid '{}'", collect.display())), "{t}");
    let script = std::fs::read_to_string(&array).unwrap();
    let logs = out.join("logs");
    assert!(logs.is_dir());
    let want = [
        "#!/bin/bash".to_string(),
        "#SBATCH --job-name=embcam-tiny".into(),
        "#SBATCH --array=1-4%2".into(),
        format!("#SBATCH --output={}/%x-%A_%a.out", logs.display()),
        "#SBATCH --cpus-per-task=8".into(),
        // --device tch-cuda asks for one GPU per task.
        "#SBATCH --gres=gpu:1".into(),
        "#SBATCH --time=01:30:00".into(),
        "#SBATCH --partition=gpu".into(),
        "#SBATCH --mem=16G".into(),
        "set -euo pipefail".into(),
        "module load cuda/12.8".into(),
        format!(
            "exec '{bin}' run '{e}' --shard \"${{SLURM_ARRAY_TASK_ID}}/4\" --device 'tch-cuda'"
        ),
    ];
    let lines: Vec<&str> = script.lines().filter(|l| !l.starts_with("# ")).collect();
    assert_eq!(lines, want, "{script}");
    // Every #SBATCH line before the first command, as sbatch requires.
    let first_command = script.lines().position(|l| l == "set -euo pipefail").unwrap();
    assert!(script.lines().skip(first_command).all(|l| !l.starts_with("#SBATCH")));

    let script = std::fs::read_to_string(&collect).unwrap();
    for line in [
        "#SBATCH --job-name=embcam-tiny-collect",
        "#SBATCH --cpus-per-task=1",
        "#SBATCH --partition=gpu",
        "module load cuda/12.8",
        &format!("exec '{bin}' run '{e}' --collect --device 'tch-cuda'"),
    ] {
        assert!(script.lines().any(|l| l == line), "no `{line}` in\n{script}");
    }
    assert!(!script.contains("--gres") && !script.contains("--array"), "{script}");

    // Defaults: one task per job, the file's device (flex), no GPU, scripts beside the results.
    let o = embcam(&["slurm", e, "--shards", "9"]);
    let t = ok(&o);
    assert!(t.contains("--shards 9 for 4 jobs"), "{t}");
    let script =
        std::fs::read_to_string(tmp.path().join("results/tiny/slurm/tiny-array.sbatch")).unwrap();
    assert!(script.contains("#SBATCH --array=1-4\n") && !script.contains("--gres"), "{script}");
    assert!(script.contains("--shard \"${SLURM_ARRAY_TASK_ID}/4\"\n"), "{script}");
    let o = embcam(&["slurm", e, "--shards", "2", "--gpus-per-job", "2"]);
    let t = ok(&o);
    assert!(t.contains("would sit idle"), "{t}");

    // Words that would break the script are refused, naming the flag.
    for (flag, value) in
        [("--time", "1:00\n#SBATCH --x"), ("--partition", "a b"), ("--setup", "a\nb")]
    {
        let o = embcam(&["slurm", e, flag, value]);
        let t = text(&o);
        assert!(!o.status.success() && t.contains(flag), "{t}");
    }
    let o = embcam(&["slurm", e, "--embcam", tmp.path().join("nowhere").to_str().unwrap()]);
    assert!(!o.status.success() && text(&o).contains("--embcam"), "{}", text(&o));
    // --submit without Slurm: the scripts are written, and the error says what is missing.
    let o = Command::new(bin).args(["slurm", e, "--submit"]).env("PATH", "").output().unwrap();
    let t = text(&o);
    assert!(!o.status.success() && t.contains("sbatch is not on PATH"), "{t}");
    assert!(!t.contains("panicked"), "{t}");
}
