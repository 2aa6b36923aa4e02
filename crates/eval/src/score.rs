//! Per-image scoring: one heatmap against one image's box and mask, every metric at once;
//! and the parallel loop over a split.

use embcam_cub::{BBox, DEFAULT_MASK_THRESHOLD, Mask, PartLoc};
use rayon::prelude::*;

use crate::localization::{Sweeper, ThresholdSweep, localization_of, localize};
use crate::pxap::PxapHistogram;
use crate::threshold::TauGrid;
use crate::{EvalError, pointing, ratio};

/// A heatmap in the original image's pixels (resample input-space maps with
/// `embcam_cub::Geometry::map_to_original`), row-major, `H ≥ 0`.
#[derive(Debug, Clone, PartialEq)]
pub struct Heatmap {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `width · height` values, row-major.
    pub values: Vec<f32>,
}

/// What the dataset says about one image, in its original pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageTruth {
    /// Image id (named in errors).
    pub id: u32,
    /// Original width.
    pub width: u32,
    /// Original height.
    pub height: u32,
    /// Ground-truth box (clipped to the image before scoring; clipping is counted).
    pub bbox: BBox,
    /// Soft segmentation mask, when the segmentations are available.
    pub mask: Option<Mask>,
    /// Part annotations (invisible ones are ignored); not scored here (part-level ground truth
    /// is [`crate::parts`], on SynthCUB's exact part regions).
    pub parts: Vec<PartLoc>,
    /// The part that tells this image's class apart (SynthCUB knows it); not scored here.
    pub discriminative_part: Option<u32>,
}

/// Metric settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EvalConfig {
    /// Localisation threshold τ on the max-normalised map; default 0.2.
    pub tau: f32,
    /// IoU for a localisation hit; default 0.5.
    pub iou: f32,
    /// Mask foreground: soft value ≥ this; default 128.
    pub mask_threshold: u8,
    /// Pointing-game tolerance in pixels; default 0.
    pub pointing_tolerance: f32,
    /// MaxBoxAccV2's IoU thresholds; default 0.3, 0.5, 0.7.
    pub maxbox_iou: [f32; 3],
    /// Number `S` of thresholds `τ_k = k/S` for the τ curve, MaxBoxAccV2 and PxAP; default 100
    /// (wsolevaluation's `np.arange(0, 1, 0.01)`). At most 255.
    pub tau_steps: usize,
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            tau: 0.2,
            iou: 0.5,
            mask_threshold: DEFAULT_MASK_THRESHOLD,
            pointing_tolerance: 0.0,
            maxbox_iou: [0.3, 0.5, 0.7],
            tau_steps: 100,
        }
    }
}

impl EvalConfig {
    /// Check every value's range.
    ///
    /// # Errors
    /// τ outside `[0, 1]`, an IoU outside `(0, 1]`, a negative or non-finite tolerance, or
    /// `tau_steps` outside `1..=255`.
    pub fn validate(&self) -> Result<(), EvalError> {
        let bad = |what: String| Err(EvalError::Config(what));
        if !(0.0..=1.0).contains(&self.tau) {
            return bad(format!("tau = {} must lie in [0, 1]", self.tau));
        }
        for iou in std::iter::once(self.iou).chain(self.maxbox_iou) {
            if !(iou > 0.0 && iou <= 1.0) {
                return bad(format!("IoU threshold {iou} must lie in (0, 1]"));
            }
        }
        if !(self.pointing_tolerance >= 0.0 && self.pointing_tolerance.is_finite()) {
            return bad(format!("pointing_tolerance = {} must be ≥ 0", self.pointing_tolerance));
        }
        if !(1..=255).contains(&self.tau_steps) {
            return bad(format!("tau_steps = {} must lie in 1..=255", self.tau_steps));
        }
        Ok(())
    }

    /// The τ grid.
    pub fn grid(&self) -> TauGrid {
        TauGrid::new(self.tau_steps)
    }
}

