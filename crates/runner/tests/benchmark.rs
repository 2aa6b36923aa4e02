//! `[benchmark]`: ground truth on SynthCUB's interventions and the model randomisation checks,
//! end to end on the tiny experiment.

use std::path::Path;

use crate::run::tiny_with;
use crate::{embcam, text};

/// The value of `column` in the row of `source` of a CSV table.
fn cell(csv: &str, source: &str, column: &str) -> f64 {
    let mut lines = csv.lines();
    let head: Vec<&str> = lines.next().unwrap().split(',').collect();
    let at = |name: &str| head.iter().position(|h| *h == name).unwrap();
    let row: Vec<&str> = lines
        .map(|l| l.split(',').collect::<Vec<_>>())
        .find(|r| r[at("method")] == source)
        .unwrap();
    row[at(column)].parse().unwrap()
}

#[test]
fn both_switches_write_the_ground_truth_and_randomisation_tables() {
    let tmp = tempfile::tempdir().unwrap();
    let bench = "[benchmark]\nground_truth = true\nsanity_checks = true\nsanity_images = 4\n";
    let exp = tiny_with(tmp.path(), "baselines = [\"uniform-random\", \"center-gaussian\"]", bench);
    let o = embcam(&["run", exp.to_str().unwrap()]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("ground truth: computed") && t.contains("sanity: computed"), "{t}");
    let run = tmp.path().join("results/tiny/runs/run-001");
    let gt = std::fs::read_to_string(run.join("ground_truth.csv")).unwrap();
    // A uniform random map (i.i.d. values) over 8 images: its part-mass ratio is 1 in
    // expectation, its spread over images ~0.1 (8 images: the mean within ±0.1, 3 standard errors), and
    // its part importance ρ has mean 0 with sd ≈ 1/√(parts − 1) ≈ 0.33 per image over ~10 removed
    // parts, so the mean of 8 lies within ±0.35 (3 sd).
    let mass = cell(&gt, "uniform-random", "part_mass_mean");
    let rho = cell(&gt, "uniform-random", "part_importance_mean");
    assert!((mass - 1.0).abs() < 0.1, "uniform part mass {mass}");
    assert!(rho.abs() < 0.35, "uniform part importance {rho}");
    // A map that does not depend on the target has no counterfactual contrast, exactly.
    assert_eq!(cell(&gt, "center-gaussian", "counterfactual_contrast_mean"), 0.0);
    for f in ["ground_truth.md", "ground_truth_metrics.csv", "randomisation.md"] {
        assert!(run.join(f).is_file(), "{f}");
    }
    assert!(run.join("plots/randomisation.png").is_file());
    let rnd = std::fs::read_to_string(run.join("randomisation.csv")).unwrap();
    // The small CNN's five layers: five cascading and five independent steps per method × proxy
    // (Eigen-CAM once, EmbeddingCAM twice).
    assert_eq!(rnd.lines().count(), 1 + 10 * 3, "{rnd}");
    assert!(rnd.lines().any(|l| l.starts_with(",cascade:backbone.block1.conv,5,embeddingcam,")));
    part_columns_hold_the_model_and_the_maps(&run);
    intervention_gallery(&run);
    // Both stages are reused by a second run, their gallery with them.
    let o = embcam(&["run", exp.to_str().unwrap()]);
    let t = text(&o);
    assert!(t.contains("ground truth: reused") && t.contains("sanity: reused"), "{t}");
    let second = tmp.path().join("results/tiny/runs/run-002");
    assert!(second.join("gallery/gallery-interventions-block4.png").is_file());
    report_rebuilds_the_benchmark_views(&second);
}

