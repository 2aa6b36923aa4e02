//! `embcam run` end to end on a tiny generated experiment.

use std::path::Path;

use crate::{embcam, text};

fn tiny(dir: &Path, extra: &str) -> std::path::PathBuf {
    tiny_with(dir, "", extra)
}

fn tiny_with(dir: &Path, eval: &str, extra: &str) -> std::path::PathBuf {
    let path = dir.join("tiny.toml");
    let text = format!(
        r#"name = "tiny"
[dataset]
kind = "synth"
path = "{data}"
image_size = 40
[dataset.synth]
classes = 4
images_per_class = 6
min_side = 64
max_side = 80
[model]
embedding_dim = 8
[train]
epochs = 1
p = 2
k = 3
[cam]
methods = ["embeddingcam", "eigencam"]
gallery = 2
[eval]
max_images = 8
{eval}
[output]
dir = "{out}"
{extra}"#,
        data = dir.join("data").display(),
        out = dir.join("results").display(),
    );
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_tiny_experiment_writes_everything_then_reuses_every_stage() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = tiny(tmp.path(), "");
    let o = embcam(&["run", exp.to_str().unwrap()]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("train: computed") && t.contains("explain: computed"), "{t}");
    let run = tmp.path().join("results/tiny/runs/run-001");
    for f in [
        "DONE",
        "config.toml",
        "config.resolved.toml",
        "manifest.json",
        "metrics.csv",
        "metrics.parquet",
        "split_metrics.csv",
        "summary.md",
        "summary.csv",
        "tau_curves.csv",
        "plots/box_ratio.png",
        "plots/mask_ratio.png",
        "plots/loc_acc_vs_tau.png",
        "plots/training_loss.png",
        "gallery/gallery-block4.png",
    ] {
        assert!(run.join(f).is_file(), "missing {f}\n{t}");
    }
    let summary = std::fs::read_to_string(run.join("summary.md")).unwrap();
    for row in [
        "| embeddingcam | normalized-mean | block4 |",
        "| embeddingcam | single-point | block4 |",
        "| eigencam | - | block4 |",
        "| embeddingcam (untrained) | normalized-mean | block4 |",
        "| center-gaussian | - | - |",
        "| uniform-random | - | - |",
    ] {
        assert!(summary.contains(row), "no row {row}:\n{summary}");
    }
    // 8 images × (2 trained EmbeddingCAM + 1 Eigen-CAM + 2 untrained + 2 baselines) rows.
    let metrics = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    assert_eq!(metrics.lines().count(), 1 + 8 * 7);
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["cells"][0]["split"], "class-disjoint");

    // Again: every stage reused, a new run folder, the same numbers.
    let o = embcam(&["run", exp.to_str().unwrap()]);
    let t = text(&o);
    assert!(
        o.status.success() && t.contains("train: reused") && t.contains("explain: reused"),
        "{t}"
    );
    let run2 = tmp.path().join("results/tiny/runs/run-002");
    assert_eq!(
        std::fs::read(run.join("summary.md")).unwrap(),
        std::fs::read(run2.join("summary.md")).unwrap()
    );

    // --force recomputes, and with the same seed gives the same numbers.
    let o = embcam(&["run", exp.to_str().unwrap(), "--force"]);
    let t = text(&o);
    assert!(
        o.status.success() && t.contains("train: computed") && t.contains("explain: computed"),
        "{t}"
    );
    let run3 = tmp.path().join("results/tiny/runs/run-003");
    assert_eq!(
        std::fs::read(run.join("metrics.csv")).unwrap(),
        std::fs::read(run3.join("metrics.csv")).unwrap()
    );
}

#[test]
fn a_typo_in_the_experiment_names_the_key_and_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = tiny(tmp.path(), "tua = 0.3\n");
    let o = embcam(&["run", exp.to_str().unwrap()]);
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(t.contains("tiny.toml") && t.contains("tua"), "{t}");
}

#[test]
fn missing_real_data_says_where_to_put_it() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = tmp.path().join("cub.toml");
    std::fs::write(&exp, "[dataset]\nkind = \"cub\"\npath = \"/nonexistent/CUB_200_2011\"\n")
        .unwrap();
    let o = embcam(&["run", exp.to_str().unwrap()]);
    let t = text(&o);
    assert!(!o.status.success() && t.contains("datasets/README.md"), "{t}");
    assert!(!t.contains("panicked"), "{t}");
}

#[test]
fn faithfulness_curves_fill_their_columns_when_asked() {
    let tmp = tempfile::tempdir().unwrap();
    let exp =
        tiny_with(tmp.path(), "faithfulness = true\nfaithfulness_steps = 4\nbaselines = []", "");
    let o = embcam(&["run", exp.to_str().unwrap()]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    let summary =
        std::fs::read_to_string(tmp.path().join("results/tiny/runs/run-001/summary.md")).unwrap();
    assert!(summary.contains("deletion AUC") && summary.contains("insertion AUC"), "{summary}");
    // AUCs of a similarity in [−1, 1] over f ∈ [0, 1].
    let csv =
        std::fs::read_to_string(tmp.path().join("results/tiny/runs/run-001/metrics.csv")).unwrap();
    let head: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let col = head.iter().position(|h| *h == "deletion_auc").unwrap();
    let values: Vec<f64> =
        csv.lines().skip(1).map(|l| l.split(',').nth(col).unwrap().parse().unwrap()).collect();
    assert_eq!(values.len(), 8 * 3);
    assert!(values.iter().all(|v| (-1.0..=1.0).contains(v)), "{values:?}");
}
