//! Per-image scoring: one heatmap against one image's box, mask and parts, every metric at once;
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
    /// Part annotations (invisible ones are ignored).
    pub parts: Vec<PartLoc>,
    /// The part that tells this image's class apart (SynthCUB knows it), for part pointing.
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

/// Every per-image number; `None` where a metric does not apply (no mask, an empty mask, no
/// visible part, no discriminative part given).
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
    /// Pointing game against the box (fraction of tied peaks that hit).
    pub pointing_box: f64,
    /// Pointing game against the mask.
    pub pointing_mask: Option<f64>,
    /// The first peak `(x, y)` in row-major order.
    pub peak: (u32, u32),
    /// The visible part nearest to the peak (`None` for an all-zero map).
    pub nearest_part: Option<u32>,
    /// Distance from the peak's centre to that part, pixels.
    pub nearest_part_distance: Option<f64>,
    /// Whether the nearest part is the discriminative part.
    pub discriminative_hit: Option<bool>,
    /// Per-τ results for the localisation curve and MaxBoxAccV2.
    pub sweep: ThresholdSweep,
    /// Level histograms for PxAP (when the mask applies).
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
    if (map.width, map.height) != (w, h) || values.len() != n {
        let (got_w, got_h) = (map.width, map.height);
        return Err(EvalError::SizeMismatch {
            id,
            what: "heatmap",
            got_w,
            got_h,
            width: w,
            height: h,
        });
    }
    let max = checked_max(id, w, values)?;
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

    let grid = cfg.grid();
    let levels = grid.levels(values, max);
    let sweeper = Sweeper { width: w, height: h, grid, truth: bbox, ious: cfg.maxbox_iou };
    let (sweep, captured) = sweeper.run(&levels, grid.index_of(cfg.tau));
    let loc = match captured {
        Some(loc_box) => localization_of(loc_box, &bbox, cfg.iou),
        None => localize(values, w, h, max, cfg.tau, &bbox, cfg.iou),
    };
    let pxap = fg.as_ref().map(|fg| PxapHistogram::from_levels(grid, &levels, fg));

    let peaks = pointing::peaks(values, max);
    let tol = cfg.pointing_tolerance;
    let pointing_box = pointing::pointing_box(&peaks, w, &bbox, tol);
    let pointing_mask = fg.as_ref().map(|fg| pointing::pointing_mask(&peaks, fg, w, h, tol));
    let first = peaks.first().copied().unwrap_or(0);
    let peak = ((first % w as usize) as u32, (first / w as usize) as u32);
    let nearest =
        if max > 0.0 { pointing::nearest_part(peak.0, peak.1, &truth.parts) } else { None };

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
        nearest_part: nearest.map(|(part, _)| part),
        nearest_part_distance: nearest.map(|(_, d)| d),
        discriminative_hit: truth
            .discriminative_part
            .and_then(|d| nearest.map(|(part, _)| part == d)),
        sweep,
        pxap,
    })
}

/// The maximum of a map, after checking that every value is finite and ≥ 0 (the error names the
/// first offending pixel). Branch-free over blocks of 8 so that it vectorises.
fn checked_max(id: u32, width: u32, values: &[f32]) -> Result<f32, EvalError> {
    // Per lane: max, min, and Σ 0·v, which is NaN as soon as some v is NaN or ±∞.
    let (mut max, mut min, mut nan) = ([0.0f32; 8], [0.0f32; 8], [0.0f32; 8]);
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
    Ok(max.iter().fold(0.0f32, |m, &v| if v > m { v } else { m }))
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
