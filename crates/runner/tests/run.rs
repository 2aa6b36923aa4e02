//! `embcam run` end to end on a tiny generated experiment.

use std::path::Path;

use crate::{embcam, text};

/// A `.npy` file of f32 as this project writes it (128-byte header): its shape text and values.
fn read_npy(path: &Path) -> (String, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap();
    let header = String::from_utf8_lossy(&bytes[10..128]).to_string();
    let shape = header.split("'shape': ").nth(1).unwrap().split(", }").next().unwrap().to_string();
    let values = bytes[128..].chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap()));
    (shape, values.collect())
}

/// Run `embcam args`, check it succeeded and that each named stage was `reused` or `computed`;
/// returns its output.
fn stages(args: &[&str], expect: &[(&str, &str)]) -> String {
    let o = embcam(args);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    for (stage, how) in expect {
        assert!(t.contains(&format!("{stage}: {how}")), "{stage} not {how}:\n{t}");
    }
    t
}

/// The (one) explain stage folder of the tiny experiment in `dir`.
fn explain_stage(dir: &Path) -> std::path::PathBuf {
    std::fs::read_dir(dir.join("results/tiny/stages"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("explain-"))
        .unwrap()
}

fn tiny(dir: &Path, extra: &str) -> std::path::PathBuf {
    tiny_with(dir, "", extra)
}

pub(crate) fn tiny_with(dir: &Path, eval: &str, extra: &str) -> std::path::PathBuf {
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
    let computed = [("train", "computed"), ("explain", "computed"), ("evaluate", "computed")];
    let t = stages(&["run", exp.to_str().unwrap()], &computed);
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
        "training.csv",
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
    // 8 images × (2 trained EmbeddingCAM + 1 Eigen-CAM, the same 3 on the untrained network,
    // 2 baselines) rows.
    let metrics = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    assert_eq!(metrics.lines().count(), 1 + 8 * 8);
    // Retrieval quality beside the explanations, and the paired comparisons.
    assert!(summary.contains("## Retrieval quality of the explained networks"), "{summary}");
    let comparisons = std::fs::read_to_string(run.join("comparisons.md")).unwrap();
    assert!(
        comparisons.contains(
            "| box ratio | embeddingcam / normalized-mean | embeddingcam / single-point | block4 |"
        ),
        "{comparisons}"
    );
    assert!(comparisons.contains("| eigencam | eigencam (untrained) | block4 |"), "{comparisons}");
    assert!(
        run.join("comparisons.csv").is_file() && run.join("plots/compare_box_ratio.png").is_file()
    );
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["cells"][0]["split"], "class-disjoint");

    // Again: every stage reused, a new run folder, the same numbers.
    let reused = [("train", "reused"), ("explain", "reused"), ("evaluate", "reused")];
    stages(&["run", exp.to_str().unwrap()], &reused);
    let run2 = tmp.path().join("results/tiny/runs/run-002");
    // Byte for byte, the full-precision data files too: a stage's numbers read back from its
    // JSON must be the numbers it wrote (serde_json's float_roundtrip).
    for f in ["summary.md", "metrics.csv", "split_metrics.csv", "comparisons.csv"] {
        assert!(
            std::fs::read(run.join(f)).unwrap() == std::fs::read(run2.join(f)).unwrap(),
            "{f} differs between a run and its cached rerun"
        );
    }

    // --force recomputes, and with the same seed gives the same numbers.
    stages(&["run", exp.to_str().unwrap(), "--force"], &computed);
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
fn numbers_out_of_range_are_refused_with_key_and_file_before_the_data_stage() {
    for (from, to, key) in [
        ("epochs = 1\n", "epochs = 0\n", "train.epochs"),
        ("max_images = 8\n", "max_images = 0\n", "eval.max_images"),
        ("[cam]\n", "[cam]\nproxy_images_per_class = 0\n", "cam.proxy_images_per_class"),
        ("[cam]\n", "[cam]\nproxies = [\"knn\"]\nknn = 1000000000\n", "cam.knn"),
        ("embedding_dim = 8\n", "embedding_dim = 1000000000\n", "model.embedding_dim"),
        ("[cam]\n", "[cam]\nproxies = [\"knn\", \"knn\"]\n", "cam.proxies"),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let exp = tiny(tmp.path(), "");
        let changed = std::fs::read_to_string(&exp).unwrap().replacen(from, to, 1);
        std::fs::write(&exp, changed).unwrap();
        let o = embcam(&["run", exp.to_str().unwrap()]);
        let t = text(&o);
        assert!(!o.status.success() && t.contains(key) && t.contains("tiny.toml"), "{t}");
        assert!(!tmp.path().join("data").exists(), "{key}: the data stage ran:\n{t}");
    }
}

#[test]
fn more_neighbours_than_the_proxy_set_holds_is_refused_before_training() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = tiny(tmp.path(), "");
    // 8 evaluation images: each has 7 others.
    let knn = |k: usize| {
        let t = std::fs::read_to_string(&exp).unwrap();
        let t = t.replace("[cam]\n", &format!("[cam]\nproxies = [\"knn\"]\nknn = {k}\n"));
        let path = tmp.path().join(format!("knn{k}.toml"));
        std::fs::write(&path, t).unwrap();
        path
    };
    let o = embcam(&["train", knn(8).to_str().unwrap()]);
    let t = text(&o);
    assert!(!o.status.success() && t.contains("cam.knn = 8") && t.contains("knn8.toml"), "{t}");
    assert!(t.contains("must be below 8") && !t.contains("train:"), "{t}");
    let stages = std::fs::read_dir(tmp.path().join("results/tiny/stages"));
    assert!(stages.map_or(true, |mut d| d.next().is_none()), "a stage was written:\n{t}");
    let o = embcam(&["train", knn(7).to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
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
    // The mean curves: 4 steps → 5 points per group and direction, and their figures.
    let run = tmp.path().join("results/tiny/runs/run-001");
    let curves = std::fs::read_to_string(run.join("faithfulness_curves.csv")).unwrap();
    assert_eq!(
        curves.lines().next(),
        Some("cell,source,proxy,stage,seed,fraction,deletion,insertion")
    );
    assert_eq!(curves.lines().count(), 1 + 3 * 5, "{curves}");
    assert!(run.join("plots/deletion.png").is_file() && run.join("plots/insertion.png").is_file());
}

#[test]
fn explain_then_evaluate_then_rescoring_reuses_the_heatmaps() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = tiny(tmp.path(), "");
    let t = stages(&["explain", exp.to_str().unwrap()], &[("explain", "computed")]);
    assert!(!t.contains("evaluate:") && !tmp.path().join("results/tiny/runs").exists(), "{t}");
    // The raw maps are on disk: 8 images × 2 proxies of 2×2 (40 px input, block4 at /16).
    let stage = explain_stage(tmp.path());
    let (shape, maps) = read_npy(&stage.join("embeddingcam-block4.npy"));
    assert_eq!((shape.as_str(), maps.len()), ("(16, 2, 2)", 16 * 4));
    let index = std::fs::read_to_string(stage.join("embeddingcam-block4.csv")).unwrap();
    assert_eq!(index.lines().count(), 1 + 16);
    // The embeddings the proxies came from: 8 images × d = 8, and the untrained network's.
    let (shape, z) = read_npy(&stage.join("embeddings.npy"));
    assert_eq!((shape.as_str(), z.len()), ("(8, 8)", 64));
    assert!(z.iter().all(|v| v.is_finite()) && z.iter().any(|&v| v != 0.0));
    assert!(stage.join("embeddings_(untrained).npy").is_file());
    let ids = std::fs::read_to_string(stage.join("embeddings.csv")).unwrap();
    assert_eq!(ids.lines().next(), Some("row,image_id,class_id"));
    assert_eq!(ids.lines().count(), 1 + 8);

    // evaluate reuses the heatmaps and prints the table without making a run folder.
    let t = stages(
        &["evaluate", exp.to_str().unwrap()],
        &[("explain", "reused"), ("evaluate", "computed")],
    );
    assert!(t.contains("| embeddingcam | normalized-mean | block4 |"), "{t}");
    assert!(!tmp.path().join("results/tiny/runs").exists());

    // Another τ re-scores the stored heatmaps: explain reused, evaluate computed.
    let exp = tiny_with(tmp.path(), "tau = 0.35", "");
    stages(
        &["run", exp.to_str().unwrap()],
        &[("train", "reused"), ("explain", "reused"), ("evaluate", "computed")],
    );
}

#[test]
fn report_remakes_a_runs_tables_and_plots_and_compares_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = tiny_with(tmp.path(), "faithfulness = true\nfaithfulness_steps = 4", "");
    assert!(embcam(&["run", exp.to_str().unwrap()]).status.success());
    let run = tmp.path().join("results/tiny/runs/run-001");
    let views = [
        "summary.md",
        "summary.csv",
        "plots/box_ratio.png",
        "plots/loc_acc_vs_tau.png",
        "plots/deletion.png",
        "plots/training_map_at_r.png",
    ];
    let before: Vec<Vec<u8>> = views.iter().map(|f| std::fs::read(run.join(f)).unwrap()).collect();
    for f in views {
        std::fs::remove_file(run.join(f)).unwrap();
    }
    // Made again from the run's data files alone: the same bytes.
    let o = embcam(&["report", run.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    for (f, b) in views.iter().zip(&before) {
        assert_eq!(&std::fs::read(run.join(f)).unwrap(), b, "{f} differs");
    }

    // Two runs side by side: each run's rows under its own label.
    let exp = tiny_with(tmp.path(), "faithfulness = true\nfaithfulness_steps = 4\ntau = 0.35", "");
    assert!(embcam(&["run", exp.to_str().unwrap()]).status.success());
    let run2 = tmp.path().join("results/tiny/runs/run-002");
    let (a, b) = (run.to_str().unwrap(), run2.to_str().unwrap());
    let o = embcam(&["report", a, b]);
    assert!(!o.status.success() && text(&o).contains("--out"), "{}", text(&o));
    let out = tmp.path().join("both");
    let o = embcam(&["report", a, b, "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let summary = std::fs::read_to_string(out.join("summary.md")).unwrap();
    for label in ["| tiny/run-001 | embeddingcam |", "| tiny/run-002 | embeddingcam |"] {
        assert!(summary.contains(label), "{summary}");
    }
    assert!(out.join("plots/box_ratio-cell2.png").is_file());
    // An existing report is not replaced without --force.
    let o = embcam(&["report", a, b, "--out", out.to_str().unwrap()]);
    assert!(!o.status.success() && text(&o).contains("--force"), "{}", text(&o));
    assert!(embcam(&["report", a, b, "--out", out.to_str().unwrap(), "--force"]).status.success());
    // One run named twice, under another spelling, would count its images twice.
    let again = tmp.path().join("results/tiny/runs/../runs/./run-001");
    let o = embcam(&["report", a, again.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(!o.status.success() && text(&o).contains("are the same run folder"), "{}", text(&o));
    let o = embcam(&["report", a, b, a, "--out", tmp.path().join("thrice").to_str().unwrap()]);
    assert!(!o.status.success() && text(&o).contains("are the same run folder"), "{}", text(&o));
    let o = embcam(&["report", tmp.path().join("nowhere").to_str().unwrap()]);
    assert!(!o.status.success() && text(&o).contains("cannot be read"), "{}", text(&o));
    // An unfinished folder is refused with the reason.
    let o = embcam(&["report", tmp.path().to_str().unwrap()]);
    assert!(!o.status.success() && text(&o).contains("not a finished run folder"), "{}", text(&o));
}

#[test]
fn bench_prints_a_table_and_never_overwrites() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("bench.md");
    let args = ["bench", "--size", "32", "--batch", "4", "--iters", "1", "--proxies", "2"];
    let o = embcam(&[&args[..], &["--out", out.to_str().unwrap()]].concat());
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    let md = std::fs::read_to_string(&out).unwrap();
    for row in [
        "| training step",
        "| inference |",
        "2 proxies per image, autodiff",
        "closed form",
        "| all per-image metrics",
    ] {
        assert!(md.contains(row), "{md}");
    }
    // Every throughput is a positive number.
    for line in md.lines().filter(|l| l.starts_with("| ") && !l.starts_with("| what")) {
        let v: f64 = line.split('|').nth(3).unwrap().trim().parse().unwrap();
        assert!(v > 0.0, "{line}");
    }
    let o = embcam(&[&args[..], &["--out", out.to_str().unwrap()]].concat());
    assert!(!o.status.success() && text(&o).contains("never overwritten"), "{}", text(&o));
    let o = embcam(&["bench", "--device", "tch-cpu", "--iters", "1"]);
    assert!(!o.status.success() && !text(&o).contains("panicked"), "{}", text(&o));
    // Sizes below the network's downsampling panicked inside burn's convolution: now refused
    // with the range, before any work.
    for (backbone, size, range) in [
        ("small-cnn", "0", "16–1024"),
        ("small-cnn", "8", "16–1024"),
        ("resnet18", "16", "32–1024"),
    ] {
        let o = embcam(&["bench", "--backbone", backbone, "--size", size]);
        let t = text(&o);
        assert!(!o.status.success() && t.contains("--size") && t.contains(range), "{t}");
        assert!(!t.contains("panicked"), "{t}");
    }
    let o = embcam(&["bench", "--dim", "1000000000"]);
    assert!(!o.status.success() && text(&o).contains("--dim"), "{}", text(&o));
}

#[test]
fn a_classifier_is_explained_with_classic_gradcam_and_embeddings_refuse_it() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = tiny(tmp.path(), "");
    let text_of = std::fs::read_to_string(&exp).unwrap();
    let classifier = text_of
        .replace("[model]\n", "[model]\nhead = \"classifier\"\n")
        .replace("[cam]\n", "[cam]\nproxies = [\"class-score\", \"normalized-mean\"]\n");
    std::fs::write(&exp, &classifier).unwrap();
    let o = embcam(&["run", exp.to_str().unwrap()]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    let summary =
        std::fs::read_to_string(tmp.path().join("results/tiny/runs/run-001/summary.md")).unwrap();
    assert!(summary.contains("| embeddingcam | class-score | block4 |"), "{summary}");
    // An embedding network has no class scores: refused with the reason, before any work.
    std::fs::write(&exp, classifier.replace("head = \"classifier\"\n", "")).unwrap();
    let o = embcam(&["run", exp.to_str().unwrap()]);
    let t = text(&o);
    assert!(!o.status.success() && t.contains("class-score") && t.contains("model.head"), "{t}");
}

/// `metrics.csv` holds, under each column's name, the eval crate's value for that image: the
/// centre-Gaussian baseline's rows recomputed here from the dataset and `embcam_eval` directly
/// (a column swap, or a value from the wrong field, fails).
#[test]
fn metrics_csv_rows_are_the_eval_crates_scores() {
    use embcam_eval::{BaselineMap, EvalConfig, ImageTruth, score_image};
    let tmp = tempfile::tempdir().unwrap();
    let exp = tiny_with(tmp.path(), "baselines = [\"center-gaussian\"]", "");
    let o = embcam(&["run", exp.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let csv =
        std::fs::read_to_string(tmp.path().join("results/tiny/runs/run-001/metrics.csv")).unwrap();
    let mut lines = csv.lines();
    let head: Vec<&str> = lines.next().unwrap().split(',').collect();
    let root = tmp.path().join("data/CUB_200_2011");
    let ds =
        embcam_cub::Dataset::open(&root, Some(&tmp.path().join("data/segmentations"))).unwrap();
    let parts: std::collections::HashMap<u32, u32> =
        embcam_cub::synth::read_discriminative_parts(&root).unwrap().unwrap().into_iter().collect();
    let cfg = EvalConfig::default();
    let mut checked = 0;
    for line in lines.filter(|l| l.split(',').nth(1) == Some("center-gaussian")) {
        let fields: Vec<&str> = line.split(',').collect();
        let col = |name: &str| -> Option<f64> {
            let v = fields[head.iter().position(|h| *h == name).unwrap()];
            (!v.is_empty()).then(|| v.parse().unwrap())
        };
        let id = col("image_id").unwrap() as u32;
        let rec = ds.image(id).unwrap();
        let (width, height) = embcam_cub::load::image_size(&ds.image_path(rec), id).unwrap();
        let truth = ImageTruth {
            id,
            width,
            height,
            bbox: rec.bbox,
            mask: ds.read_mask(rec).unwrap(),
            parts: rec.parts.clone(),
            discriminative_part: parts.get(&rec.class_id).copied(),
        };
        let map = BaselineMap::CentreGaussian { sigma: 0.25 }.heatmap(&truth);
        let s = score_image(&map, &truth, &cfg).unwrap();
        let rate = |b: bool| Some(if b { 1.0 } else { 0.0 });
        for (name, want) in [
            ("box_ratio", Some(s.box_ratio)),
            ("box_area_ratio", Some(s.box_area_ratio)),
            ("mask_ratio", s.mask_ratio),
            ("mask_area_ratio", s.mask_area_ratio),
            ("loc_iou", Some(s.loc_iou)),
            ("loc_acc", rate(s.loc_hit)),
            ("pointing_box", Some(s.pointing_box)),
            ("pointing_mask", s.pointing_mask),
            ("zero_map", rate(s.zero_map)),
            ("deletion_auc", None),
            ("insertion_auc", None),
        ] {
            let got = col(name);
            assert!(
                got.is_some() == want.is_some()
                    && got.zip(want).is_none_or(|(g, w)| (g - w).abs() < 1e-12),
                "image {id}, {name}: metrics.csv has {got:?}, the eval crate {want:?}"
            );
        }
        checked += 1;
    }
    assert_eq!(checked, 8, "{csv}");
}

/// Chen et al. 2020 runs from an experiment file: fitted on the training split, transferred from
/// k-means centres, stored as one map per image and scored like every method (proxy `-`), with
/// its own untrained baseline.
#[test]
fn chen_runs_from_an_experiment_file() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = tiny(tmp.path(), "");
    let text =
        std::fs::read_to_string(&exp).unwrap().replace("\"eigencam\"]", "\"chen\"]").replace(
            "gallery = 2\n",
            "gallery = 2\n[cam.chen]\ntriplets = 4\ntransfer = \"k-means\"\ncentres = 3\n",
        );
    std::fs::write(&exp, text).unwrap();
    let t = stages(&["run", exp.to_str().unwrap()], &[("explain", "computed")]);
    let run = tmp.path().join("results/tiny/runs/run-001");
    let summary = std::fs::read_to_string(run.join("summary.md")).unwrap();
    assert!(summary.contains("| chen | - | block4 | 1 | 8 |"), "{summary}\n{t}");
    assert!(summary.contains("| chen (untrained) | - | block4 |"), "{summary}");
    let metrics = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    assert_eq!(metrics.lines().filter(|l| l.starts_with("\"\",chen,-,block4,")).count(), 8);
    let stage = explain_stage(tmp.path());
    let (shape, maps) = read_npy(&stage.join("chen-block4.npy"));
    assert_eq!(shape, "(8, 2, 2)");
    assert!(maps.iter().all(|v| v.is_finite()));
}

#[test]
fn two_runs_started_at_once_share_each_stage_and_get_their_own_run_folders() {
    let tmp = tempfile::tempdir().unwrap();
    // Nothing generated yet: both processes also race to generate the SynthCUB.
    let exp = tiny(tmp.path(), "");
    let spawn = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_embcam"))
            .args(["run", exp.to_str().unwrap()])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let outputs = [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()];
    let texts: Vec<String> = outputs.iter().map(text).collect();
    for (o, t) in outputs.iter().zip(&texts) {
        assert!(o.status.success(), "{t}");
    }
    let both = texts.join("\n");
    // Each stage computed by exactly one process and reused by the other.
    for stage in ["train", "explain", "evaluate"] {
        assert_eq!(both.matches(&format!("{stage}: computed")).count(), 1, "{stage}:\n{both}");
        assert_eq!(both.matches(&format!("{stage}: reused")).count(), 1, "{stage}:\n{both}");
    }
    let folder =
        |t: &str| t.lines().find_map(|l| l.strip_prefix("run folder: ")).unwrap().to_string();
    let (ra, rb) = (folder(&texts[0]), folder(&texts[1]));
    assert_ne!(ra, rb, "both processes wrote into one run folder");
    let runs = tmp.path().join("results/tiny/runs");
    let mut names: Vec<String> = std::fs::read_dir(&runs)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["run-001", "run-002"]);
    for f in ["summary.md", "metrics.csv", "split_metrics.csv"] {
        let read = |r: &str| std::fs::read(Path::new(r).join(f)).unwrap();
        assert_eq!(read(&ra), read(&rb), "{f} differs between the two runs");
    }
    for r in [&ra, &rb] {
        assert!(Path::new(r).join("DONE").is_file() && !Path::new(r).join("LOCK").exists());
    }
    // No lock and no half-generated dataset left behind.
    let leftovers: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .chain(std::fs::read_dir(tmp.path().join("results/tiny/stages")).unwrap())
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.') || n.ends_with(".lock"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn relative_paths_follow_the_experiment_file_not_the_working_directory() {
    let tmp = tempfile::tempdir().unwrap();
    // A project like this repository: a Cargo.toml at its root, experiments/ below it, relative
    // `datasets/…` and `results` paths meaning the root's folders.
    let project = tmp.path().join("project");
    let folder = project.join("experiments");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(project.join("Cargo.toml"), "[workspace]\n").unwrap();
    let exp = tiny(&folder, "");
    let toml = std::fs::read_to_string(&exp).unwrap();
    let toml = toml
        .replace(&folder.join("data").display().to_string(), "datasets/synth")
        .replace(&folder.join("results").display().to_string(), "results");
    std::fs::write(&exp, toml).unwrap();
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let run_in = |cwd: &Path, file: &str| {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_embcam"))
            .args(["run", file])
            .current_dir(cwd)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
        text(&o)
    };
    let first = run_in(&project, "experiments/tiny.toml");
    assert!(first.contains("train: computed"), "{first}");
    let second = run_in(&elsewhere, "../project/experiments/tiny.toml");
    for stage in ["train", "explain", "evaluate"] {
        assert!(second.contains(&format!("{stage}: reused")), "{second}");
    }
    assert!(project.join("datasets/synth/CUB_200_2011").is_dir());
    for run in ["run-001", "run-002"] {
        assert!(project.join("results/tiny/runs").join(run).join("DONE").is_file());
    }
    // Nothing made beside the working directory or the file.
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
    assert!(!folder.join("datasets").exists() && !folder.join("results").exists());

    // Without a Cargo.toml above it, the file's own folder is the root.
    std::fs::remove_file(project.join("Cargo.toml")).unwrap();
    let third = run_in(&elsewhere, exp.to_str().unwrap());
    assert!(third.contains("train: computed"), "{third}");
    assert!(folder.join("datasets/synth/CUB_200_2011").is_dir());
    assert!(folder.join("results/tiny/runs/run-001/DONE").is_file());
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
}

#[test]
fn missing_masks_and_a_wrong_mask_folder_stop_a_run_before_training() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = tiny(tmp.path(), "");
    let e = exp.to_str().unwrap();
    stages(&["train", e], &[("train", "computed")]);
    // Another training setting: a run that got past the checks would train again.
    let toml = std::fs::read_to_string(&exp).unwrap().replace("epochs = 1", "epochs = 2");
    std::fs::write(&exp, toml).unwrap();
    let data = tmp.path().join("data");
    let (seg, away) = (data.join("segmentations"), tmp.path().join("masks-away"));
    let refused = |what: &str| {
        let o = embcam(&["train", e]);
        let t = text(&o);
        assert!(!o.status.success() && t.contains(what), "{t}");
        assert!(!t.contains("train:") && !t.contains("epoch"), "trained first:\n{t}");
        t
    };

    // The wrong folder (an empty one): one error naming it, not one line per image.
    std::fs::rename(&seg, &away).unwrap();
    std::fs::create_dir(&seg).unwrap();
    let t = refused(&format!("segmentation folder {} holds none of the", seg.display()));
    assert_eq!(t.matches("image id").count(), 1, "{t}");
    // `embcam validate` says the same, once.
    let root = data.join("CUB_200_2011");
    let o = embcam(&["validate", root.to_str().unwrap(), "--segmentations", seg.to_str().unwrap()]);
    let t = text(&o);
    assert!(!o.status.success() && t.contains("has 1 problem(s)"), "{t}");
    assert!(t.contains("holds none of the 24 masks") && !t.contains("restore the file"), "{t}");

    // One mask missing from every class folder: the first named with its image id.
    std::fs::remove_dir(&seg).unwrap();
    std::fs::rename(&away, &seg).unwrap();
    let mut removed = Vec::new();
    for class in std::fs::read_dir(&seg).unwrap() {
        let mut masks: Vec<_> =
            std::fs::read_dir(class.unwrap().path()).unwrap().map(|m| m.unwrap().path()).collect();
        masks.sort();
        std::fs::rename(&masks[0], masks[0].with_extension("bak")).unwrap();
        removed.push(masks[0].clone());
    }
    let t = refused("cannot read");
    assert!(removed.iter().any(|m| t.contains(&m.display().to_string())), "{t}");
    assert!(t.contains("nothing was trained or explained yet"), "{t}");
    for m in &removed {
        std::fs::rename(m.with_extension("bak"), m).unwrap();
    }

    // A box past its image's edge: the run goes on, with a warning naming the image and line.
    let boxes = root.join("bounding_boxes.txt");
    let text_boxes = std::fs::read_to_string(&boxes).unwrap();
    let first = text_boxes.lines().next().unwrap().to_string();
    std::fs::write(&boxes, text_boxes.replacen(&first, "1 0 0 5000 5000", 1)).unwrap();
    let t = stages(&["train", e], &[("train", "computed")]);
    assert!(t.contains("warning: ") && t.contains("bounding_boxes.txt:1: image id 1:"), "{t}");
}

#[test]
fn report_refuses_a_cut_or_header_only_metrics_file() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = tiny(tmp.path(), "");
    stages(&["run", exp.to_str().unwrap()], &[("evaluate", "computed")]);
    let run = tmp.path().join("results/tiny/runs/run-001");
    let metrics = run.join("metrics.csv");
    let whole = std::fs::read_to_string(&metrics).unwrap();
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("manifest.json")).unwrap()).unwrap();
    let rows = whole.lines().count() - 1;
    assert_eq!(manifest["metrics_rows"], rows);
    let report = || {
        let out = tmp.path().join("report");
        embcam(&["report", run.to_str().unwrap(), "--out", out.to_str().unwrap(), "--force"])
    };
    assert!(report().status.success());
    // Cut at a line boundary, and only the header: both parse as CSV; both are refused.
    let cut: String = whole.lines().take(rows - 5).map(|l| format!("{l}\n")).collect();
    let header = format!("{}\n", whole.lines().next().unwrap());
    for (damaged, what) in [
        (cut, format!("holds {} rows, but the run wrote {rows}", rows - 6)),
        (header, format!("holds 0 rows, but the run wrote {rows}")),
    ] {
        std::fs::write(&metrics, damaged).unwrap();
        let o = report();
        let t = text(&o);
        assert!(!o.status.success(), "{t}");
        assert!(t.contains(&metrics.display().to_string()) && t.contains(&what), "{t}");
        assert!(t.contains("embcam run"), "{t}");
    }
    // A manifest of an older run without the count: the header alone is still refused.
    let mut old = manifest.clone();
    old.as_object_mut().unwrap().remove("metrics_rows");
    std::fs::write(run.join("manifest.json"), serde_json::to_vec(&old).unwrap()).unwrap();
    let t = text(&report());
    assert!(t.contains("holds only its header"), "{t}");
    // … and so is a cut one, whose last method has fewer images than the others.
    let cut: String = whole.lines().take(rows - 4).map(|l| format!("{l}\n")).collect();
    std::fs::write(&metrics, cut).unwrap();
    let t = text(&report());
    assert!(t.contains("holds 3 to 8 images for the methods of cell `` seed 0"), "{t}");
    std::fs::write(&metrics, &whole).unwrap();
    assert!(report().status.success());
}

#[test]
fn a_damaged_finished_stage_is_recomputed_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = tiny(tmp.path(), "");
    let e = exp.to_str().unwrap();
    stages(&["run", e], &[("train", "computed")]);
    let stages_dir = tmp.path().join("results/tiny/stages");
    let stage = |prefix: &str| {
        std::fs::read_dir(&stages_dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.is_dir() && p.file_name().unwrap().to_string_lossy().starts_with(prefix))
            .unwrap()
    };
    for s in ["train-", "explain-", "evaluate-"] {
        assert!(stage(s).join("MANIFEST.json").is_file(), "{s} has no manifest");
    }
    let metrics = |run: &str| {
        std::fs::read(tmp.path().join("results/tiny/runs").join(run).join("metrics.csv")).unwrap()
    };
    // A heatmap deleted: the explain stage alone is recomputed, with a message.
    let npy = std::fs::read_dir(explain_stage(tmp.path()))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "npy"))
        .unwrap();
    std::fs::remove_file(&npy).unwrap();
    let t = stages(
        &["run", e],
        &[("train", "reused"), ("explain", "computed"), ("evaluate", "reused")],
    );
    assert!(t.contains(&format!("explain: {} is missing; recomputing this stage", npy.display())));
    assert!(npy.is_file());
    assert_eq!(metrics("run-001"), metrics("run-002"));
    // The best weights cut short: training alone, from scratch, to the same weights.
    let weights = stage("train-").join("run/best/model.safetensors");
    let bytes = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &bytes[..bytes.len() / 2]).unwrap();
    let t = stages(
        &["run", e],
        &[("train", "computed"), ("explain", "reused"), ("evaluate", "reused")],
    );
    assert!(t.contains("train: ") && t.contains("bytes, ") && t.contains("recomputing"), "{t}");
    assert_eq!(std::fs::read(&weights).unwrap(), bytes);
    // The stage's result file rewritten in place (same size): the hash sees it.
    let scored = stage("evaluate-").join("scored.json");
    let mut s = std::fs::read(&scored).unwrap();
    s[0] = b' ';
    std::fs::write(&scored, &s).unwrap();
    let t = stages(&["run", e], &[("evaluate", "computed")]);
    assert!(t.contains("scored.json changed since the stage finished"), "{t}");
    assert_eq!(metrics("run-001"), metrics("run-004"));
}

