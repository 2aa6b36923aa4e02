//! Faults survived through the binary: training killed mid-epoch, damaged datasets, results
//! folders that cannot be written, a disk that fills up, and the quickstart's reproducibility.
//! Each case is listed in `results/RELIABILITY.md` with what the harness does.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{embcam, synth, text};

/// A small experiment whose training takes long enough to be interrupted (several epochs).
fn experiment(dir: &Path, data: &Path, out: &str, extra: &str) -> PathBuf {
    let path = dir.join(format!("{out}.toml"));
    let text = format!(
        r#"name = "faults"
[dataset]
kind = "synth"
path = "{data}"
image_size = 48
[dataset.synth]
classes = 6
images_per_class = 8
min_side = 64
max_side = 80
[model]
embedding_dim = 8
[train]
epochs = 6
p = 3
k = 4
[cam]
gallery = 1
[eval]
max_images = 6
baselines = ["center-gaussian"]
[output]
dir = "{out_dir}"
{extra}"#,
        data = data.display(),
        out_dir = dir.join(out).display(),
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// Every path under `dir`, at any depth, whose file name satisfies `keep`.
fn find_where(dir: &Path, keep: &dyn Fn(&str) -> bool) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return found };
    for e in entries.flatten() {
        let p = e.path();
        if p.file_name().is_some_and(|n| keep(&n.to_string_lossy())) {
            found.push(p.clone());
        }
        if p.is_dir() {
            found.extend(find_where(&p, keep));
        }
    }
    found.sort();
    found
}

/// Every file named `name` under `dir`, at any depth.
fn find(dir: &Path, name: &str) -> Vec<PathBuf> {
    find_where(dir, &|n| n == name).into_iter().filter(|p| p.is_file()).collect()
}

