//! The crate's fast paths agree with the slow references: the union–find τ sweep, MaxBoxAccV2,
//! PxAP, localisation on and off the grid, pointing with tolerance, retrieval.

use embcam_eval::localization::{SweepMethod, Sweeper, localize};
use embcam_eval::pointing;
use embcam_eval::{
    EvalConfig, Heatmap, ImageTruth, retrieval_scores, score_all, score_image, summarize,
};
use rand::Rng;

use crate::fixtures::{ellipse_truth, noise_map, plateau_map, rng, smooth_map};
use crate::reference;

/// A small mixed split: smooth, sparse (many zeros), plateau, noise and all-zero maps.
fn split(seed: u64, w: u32, h: u32) -> Vec<(Heatmap, ImageTruth)> {
    let mut r = rng(seed);
    (0..10u32)
        .map(|id| {
            let map = match id % 5 {
                0 => smooth_map(&mut r, w, h, 5, 0.0),
                1 => smooth_map(&mut r, w, h, 6, 0.5),
                2 => plateau_map(&mut r, w, h),
                3 => noise_map(&mut r, w, h),
                _ if id == 4 => {
                    Heatmap { width: w, height: h, values: vec![0.0; (w * h) as usize] }
                }
                _ => smooth_map(&mut r, w, h, 3, 0.3),
            };
            (map, ellipse_truth(&mut r, id, w, h))
        })
        .collect()
}