#[test]
fn a_real_dataset_changed_in_place_or_other_masks_recompute_every_stage() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let d = data.to_str().unwrap();
    let o = embcam(&["synth", d, "--classes", "4", "--images-per-class", "6", "--min-side", "64"]);
    assert!(o.status.success(), "{}", text(&o));
    let exp = tmp.path().join("cub.toml");
    let write = |segmentations: &Path| {
        let toml = format!(
            "name = \"cub\"\n[dataset]\nkind = \"cub\"\npath = \"{}\"\nsegmentations = \"{}\"\n\
             image_size = 40\n[model]\nembedding_dim = 8\n[train]\nepochs = 1\np = 2\nk = 3\n\
             [cam]\nmethods = [\"embeddingcam\"]\ngallery = 0\n[eval]\nmax_images = 8\n\
             baselines = []\n[output]\ndir = \"{}\"\n",
            data.join("CUB_200_2011").display(),
            segmentations.display(),
            tmp.path().join("results").display()
        );
        std::fs::write(&exp, toml).unwrap();
    };
    let seg = data.join("segmentations");
    write(&seg);
    let e = exp.to_str().unwrap();
    let computed = [("train", "computed"), ("explain", "computed"), ("evaluate", "computed")];
    let reused = [("train", "reused"), ("explain", "reused"), ("evaluate", "reused")];
    stages(&["run", e], &computed);
    stages(&["run", e], &reused);
    // A mask rewritten in place (same bytes, a new modification time): everything recomputed.
    let class = std::fs::read_dir(&seg).unwrap().next().unwrap().unwrap().path();
    let mask = std::fs::read_dir(&class).unwrap().next().unwrap().unwrap().path();
    let bytes = std::fs::read(&mask).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&mask, &bytes).unwrap();
    stages(&["run", e], &computed);
    stages(&["run", e], &reused);
    // The same masks in another folder: the segmentation path is part of the key.
    let other = tmp.path().join("other-masks");
    std::fs::rename(&seg, &other).unwrap();
    write(&other);
    stages(&["run", e], &computed);
}