/// Every per-image number; `None` where a metric does not apply (no mask, an empty mask).
#[derive(Debug, Clone, PartialEq)]
pub struct ImageScores {
    /// Image id.
    pub id: u32,
    /// The map was all zero and was scored as uniform.
    pub zero_map: bool,
    /// The box reached outside the image and was clipped.
    pub clipped_box: bool,
    /// A mask was given but had no foreground; mask metrics are `None`.
    pub empty_mask: bool,
    /// Mean heatmap ratio in the box, `Σ_{p∈B} H / Σ H`.
    pub box_ratio: f64,
    /// Box area / image area (a uniform map's box ratio).
    pub box_area_ratio: f64,
    /// Mean heatmap ratio in the mask.
    pub mask_ratio: Option<f64>,
    /// Mask area / image area.
    pub mask_area_ratio: Option<f64>,
    /// Box of the largest component above τ.
    pub loc_box: BBox,
    /// Its IoU with the ground-truth box.
    pub loc_iou: f64,
    /// `loc_iou ≥ iou`.
    pub loc_hit: bool,
    /// Pointing game against the box: whether `argmax H` hits, tied maxima counting
    /// fractionally (the share of them that hit; [`crate::pointing`]).
    pub pointing_box: f64,
    /// Pointing game against the mask (same rule).
    pub pointing_mask: Option<f64>,
    /// The first peak `(x, y)` in row-major order.
    pub peak: (u32, u32),
    /// Per-τ results: `largest_iou` on the max-normalised map (the localisation curve), `hits`
    /// on Choe et al.'s min–max normalised map (MaxBoxAccV2).
    pub sweep: ThresholdSweep,
    /// Level histograms of the min–max normalised map for PxAP (when the mask applies).
    pub pxap: Option<PxapHistogram>,
}

/// Score one heatmap against one image (formulas in each metric's module).
///
/// # Errors
/// An invalid config, an empty image, a heatmap or mask of another size, a non-finite or
/// negative heatmap value, or a non-finite box — each naming the image id.
pub fn score_image(
    map: &Heatmap,
    truth: &ImageTruth,
    cfg: &EvalConfig,
) -> Result<ImageScores, EvalError> {
    cfg.validate()?;
    let (id, w, h) = (truth.id, truth.width, truth.height);
    if w == 0 || h == 0 {
        return Err(EvalError::EmptyImage { id, width: w, height: h });
    }
    let n = w as usize * h as usize;
    let values = &map.values[..];
    let (min, max) = checked_map(id, "heatmap", map, w, h)?;
    let b = truth.bbox;
    if ![b.x, b.y, b.w, b.h].iter().all(|v| v.is_finite()) {
        return Err(EvalError::NonFiniteBox { id });
    }
    // Clip only when needed: `clip` recomputes w = x1 − x0, which can move it by an ulp.
    let clipped_box = !b.inside(w, h, 0.0);
    let bbox = if clipped_box { b.clip(w, h) } else { b };
    let boxr = ratio::box_ratio(values, w, h, &bbox);

    let mut empty_mask = false;
    let fg = match &truth.mask {
        Some(m) if (m.width, m.height) != (w, h) || m.soft.len() != n => {
            let (got_w, got_h) = (m.width, m.height);
            return Err(EvalError::SizeMismatch {
                id,
                what: "mask",
                got_w,
                got_h,
                width: w,
                height: h,
            });
        }
        Some(m) => {
            let fg = m.binary(cfg.mask_threshold);
            empty_mask = !fg.contains(&true);
            (!empty_mask).then_some(fg)
        }
        None => None,
    };
    let maskr = fg.as_ref().map(|fg| ratio::mask_ratio(values, fg));

    // Localisation (and its τ curve) thresholds the max-normalised map; MaxBoxAccV2 and PxAP
    // Choe et al.'s min–max normalised one (`crate::threshold`). They are the same map when the
    // minimum is 0 and the maximum above it, so the second sweep runs only when they differ.
    let grid = cfg.grid();
    let levels = grid.levels(values, max);
    let choe_levels = (min != 0.0 || max == 0.0).then(|| grid.levels_min_max(values, min, max));
    let sweeper = Sweeper { width: w, height: h, grid, truth: bbox, ious: cfg.maxbox_iou };
    let (mut sweep, captured) = sweeper.run(&levels, grid.index_of(cfg.tau));
    if let Some(choe) = &choe_levels {
        sweep.hits = sweeper.run(choe, None).0.hits;
    }
    let loc = match captured {
        Some(loc_box) => localization_of(loc_box, &bbox, cfg.iou),
        None => localize(values, w, h, max, cfg.tau, &bbox, cfg.iou),
    };
    let choe = choe_levels.as_deref().unwrap_or(&levels);
    let pxap = fg.as_ref().map(|fg| PxapHistogram::from_levels(grid, choe, fg));

    let peaks = pointing::peaks(values, max);
    let tol = cfg.pointing_tolerance;
    let pointing_box = pointing::pointing_box(&peaks, w, &bbox, tol);
    let pointing_mask = fg.as_ref().map(|fg| pointing::pointing_mask(&peaks, fg, w, h, tol));
    let first = peaks.first().copied().unwrap_or(0);
    let peak = ((first % w as usize) as u32, (first / w as usize) as u32);

    Ok(ImageScores {
        id,
        zero_map: max == 0.0,
        clipped_box,
        empty_mask,
        box_ratio: boxr.ratio,
        box_area_ratio: boxr.area_ratio,
        mask_ratio: maskr.map(|r| r.ratio),
        mask_area_ratio: maskr.map(|r| r.area_ratio),
        loc_box: loc.bbox,
        loc_iou: loc.iou,
        loc_hit: loc.hit,
        pointing_box,
        pointing_mask,
        peak,
        sweep,
        pxap,
    })
}