#[test]
fn training_killed_mid_epoch_resumes_to_the_same_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let straight = experiment(tmp.path(), &data, "straight", "");
    let o = embcam(&["train", straight.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));

    // The same experiment into another folder, killed (SIGKILL) as soon as the first epoch's
    // checkpoint exists: somewhere in epoch 2 of 6.
    let killed = experiment(tmp.path(), &data, "killed", "");
    let mut child = Command::new(env!("CARGO_BIN_EXE_embcam"))
        .args(["train", killed.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stages = tmp.path().join("killed/faults/stages");
    let start = Instant::now();
    // `last/` appears by a rename once the epoch's checkpoint is complete.
    let checkpointed =
        || find(&stages, "model.bpk").iter().any(|p| p.parent().unwrap().ends_with("last"));
    while !checkpointed() {
        assert!(start.elapsed() < Duration::from_secs(120), "no checkpoint after 2 minutes");
        assert!(child.try_wait().unwrap().is_none(), "training ended before it could be killed");
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(find(&stages, "DONE").is_empty(), "the killed training must not look finished");

    let o = embcam(&["train", killed.to_str().unwrap()]);
    let t = text(&o);
    assert!(o.status.success() && t.contains("resuming training"), "{t}");
    let weights = |root: &str| {
        let f = find(&tmp.path().join(root), "model.safetensors");
        let best: Vec<&PathBuf> =
            f.iter().filter(|p| p.to_string_lossy().contains("best")).collect();
        assert_eq!(best.len(), 1, "{f:?}");
        std::fs::read(best[0]).unwrap()
    };
    assert!(weights("straight") == weights("killed"), "resumed weights differ from uninterrupted");
}

#[test]
fn a_damaged_dataset_is_reported_problem_by_problem_and_never_half_used() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("s");
    assert!(synth(&out, &[]).status.success());
    let root = out.join("CUB_200_2011");
    let lines = |f: &str| -> Vec<String> {
        std::fs::read_to_string(root.join(f)).unwrap().lines().map(String::from).collect()
    };
    let images = lines("images.txt");
    let path_of = |k: usize| root.join("images").join(images[k].split(' ').nth(1).unwrap());
    // 1. a missing image, 2. a truncated JPEG, 3. a mask of the wrong size.
    std::fs::remove_file(path_of(0)).unwrap();
    let jpeg = std::fs::read(path_of(1)).unwrap();
    std::fs::write(path_of(1), &jpeg[..jpeg.len() / 2]).unwrap();
    let rel = images[2].split(' ').nth(1).unwrap().replace(".jpg", ".png");
    image::GrayImage::new(7, 5).save(out.join("segmentations").join(rel)).unwrap();
    // 4. a duplicate id (image 4's line again), 5. a box outside its image (image 5).
    let mut dup = images.clone();
    dup.push(images[3].clone());
    std::fs::write(root.join("images.txt"), dup.join("\n") + "\n").unwrap();
    let mut boxes = lines("bounding_boxes.txt");
    boxes[4] = format!("{} 5000 5000 10 10", boxes[4].split(' ').next().unwrap());
    std::fs::write(root.join("bounding_boxes.txt"), boxes.join("\n") + "\n").unwrap();

    let o = embcam(&["validate", out.to_str().unwrap()]);
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    for (what, needle) in [
        ("missing image", "image id 1: cannot read"),
        ("truncated JPEG", "truncated"),
        ("wrong-size mask", "7×5"),
        ("duplicate id", "appears again"),
        ("box outside", "bounding_boxes.txt:5"),
    ] {
        assert!(t.contains(needle), "{what} not reported ({needle}):\n{t}");
    }
    let problems = t.lines().filter(|l| l.starts_with("problem:")).count();
    let counted: usize = t
        .lines()
        .find_map(|l| l.strip_suffix(" problem(s) found"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap();
    assert!(problems >= 5 && problems == counted, "{problems} listed, {counted} counted:\n{t}");

    // A run on it stops before training with the first problem and where to see them all, and
    // leaves nothing that looks finished.
    let exp = tmp.path().join("e.toml");
    std::fs::write(
        &exp,
        format!(
            "[dataset]\nkind = \"cub\"\npath = \"{}\"\n[output]\ndir = \"{}\"\n",
            root.display(),
            tmp.path().join("results").display()
        ),
    )
    .unwrap();
    let o = embcam(&["run", exp.to_str().unwrap()]);
    let t = text(&o);
    assert!(!o.status.success() && t.contains("appears again"), "{t}");
    assert!(t.contains("embcam validate"), "{t}");
    assert!(!t.contains("panicked"), "{t}");
    assert!(find(&tmp.path().join("results"), "DONE").is_empty());
}

#[test]
fn an_unwritable_results_folder_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    // A results "folder" below a plain file cannot be created, even by root (unlike a chmod).
    std::fs::write(tmp.path().join("file"), b"not a folder").unwrap();
    let exp = experiment(tmp.path(), &tmp.path().join("data"), "unwritable", "");
    let toml = std::fs::read_to_string(&exp).unwrap().replace("/unwritable\"", "/file/results\"");
    std::fs::write(&exp, toml).unwrap();
    let o = embcam(&["run", exp.to_str().unwrap()]);
    let t = text(&o);
    assert!(!o.status.success() && !t.contains("panicked"), "{t}");
    assert!(t.contains("Error: creating") && t.contains("file/results"), "{t}");
}

#[test]
fn a_disk_that_fills_up_stops_the_run_cleanly_and_a_rerun_finishes_it() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let exp = experiment(tmp.path(), &data, "full", "");
    // The dataset first (it is not what this test is about), then a run whose files may not grow
    // past 256 KiB (RLIMIT_FSIZE, with SIGXFSZ ignored so writes fail with EFBIG like a full
    // disk): the first checkpoint does not fit.
    let o = embcam(&["train", experiment(tmp.path(), &data, "warmup", "").to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let o = Command::new("bash")
        .args(["-c", "trap '' XFSZ; ulimit -f 256; exec \"$0\" run \"$1\""])
        .args([env!("CARGO_BIN_EXE_embcam"), exp.to_str().unwrap()])
        .output()
        .unwrap();
    let t = text(&o);
    assert!(!o.status.success() && !t.contains("panicked"), "{t}");
    assert!(t.contains("Error:") && t.contains("too large"), "{t}");
    let results = tmp.path().join("full");
    assert!(find(&results, "DONE").is_empty(), "a failed stage must not look finished");
    let leftovers = find_where(&results, &|n| n.starts_with(".tmp-"));
    assert!(leftovers.is_empty(), "temporary files left behind: {leftovers:?}");
    // With space again, the same command finishes.
    let o = embcam(&["run", exp.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(find(&results, "DONE").len(), 4, "train, explain, evaluate, the run");
}

/// The shipped quickstart (one seed, three epochs), run twice from scratch into separate folders,
/// writes the same tables byte for byte on flex.
#[test]
fn the_quickstart_twice_gives_identical_tables() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let quickstart = std::fs::read_to_string(repo.join("experiments/quickstart.toml")).unwrap();
    let data = tmp.path().join("data");
    let run = |name: &str| -> PathBuf {
        let out = tmp.path().join(name);
        // One seed and three epochs keep the test in CI's budget, and so does leaving out the
        // ground truth (rendering the whole dataset's interventions takes minutes); the rest is
        // the shipped file.
        let toml = quickstart
            .replace("path = \"datasets/synthcub\"", &format!("path = \"{}\"", data.display()))
            .replace("seeds = [0, 1, 2]", "seeds = [0]")
            .replace("epochs = 12", "epochs = 3")
            .replace("ground_truth = true", "ground_truth = false")
            + &format!("\n[output]\ndir = \"{}\"\n", out.display());
        assert!(toml.contains(&data.display().to_string()), "quickstart.toml changed shape");
        assert!(
            toml.contains("seeds = [0]\n")
                && toml.contains("epochs = 3\n")
                && toml.contains("ground_truth = false\n"),
            "quickstart.toml changed shape"
        );
        let exp = tmp.path().join(format!("{name}.toml"));
        std::fs::write(&exp, toml).unwrap();
        let o = embcam(&["run", exp.to_str().unwrap()]);
        assert!(o.status.success(), "{}", text(&o));
        out.join("quickstart/runs/run-001")
    };
    let (a, b) = (run("first"), run("second"));
    for f in [
        "summary.md",
        "summary.csv",
        "metrics.csv",
        "split_metrics.csv",
        "tau_curves.csv",
        "training.csv",
        "comparisons.csv",
        "randomisation.csv",
    ] {
        assert!(
            std::fs::read(a.join(f)).unwrap() == std::fs::read(b.join(f)).unwrap(),
            "{f} differs between two runs with one seed"
        );
    }
}