#[test]
fn force_can_target_one_stage() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = tiny(tmp.path(), "");
    let e = exp.to_str().unwrap();
    stages(&["run", e], &[("train", "computed")]);
    stages(
        &["run", e, "--force=explain"],
        &[("train", "reused"), ("explain", "computed"), ("evaluate", "reused")],
    );
    stages(
        &["evaluate", "--force=evaluate", e],
        &[("train", "reused"), ("explain", "reused"), ("evaluate", "computed")],
    );
    // A plain --force, before or after the file, still recomputes everything.
    let all = [("train", "computed"), ("explain", "computed"), ("evaluate", "computed")];
    stages(&["run", "--force", e], &all);
    let o = embcam(&["run", e, "--force=trian"]);
    let t = text(&o);
    assert!(!o.status.success() && t.contains("trian") && t.contains("explain"), "{t}");
}

/// Recall@1 and MAP@R by brute force, written apart from the eval crate: every row queries all
/// the others by cosine similarity (ties to the smaller row), MAP@R over the queries with a
/// same-class neighbour.
fn brute_force_retrieval(values: &[f32], dim: usize, labels: &[u32]) -> (f64, f64) {
    let n = labels.len();
    let unit: Vec<Vec<f64>> = values
        .chunks(dim)
        .map(|r| {
            let norm = r.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt();
            r.iter().map(|&x| f64::from(x) / norm).collect()
        })
        .collect();
    let (mut hits, mut ap_sum, mut ap_n) = (0.0, 0.0, 0.0);
    for q in 0..n {
        let mut others: Vec<(f64, usize)> = (0..n)
            .filter(|&j| j != q)
            .map(|j| (unit[q].iter().zip(&unit[j]).map(|(a, b)| a * b).sum(), j))
            .collect();
        others.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        hits += f64::from(u8::from(labels[others[0].1] == labels[q]));
        let r = labels.iter().filter(|&&l| l == labels[q]).count() - 1;
        if r > 0 {
            let (mut found, mut ap) = (0.0, 0.0);
            for (i, &(_, j)) in others.iter().take(r).enumerate() {
                if labels[j] == labels[q] {
                    found += 1.0;
                    ap += found / (i + 1) as f64;
                }
            }
            ap_sum += ap / r as f64;
            ap_n += 1.0;
        }
    }
    (hits / n as f64, ap_sum / ap_n)
}