/// The minimum and maximum of `map` (called `what` in errors), after checking that it is
/// `width × height` and that every value is finite and ≥ 0.
pub(crate) fn checked_map(
    id: u32,
    what: &'static str,
    map: &Heatmap,
    width: u32,
    height: u32,
) -> Result<(f32, f32), EvalError> {
    if (map.width, map.height) != (width, height)
        || map.values.len() != width as usize * height as usize
    {
        let (got_w, got_h) = (map.width, map.height);
        return Err(EvalError::SizeMismatch { id, what, got_w, got_h, width, height });
    }
    checked_range(id, width, &map.values)
}

/// The minimum and maximum of a map, after checking that every value is finite and ≥ 0 (the error
/// names the first offending pixel). Branch-free over blocks of 8 so that it vectorises.
fn checked_range(id: u32, width: u32, values: &[f32]) -> Result<(f32, f32), EvalError> {
    // Per lane: max, min, and Σ 0·v, which is NaN as soon as some v is NaN or ±∞.
    let (mut max, mut min, mut nan) = ([0.0f32; 8], [f32::INFINITY; 8], [0.0f32; 8]);
    let chunks = values.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        for k in 0..8 {
            max[k] = if c[k] > max[k] { c[k] } else { max[k] };
            min[k] = if c[k] < min[k] { c[k] } else { min[k] };
            nan[k] += c[k] * 0.0;
        }
    }
    for &v in tail {
        max[0] = if v > max[0] { v } else { max[0] };
        min[0] = if v < min[0] { v } else { min[0] };
        nan[0] += v * 0.0;
    }
    let bad = min.iter().any(|&m| m < 0.0) || nan.iter().any(|n| n.is_nan());
    if bad {
        let p = values.iter().position(|v| !(*v >= 0.0 && v.is_finite())).unwrap_or(0);
        let (x, y) = ((p % width as usize) as u32, (p / width as usize) as u32);
        let value = values[p];
        return Err(if value.is_finite() {
            EvalError::NegativeMap { id, x, y, value }
        } else {
            EvalError::NonFiniteMap { id, x, y, value }
        });
    }
    let max = max.iter().fold(0.0f32, |m, &v| if v > m { v } else { m });
    Ok((min.iter().fold(max, |m, &v| if v < m { v } else { m }), max))
}

