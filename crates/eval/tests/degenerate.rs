//! Degenerate inputs follow their documented rules and are counted; bad values are errors that
//! name the image; no metric is ever NaN.

use embcam_cub::{BBox, Mask};
use embcam_eval::{
    BaselineMap, EvalConfig, EvalError, Heatmap, ImageTruth, evaluate, score_image, summarize,
};

use crate::fixtures::{ellipse, rng, smooth_map};

fn truth() -> ImageTruth {
    ellipse(9, 20, 10, (10.0, 5.0), (4.0, 3.0), 0.0)
}

#[test]
fn all_zero_map_is_uniform_and_counted() {
    let t = truth();
    let zero = Heatmap { width: 20, height: 10, values: vec![0.0; 200] };
    let cfg = EvalConfig::default();
    let s = score_image(&zero, &t, &cfg).unwrap();
    assert!(s.zero_map);
    assert_eq!(s.box_ratio, s.box_area_ratio);
    assert_eq!(s.mask_ratio, s.mask_area_ratio);
    assert_eq!(s.loc_box, BBox { x: 0.0, y: 0.0, w: 20.0, h: 10.0 });
    assert_eq!(s.pointing_mask, s.mask_area_ratio);
    let r = summarize("zero", &[s], &cfg).unwrap();
    assert_eq!(r.degenerate.zero_maps, 1);
}

#[test]
fn empty_mask_is_excluded_and_counted() {
    let mut t = truth();
    t.mask = Some(Mask { width: 20, height: 10, soft: vec![127; 200] });
    let map = smooth_map(&mut rng(1), 20, 10, 3, 0.0);
    let cfg = EvalConfig::default();
    let s = score_image(&map, &t, &cfg).unwrap();
    assert!(s.empty_mask);
    assert_eq!((s.mask_ratio, s.pointing_mask, s.pxap.as_ref()), (None, None, None));
    let mut no_mask = truth();
    no_mask.mask = None;
    let s2 = score_image(&map, &no_mask, &cfg).unwrap();
    assert!(!s2.empty_mask && s2.mask_ratio.is_none());
    let full = score_image(&map, &truth(), &cfg).unwrap();
    let r = summarize("m", &[s, s2, full], &cfg).unwrap();
    assert_eq!((r.degenerate.empty_masks, r.degenerate.missing_masks), (1, 1));
    assert_eq!(r.mask_ratio.unwrap().n, 1);
    assert_eq!(r.box_ratio.n, 3);
    // Only empty masks: no PxAP, no mask summaries.
    let r = summarize("m", &[score_image(&map, &t, &cfg).unwrap()], &cfg).unwrap();
    assert_eq!((r.pxap, r.mask_ratio), (None, None));
}

#[test]
fn box_outside_the_image_is_clipped_and_counted() {
    let map = smooth_map(&mut rng(2), 20, 10, 3, 0.0);
    let cfg = EvalConfig::default();
    // Half outside: scored as the clipped box x 15..20, y 0..10.
    let mut t = truth();
    t.bbox = BBox { x: 15.0, y: -5.0, w: 10.0, h: 20.0 };
    let s = score_image(&map, &t, &cfg).unwrap();
    let mut clipped = truth();
    clipped.bbox = BBox { x: 15.0, y: 0.0, w: 5.0, h: 10.0 };
    let c = score_image(&map, &clipped, &cfg).unwrap();
    assert!(s.clipped_box && !c.clipped_box);
    assert_eq!((s.box_ratio, s.loc_iou, s.pointing_box), (c.box_ratio, c.loc_iou, c.pointing_box));
    // Entirely outside: an empty box, every box score 0, nothing NaN.
    let mut t = truth();
    t.bbox = BBox { x: 30.0, y: 20.0, w: 5.0, h: 5.0 };
    let s = score_image(&map, &t, &cfg).unwrap();
    assert_eq!((s.box_ratio, s.box_area_ratio, s.loc_iou, s.pointing_box), (0.0, 0.0, 0.0, 0.0));
    let r = summarize("b", &[s, c], &cfg).unwrap();
    assert_eq!(r.degenerate.clipped_boxes, 1);
}