#[test]
fn sweep_matches_thresholding_at_every_tau() {
    // Through `score_image` (automatic method) and through each method forced, on smooth, sparse,
    // plateau, noise (many diagonal contacts) and all-zero maps.
    for (steps, seed) in [(100, 1), (7, 2), (1, 3)] {
        let cfg = EvalConfig { tau_steps: steps, ..EvalConfig::default() };
        let grid = cfg.grid();
        for (map, truth) in split(seed, 24, 16) {
            let reference = reference::sweep(&map, &truth, steps);
            let auto = score_image(&map, &truth, &cfg).unwrap().sweep;
            let max = map.values.iter().copied().fold(0.0f32, f32::max);
            let min = map.values.iter().copied().fold(f32::INFINITY, f32::min);
            // Largest components on the max-normalised map, hits on the min–max one.
            let levels = grid.levels(&map.values, max);
            let choe = grid.levels_min_max(&map.values, min, max);
            let gt = reference::truth_box(&truth);
            let sweeper = Sweeper { width: 24, height: 16, grid, truth: gt, ious: cfg.maxbox_iou };
            let forced = |method| {
                let mut s = sweeper.run_with(&levels, None, method).0;
                s.hits = sweeper.run_with(&choe, None, method).0.hits;
                s
            };
            let (runs, pixels) = (forced(SweepMethod::Runs), forced(SweepMethod::Pixels));
            for (name, s) in [("auto", &auto), ("runs", &runs), ("pixels", &pixels)] {
                for (k, &(largest, best)) in reference.iter().enumerate() {
                    assert_eq!(s.largest_iou[k], largest, "{name}: image {} τ_{k}", truth.id);
                    for (d, delta) in cfg.maxbox_iou.iter().enumerate() {
                        let bit = s.hits[k] >> d & 1 == 1;
                        assert_eq!(
                            bit,
                            best >= *delta,
                            "{name}: image {} τ_{k} δ {delta}",
                            truth.id
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn maxboxacc_v2_matches_reference() {
    let cfg = EvalConfig::default();
    let items = split(11, 24, 16);
    let scores = score_all(items.iter().map(|(m, t)| (m, t)).collect::<Vec<_>>(), &cfg).unwrap();
    let report = summarize("test", &scores, &cfg).unwrap();
    let expect = reference::maxboxacc_v2(&items, 100, cfg.maxbox_iou);
    assert!((report.maxboxacc.v2 - expect).abs() < 1e-12, "{} vs {expect}", report.maxboxacc.v2);
    assert!(report.maxboxacc.v2 > 0.0);
    // Parallel scoring keeps the input order.
    assert!(scores.iter().map(|s| s.id).eq(0..10));
    // The τ curve at τ_20 = 0.2 is the localisation accuracy at the default τ, and matches the
    // reference's largest-component IoUs.
    assert_eq!(report.loc_acc_curve[20], (0.2, report.loc_acc.mean));
    for k in [0, 20, 55, 99] {
        let hits =
            items.iter().filter(|(m, t)| reference::sweep(m, t, 100)[k].0 >= cfg.iou).count();
        assert_eq!(report.loc_acc_curve[k].1, hits as f64 / items.len() as f64, "τ_{k}");
    }
}

#[test]
fn pxap_matches_reference() {
    for steps in [100, 10] {
        let cfg = EvalConfig { tau_steps: steps, ..EvalConfig::default() };
        let items = split(21 + steps as u64, 30, 20);
        let scores =
            score_all(items.iter().map(|(m, t)| (m, t)).collect::<Vec<_>>(), &cfg).unwrap();
        let got = summarize("test", &scores, &cfg).unwrap().pxap.unwrap();
        let expect = reference::pxap(&items, steps, cfg.mask_threshold);
        assert!((got - expect).abs() < 1e-12, "S = {steps}: {got} vs {expect}");
    }
}

#[test]
fn localisation_on_and_off_the_grid_agree_with_reference() {
    // On the grid (τ = 0.2 = τ_20) the box comes from the sweep; off it (τ = 0.205) from a direct
    // labelling. Both must match thresholding + the reference labelling.
    for (map, truth) in split(31, 24, 16) {
        for tau in [0.2f32, 0.205, 0.5, 0.77] {
            let cfg = EvalConfig { tau, ..EvalConfig::default() };
            let s = score_image(&map, &truth, &cfg).unwrap();
            let v = reference::normalised(&map);
            let fg: Vec<bool> = v.iter().map(|&x| x >= tau).collect();
            let cs = reference::components(&fg, 24, 16);
            let largest = cs.iter().min_by_key(|c| (std::cmp::Reverse(c.1), c.2)).unwrap();
            assert_eq!(s.loc_box, largest.0, "image {} τ {tau}", truth.id);
            let gt = reference::truth_box(&truth);
            assert_eq!(s.loc_iou, f64::from(largest.0.iou(&gt)));
            let max = map.values.iter().copied().fold(0.0f32, f32::max);
            let direct = localize(&map.values, 24, 16, max, tau, &gt, 0.5);
            assert_eq!(direct.bbox, largest.0);
        }
    }
}

#[test]
fn pointing_with_tolerance_matches_brute_force() {
    let mut r = rng(41);
    for id in 0..12u32 {
        let truth = ellipse_truth(&mut r, id, 20, 14);
        let fg = truth.mask.as_ref().unwrap().binary(128);
        // Plateau maps have many tied peaks (the distance-transform path), smooth ones one peak.
        let map = if id % 2 == 0 {
            plateau_map(&mut r, 20, 14)
        } else {
            smooth_map(&mut r, 20, 14, 4, 0.0)
        };
        let max = map.values.iter().copied().fold(0.0f32, f32::max);
        let peaks = pointing::peaks(&map.values, max);
        for tol in [0.0f32, 1.0, 1.5, 2.9, 6.0] {
            let got = pointing::pointing_mask(&peaks, &fg, 20, 14, tol);
            let expect = reference::pointing_mask(&map, &fg, tol);
            assert!((got - expect).abs() < 1e-12, "image {id} r {tol}: {got} vs {expect}");
        }
        // Every pixel a peak forces the distance transform.
        let all: Vec<usize> = (0..fg.len()).collect();
        let flat = Heatmap { width: 20, height: 14, values: vec![1.0; fg.len()] };
        let got = pointing::pointing_mask(&all, &fg, 20, 14, 2.5);
        assert!((got - reference::pointing_mask(&flat, &fg, 2.5)).abs() < 1e-12);
    }
}

#[test]
fn retrieval_matches_brute_force() {
    let mut r = rng(51);
    for (n, dim, classes) in [(40, 8, 5), (33, 3, 11), (12, 16, 2)] {
        let emb: Vec<f32> = (0..n * dim).map(|_| r.random_range(-1.0..1.0)).collect();
        let labels: Vec<u32> = (0..n).map(|_| r.random_range(0..classes)).collect();
        let ks = [1, 2, 4, 8];
        let got = retrieval_scores(&emb, dim, &labels, &ks).unwrap();
        let (recall, map_at_r) = reference::retrieval(&emb, dim, &labels, &ks);
        for ((k, g), e) in got.recall_at.iter().zip(&recall) {
            assert!((g - e).abs() < 1e-12, "n {n}: R@{k} {g} vs {e}");
        }
        assert!((got.map_at_r - map_at_r).abs() < 1e-12, "n {n}: {} vs {map_at_r}", got.map_at_r);
    }
}