/// Score many images in parallel (rayon), in the iterator's order. Pass e.g.
/// `maps.par_iter().zip(&truths)`, or any parallel iterator of pairs that builds or loads maps on
/// the fly to bound memory.
///
/// # Errors
/// The first image's error, as [`score_image`].
pub fn score_all<'a, I>(items: I, cfg: &EvalConfig) -> Result<Vec<ImageScores>, EvalError>
where
    I: IntoParallelIterator<Item = (&'a Heatmap, &'a ImageTruth)>,
{
    cfg.validate()?;
    items.into_par_iter().map(|(map, truth)| score_image(map, truth, cfg)).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::summarize;

    /// A 4×1 image whose object is pixels 2 and 3: mask and box (x 2..4, y 0..1).
    fn truth() -> ImageTruth {
        ImageTruth {
            id: 1,
            width: 4,
            height: 1,
            bbox: BBox { x: 2.0, y: 0.0, w: 2.0, h: 1.0 },
            mask: Some(Mask { width: 4, height: 1, soft: vec![0, 0, 255, 255] }),
            parts: Vec::new(),
            discriminative_part: None,
        }
    }

    #[test]
    fn wsol_metrics_normalise_min_max_as_wsolevaluation() {
        // H = [2, 3, 4, 6], minimum 2 > 0; grid S = 4 (τ = 0, 1/4, 1/2, 3/4).
        // Choe et al.: v = (H − 2)/4 = [0, 1/4, 1/2, 1] → levels [0, 1, 2, 4].
        // By the max:  v = H/6 = [1/3, 1/2, 2/3, 1]    → levels [1, 2, 2, 4].
        //
        // PxAP (positives: pixels 2, 3), thresholds from the top:
        //   t = 1:   {3}       TP 1 FP 0: P 1, R 1/2, ΔR 1/2 → 1/2
        //   t = 3/4: {3}       ΔR 0
        //   t = 1/2: {2, 3}    TP 2 FP 0: P 1, R 1,   ΔR 1/2 → 1/2
        //   t = 1/4, 0:        ΔR 0                           PxAP = 1
        // (wsolevaluation's MaskEvaluator with cam_curve_interval 0.25 gives 1.0 too: both
        // foreground pixels rank above both background ones). By the max, t = 1/2 would hold
        // {1, 2, 3}: P 2/3 → PxAP 1/2 + 1/3 = 5/6.
        //
        // MaxBoxAccV2 (δ = .3, .5, .7), the box of the one component above each τ:
        //   τ_0 whole image, IoU 2/4; τ_1 {1, 2, 3}, IoU 2/3; τ_2 {2, 3}, IoU 1; τ_3 {3}, 1/2.
        //   Every δ is reached at τ_2: MaxBoxAccV2 = 1. By the max, τ_1 holds all four (1/2),
        //   τ_2 {1, 2, 3} (2/3), τ_3 {3} (1/2): δ = .7 is never reached, (1 + 1 + 0)/3 = 2/3.
        let cfg = EvalConfig { tau_steps: 4, tau: 0.5, ..EvalConfig::default() };
        let map = Heatmap { width: 4, height: 1, values: vec![2.0, 3.0, 4.0, 6.0] };
        let s = score_image(&map, &truth(), &cfg).unwrap();
        let r = summarize("m", std::slice::from_ref(&s), &cfg).unwrap();
        assert_eq!(r.pxap, Some(1.0));
        assert_eq!(r.maxboxacc.v2, 1.0);
        assert_eq!(r.maxboxacc.per_iou[2], (0.7, 1.0, 0.5));
        // Localisation keeps the max normalisation: at τ = 1/2, pixels 1..4 (IoU 2/3), and the
        // τ curve's IoUs are those of the max-normalised components listed above.
        assert_eq!(s.loc_box, BBox { x: 1.0, y: 0.0, w: 3.0, h: 1.0 });
        let expect = [0.5, 0.5, 2.0 / 3.0, 0.5];
        assert!(s.sweep.largest_iou.iter().zip(expect).all(|(a, b)| (a - b).abs() < 1e-6));
    }

    #[test]
    fn pointing_scores_the_argmax_and_splits_ties() {
        // Object: pixels 2 and 3 (box and mask). A unique maximum scores 0 or 1; two tied maxima,
        // one on the object, score 1/2; four (a constant map) score the object's share, 2/4.
        let cfg = EvalConfig::default();
        for (values, expect) in [
            ([1.0, 3.0, 2.0, 0.0], 0.0),
            ([1.0, 2.0, 3.0, 0.0], 1.0),
            ([1.0, 3.0, 3.0, 0.0], 0.5),
            ([2.0, 2.0, 2.0, 2.0], 0.5),
        ] {
            let map = Heatmap { width: 4, height: 1, values: values.to_vec() };
            let s = score_image(&map, &truth(), &cfg).unwrap();
            assert_eq!((s.pointing_box, s.pointing_mask), (expect, Some(expect)), "{values:?}");
        }
    }

    #[test]
    fn constant_maps_are_zeros_for_the_wsol_metrics() {
        // normalize_scoremap turns a constant map (all-zero included) into zeros: above τ_0 only,
        // where every map's box is the whole image (IoU 2/4: δ = .3 and .5, bits 0b011), and
        // nothing above τ_1, τ_2, τ_3. Its pixels enter PxAP at t = 0 only: P = 2/4 at R = 1 →
        // PxAP 1/2. Localisation scores it as uniform (DESIGN): the whole image at every τ.
        let cfg = EvalConfig { tau_steps: 4, ..EvalConfig::default() };
        for level in [0.0, 5.0] {
            let flat = Heatmap { width: 4, height: 1, values: vec![level; 4] };
            let s = score_image(&flat, &truth(), &cfg).unwrap();
            assert_eq!(s.sweep.hits, vec![0b011, 0, 0, 0], "H ≡ {level}");
            assert_eq!(s.sweep.largest_iou, vec![0.5; 4], "H ≡ {level}");
            let r = summarize("flat", std::slice::from_ref(&s), &cfg).unwrap();
            assert_eq!(r.pxap, Some(0.5), "H ≡ {level}");
            // MaxBoxAcc(δ) = 1, 1, 0 (at τ_0).
            assert!((r.maxboxacc.v2 - 2.0 / 3.0).abs() < 1e-12, "H ≡ {level}");
        }
    }
}
