//! Properties every metric must have: a uniform map scores the area ratio, a map equal to the
//! mask scores a perfect ratio and a pointing hit, and moving the map off the object lowers every
//! score.

use embcam_eval::{EvalConfig, Heatmap, score_all, score_image, summarize};
use proptest::prelude::*;

use crate::fixtures::ellipse;

fn object() -> impl Strategy<Value = (u32, u32, f32, f32, f32, f32, f32)> {
    (16u32..48, 12u32..40, 0.15f32..0.85, 0.15f32..0.85, 0.1f32..0.3, 0.1f32..0.3, -1.0f32..1.0)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    #[test]
    fn uniform_map_scores_the_area_ratio(
        (w, h, cx, cy, rx, ry, jitter) in object(),
        level in prop_oneof![Just(0.0f32), 0.01f32..100.0],
    ) {
        let (fw, fh) = (w as f32, h as f32);
        let truth = ellipse(1, w, h, (cx * fw, cy * fh), (rx * fw, ry * fh), jitter);
        let map = Heatmap { width: w, height: h, values: vec![level; (w * h) as usize] };
        let s = score_image(&map, &truth, &EvalConfig::default()).unwrap();
        prop_assert!((s.box_ratio - s.box_area_ratio).abs() < 1e-9);
        let mask_area = s.mask_area_ratio.unwrap();
        prop_assert!((s.mask_ratio.unwrap() - mask_area).abs() < 1e-9);
        // Every pixel is a peak: pointing is the share of pixels that hit.
        prop_assert!((s.pointing_mask.unwrap() - mask_area).abs() < 1e-12);
        prop_assert!((s.pointing_box - s.box_area_ratio).abs() < 1e-12);
        // The whole image is one component at every τ.
        prop_assert_eq!(s.loc_box, embcam_cub::BBox { x: 0.0, y: 0.0, w: fw, h: fh });
        // PxAP of a constant map is the foreground share (one threshold, P = area ratio, R = 1).
        let cfg = EvalConfig::default();
        let pxap = summarize("u", std::slice::from_ref(&s), &cfg).unwrap().pxap.unwrap();
        prop_assert!((pxap - mask_area).abs() < 1e-12);
        prop_assert_eq!(s.zero_map, level == 0.0);
    }

    #[test]
    fn map_equal_to_mask_is_perfect((w, h, cx, cy, rx, ry, jitter) in object()) {
        let (fw, fh) = (w as f32, h as f32);
        let truth = ellipse(2, w, h, (cx * fw, cy * fh), (rx * fw, ry * fh), jitter);
        let fg = truth.mask.as_ref().unwrap().binary(128);
        prop_assume!(fg.contains(&true));
        let values = fg.iter().map(|&f| if f { 1.0 } else { 0.0 }).collect();
        let map = Heatmap { width: w, height: h, values };
        let cfg = EvalConfig::default();
        let s = score_image(&map, &truth, &cfg).unwrap();
        prop_assert_eq!(s.mask_ratio, Some(1.0));
        prop_assert_eq!(s.pointing_mask, Some(1.0));
        let r = summarize("mask", std::slice::from_ref(&s), &cfg).unwrap();
        prop_assert_eq!(r.pxap, Some(1.0));
        // The ellipse is one component whose box is the mask's box.
        let mask_box = truth.mask.as_ref().unwrap().foreground_box(128).unwrap();
        prop_assert_eq!(s.loc_box, mask_box);
    }

    #[test]
    fn moving_the_map_off_the_object_lowers_every_score(
        w in 40u32..80, h in 20u32..40, rx in 0.06f32..0.12, ry in 0.15f32..0.3,
        cy in 0.35f32..0.65, jitter in -0.5f32..0.5,
    ) {
        // Object in the left quarter; the map is a Gaussian blob on it, then the same blob moved to
        // the right half where there is no object.
        let (fw, fh) = (w as f32, h as f32);
        let (ox, oy) = (0.2 * fw, cy * fh);
        let truth = ellipse(3, w, h, (ox, oy), (rx * fw, ry * fh), jitter);
        let blob = |x0: f32| {
            let values = (0..w * h)
                .map(|p| {
                    let dx = ((p % w) as f32 + 0.5 - x0) / (rx * fw);
                    let dy = ((p / w) as f32 + 0.5 - oy) / (ry * fh);
                    (-(dx * dx + dy * dy)).exp()
                })
                .collect();
            Heatmap { width: w, height: h, values }
        };
        let (on, off) = (blob(ox), blob(0.75 * fw));
        let cfg = EvalConfig::default();
        let s = score_all(vec![(&on, &truth)], &cfg).unwrap();
        let t = score_all(vec![(&off, &truth)], &cfg).unwrap();
        let (a, b) = (&s[0], &t[0]);
        prop_assert!(b.box_ratio < a.box_ratio);
        prop_assert!(b.mask_ratio < a.mask_ratio);
        prop_assert!(b.loc_iou < a.loc_iou);
        prop_assert!(b.pointing_box < a.pointing_box);
        prop_assert!(b.pointing_mask < a.pointing_mask);
        let (ra, rb) = (summarize("on", &s, &cfg).unwrap(), summarize("off", &t, &cfg).unwrap());
        prop_assert!(rb.pxap < ra.pxap);
        prop_assert!(rb.maxboxacc.v2 < ra.maxboxacc.v2);
        let best = |r: &embcam_eval::Report| r.loc_acc_curve.iter().map(|c| c.1).fold(0.0, f64::max);
        prop_assert!(best(&rb) <= best(&ra));
    }
}