/// The retrieval figures on the explained inputs are those of the embeddings the explain stage
/// stored (trained and untrained network), recomputed here by brute force; the summary shows
/// them beside validation, and `report` reads them back.
#[test]
fn retrieval_on_the_explained_inputs_is_that_of_the_stored_embeddings() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = tiny(tmp.path(), "");
    assert!(embcam(&["run", exp.to_str().unwrap()]).status.success());
    let run = tmp.path().join("results/tiny/runs/run-001");
    let csv = std::fs::read_to_string(run.join("input_retrieval.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("cell,seed,network,transform,recall_at_1,map_at_r"));
    let stage = explain_stage(tmp.path());
    let mut seen = Vec::new();
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!((f[0], f[1], f[3]), ("", "0", "squash"), "{csv}");
        let suffix = if f[2] == "trained" { "" } else { "_(untrained)" };
        let (_, values) = read_npy(&stage.join(format!("embeddings{suffix}.npy")));
        let index = std::fs::read_to_string(stage.join(format!("embeddings{suffix}.csv"))).unwrap();
        let labels: Vec<u32> =
            index.lines().skip(1).map(|l| l.split(',').nth(2).unwrap().parse().unwrap()).collect();
        assert_eq!(labels.len(), 8);
        let (r1, map) = brute_force_retrieval(&values, values.len() / labels.len(), &labels);
        let (got_r1, got_map): (f64, f64) = (f[4].parse().unwrap(), f[5].parse().unwrap());
        assert!((got_r1 - r1).abs() < 1e-9 && (got_map - map).abs() < 1e-9, "{line}: {r1} {map}");
        seen.push(f[2].to_string());
    }
    assert_eq!(seen, ["trained", "untrained"]);
    let summary = std::fs::read_to_string(run.join("summary.md")).unwrap();
    assert!(summary.contains("explained inputs Recall@1"), "{summary}");
    // `report` makes the same summary from the data files.
    let before = std::fs::read(run.join("summary.md")).unwrap();
    std::fs::remove_file(run.join("summary.md")).unwrap();
    assert!(embcam(&["report", run.to_str().unwrap()]).status.success());
    assert_eq!(std::fs::read(run.join("summary.md")).unwrap(), before);
}