/// `ground_truth_metrics.csv`'s per-part columns: the score drops are the model's (the same for
/// every map of an image and proxy), the mass shares a map's (they sum to at most 1 over the
/// parts), and a uniform random map's share on a part is its area share on average.
fn part_columns_hold_the_model_and_the_maps(run: &Path) {
    let csv = std::fs::read_to_string(run.join("ground_truth_metrics.csv")).unwrap();
    let mut lines = csv.lines();
    let head: Vec<&str> = lines.next().unwrap().split(',').collect();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    let at = |name: &str| head.iter().position(|h| *h == name).unwrap();
    let num = |r: &Vec<&str>, c: &str| r[at(c)].parse::<f64>().ok();
    let parts: Vec<&str> = head.iter().filter_map(|h| h.strip_prefix("mass_share_")).collect();
    assert_eq!(parts.len(), 15, "{head:?}");
    // (seed, image, proxy) → drops; baselines ("-") are scored against the first proxy's.
    let mut drops: std::collections::BTreeMap<(String, String, String), Vec<Option<f64>>> =
        Default::default();
    let (mut ratio, mut n) = (0.0, 0);
    for r in &rows {
        let d: Vec<Option<f64>> =
            parts.iter().map(|p| num(r, &format!("score_drop_{p}"))).collect();
        assert!(d.iter().filter(|x| x.is_some()).count() >= 3, "too few parts removed: {r:?}");
        let proxy = if r[at("proxy")] == "-" { "normalized-mean" } else { r[at("proxy")] };
        let k = (r[at("seed")].into(), r[at("image_id")].into(), proxy.to_string());
        assert_eq!(drops.entry(k).or_insert_with(|| d.clone()), &d, "drops differ: {r:?}");
        let shares: Vec<f64> =
            parts.iter().filter_map(|p| num(r, &format!("mass_share_{p}"))).collect();
        assert!(shares.iter().sum::<f64>() <= 1.0 + 1e-9 && shares.iter().all(|&s| s >= 0.0));
        if r[at("source")] == "uniform-random" {
            for p in &parts {
                if let (Some(m), Some(a)) =
                    (num(r, &format!("mass_share_{p}")), num(r, &format!("area_share_{p}")))
                {
                    ratio += m / a;
                    n += 1;
                }
            }
        }
    }
    // i.i.d. uniform values: each part's share over its area share is 1 in expectation; over
    // ~8 images × ~10 parts the mean lies well within ±0.15.
    assert!(
        n > 20 && (ratio / n as f64 - 1.0).abs() < 0.15,
        "uniform share/area {}",
        ratio / n as f64
    );
    assert!(run.join("plots/part_importance.png").is_file());
}

/// The run folder's gallery holds one row per intervention of the first `cam.gallery` (2) scored
/// images, each with a map of every method for the first proxy.
fn intervention_gallery(run: &Path) {
    let g = run.join("gallery");
    assert!(g.join("gallery-interventions-block4.png").is_file());
    let csv = std::fs::read_to_string(g.join("gallery-interventions-block4.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next().unwrap(), "row,col,image_id,method,proxy,row_label");
    let rows: Vec<Vec<String>> =
        lines.map(|l| l.split(',').map(str::to_string).collect()).collect();
    let images: std::collections::BTreeSet<&str> = rows.iter().map(|r| r[2].as_str()).collect();
    assert_eq!(images.len(), 2, "{csv}");
    for id in &images {
        let labels: Vec<&str> = rows
            .iter()
            .filter(|r| r[2] == *id && r[1] == "0")
            .map(|r| r[5].strip_prefix(&format!("{id}: ")).unwrap())
            .collect();
        assert_eq!(labels[0], "original", "{labels:?}");
        let n = labels.len();
        assert_eq!(labels[n - 3..], ["counterfactual", "background swapped", "bird removed"]);
        assert!(n - 4 >= 3 && labels[1..n - 3].iter().all(|l| l.starts_with("no ")), "{labels:?}");
    }
    // EmbeddingCAM for the first proxy, Eigen-CAM (target-free): two maps per intervention.
    let cols: Vec<(&str, &str, &str)> =
        rows.iter().map(|r| (r[1].as_str(), r[3].as_str(), r[4].as_str())).collect();
    assert!(cols.iter().all(|c| {
        *c == ("0", "embeddingcam", "normalized-mean") || *c == ("1", "eigencam", "-")
    }));
    assert_eq!(rows.len() % 2, 0);
}

/// `embcam report RUN` rebuilds every benchmark view from the run folder's data files, the same
/// bytes; `--out DIR` writes them there.
fn report_rebuilds_the_benchmark_views(run: &Path) {
    let views = [
        "ground_truth.md",
        "ground_truth.csv",
        "randomisation.md",
        "randomisation.csv",
        "plots/part_importance.png",
        "plots/randomisation.png",
    ];
    let before: Vec<Vec<u8>> = views.iter().map(|f| std::fs::read(run.join(f)).unwrap()).collect();
    for f in views {
        std::fs::remove_file(run.join(f)).unwrap();
    }
    let o = embcam(&["report", run.to_str().unwrap()]);
    let t = text(&o);
    assert!(o.status.success() && t.contains("Ground truth on SynthCUB"), "{t}");
    for (f, b) in views.iter().zip(&before) {
        assert_eq!(&std::fs::read(run.join(f)).unwrap(), b, "{f} rebuilt differently");
    }
    let out = run.parent().unwrap().join("report");
    let o = embcam(&["report", run.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    for (f, b) in views.iter().zip(&before).take(4) {
        assert_eq!(&std::fs::read(out.join(f)).unwrap(), b, "{f} in --out");
    }
}
