//! `[benchmark]`: ground truth on SynthCUB's interventions and the model randomisation checks,
//! end to end on the tiny experiment.

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
    // Both stages are reused by a second run.
    let o = embcam(&["run", exp.to_str().unwrap()]);
    let t = text(&o);
    assert!(t.contains("ground truth: reused") && t.contains("sanity: reused"), "{t}");
}