#[test]
fn bad_values_are_errors_naming_the_image() {
    let t = truth();
    let cfg = EvalConfig::default();
    for (bad, kind) in [(f32::NAN, "NaN"), (f32::INFINITY, "inf"), (-0.5, "-0.5")] {
        let mut map = Heatmap { width: 20, height: 10, values: vec![0.5; 200] };
        map.values[3 * 20 + 7] = bad;
        let e = score_image(&map, &t, &cfg).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("image 9") && msg.contains("x = 7, y = 3") && msg.contains(kind),
            "{msg}"
        );
    }
    let small = Heatmap { width: 10, height: 10, values: vec![0.5; 100] };
    assert!(matches!(score_image(&small, &t, &cfg), Err(EvalError::SizeMismatch { id: 9, .. })));
    let mut t2 = truth();
    t2.mask = Some(Mask { width: 2, height: 2, soft: vec![0; 4] });
    let map = Heatmap { width: 20, height: 10, values: vec![0.5; 200] };
    assert!(matches!(
        score_image(&map, &t2, &cfg),
        Err(EvalError::SizeMismatch { what: "mask", .. })
    ));
    let bad_cfg = EvalConfig { tau: 1.5, ..cfg };
    assert!(matches!(score_image(&map, &t, &bad_cfg), Err(EvalError::Config(_))));
    assert!(matches!(summarize("none", &[], &cfg), Err(EvalError::NoImages)));
}

#[test]
fn no_metric_is_ever_nan_and_baselines_are_map_sources() {
    // A split mixing every degenerate case, scored by two baselines and an all-zero "untrained"
    // source; the debug text of each report must hold no NaN or infinity.
    let mut truths: Vec<ImageTruth> =
        (0..6).map(|id| ellipse(id, 24, 18, (12.0, 9.0), (6.0, 4.0), 0.3)).collect();
    truths[1].mask = Some(Mask { width: 24, height: 18, soft: vec![0; 24 * 18] });
    truths[2].mask = None;
    truths[3].bbox = BBox { x: 40.0, y: 40.0, w: 3.0, h: 3.0 };
    truths[4].parts.clear();
    truths[5].discriminative_part = None;
    let cfg = EvalConfig { pointing_tolerance: 2.0, ..EvalConfig::default() };
    let sources =
        [BaselineMap::CentreGaussian { sigma: 0.25 }, BaselineMap::UniformRandom { seed: 7 }];
    let mut reports = Vec::new();
    for b in sources {
        let maps: Vec<Heatmap> = truths.iter().map(|t| b.heatmap(t)).collect();
        let r = evaluate(&b.name(), maps.iter().zip(&truths).collect::<Vec<_>>(), &cfg).unwrap();
        assert_eq!(r.source, b.name());
        reports.push(r);
    }
    let zeros: Vec<Heatmap> = truths
        .iter()
        .map(|_| Heatmap { width: 24, height: 18, values: vec![0.0; 24 * 18] })
        .collect();
    let r = evaluate("untrained", zeros.iter().zip(&truths).collect::<Vec<_>>(), &cfg).unwrap();
    assert_eq!(r.degenerate.zero_maps, 6);
    reports.push(r);
    for r in &reports {
        let text = format!("{r:?}").to_lowercase();
        assert!(!text.contains("nan") && !text.contains("inf"), "{}: {text}", r.source);
        assert_eq!(r.degenerate.empty_masks, 1);
        assert_eq!(r.degenerate.missing_masks, 1);
        assert_eq!(r.degenerate.clipped_boxes, 1);
    }
    // On centred objects the centre prior beats random noise on the box ratio.
    assert!(reports[0].box_ratio.mean > reports[1].box_ratio.mean);
}
