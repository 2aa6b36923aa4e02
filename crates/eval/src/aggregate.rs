//! Aggregation over images: mean and 95% confidence interval of every per-image metric, the
//! split-level metrics (localisation curve, MaxBoxAccV2, PxAP), and counts of degenerate cases.
//!
//! **Confidence interval.** Student's t: `ci95 = t_{0.975, n−1} · s / √n`, `s` the sample standard
//! deviation (divisor `n − 1`); for 0/1 metrics (hits) this is the Wald interval. `None` when
//! `n < 2`.

use crate::EvalError;
use crate::localization::{MaxBoxAccV2, MaxBoxAccumulator};
use crate::pxap::PxapHistogram;
use crate::score::{EvalConfig, ImageScores};

/// Mean and 95% confidence half-width of one metric over `n` images.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// Number of images the metric applied to.
    pub n: usize,
    /// Mean.
    pub mean: f64,
    /// Half-width of the 95% t interval; `None` when `n < 2`.
    pub ci95: Option<f64>,
}

impl Summary {
    /// Summary of `values`; `None` when empty.
    pub fn of(values: &[f64]) -> Option<Summary> {
        let n = values.len();
        if n == 0 {
            return None;
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n.max(2) - 1) as f64;
        Some(Summary { n, mean, ci95: ci95(n, var.sqrt()) })
    }
}

/// Half-width of the 95% confidence interval of a mean of `n` values with sample standard
/// deviation `sd`: `t₀.₉₇₅(n−1) · sd / √n`; `None` for fewer than two values.
pub fn ci95(n: usize, sd: f64) -> Option<f64> {
    (n >= 2).then(|| t975(n - 1) * sd / (n as f64).sqrt())
}

/// The 0.975 quantile of Student's t with `df` degrees of freedom (`df ≥ 1`): tabulated to
/// `df = 30`, then the Cornish–Fisher expansion of Abramowitz & Stegun 26.7.5 (error < 1e-6).
pub fn t975(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706205, 4.302653, 3.182446, 2.776445, 2.570582, 2.446912, 2.364624, 2.306004, 2.262157,
        2.228139, 2.200985, 2.178813, 2.160369, 2.144787, 2.131450, 2.119905, 2.109816, 2.100922,
        2.093024, 2.085963, 2.079614, 2.073873, 2.068658, 2.063899, 2.059539, 2.055529, 2.051831,
        2.048407, 2.045230, 2.042272,
    ];
    if (1..=30).contains(&df) {
        return TABLE[df - 1];
    }
    let z = 1.959_963_984_540_054_f64;
    let nu = df.max(1) as f64;
    let g1 = (z.powi(3) + z) / 4.0;
    let g2 = (5.0 * z.powi(5) + 16.0 * z.powi(3) + 3.0 * z) / 96.0;
    let g3 = (3.0 * z.powi(7) + 19.0 * z.powi(5) + 17.0 * z.powi(3) - 15.0 * z) / 384.0;
    let g4 = (79.0 * z.powi(9) + 776.0 * z.powi(7) + 1482.0 * z.powi(5)
        - 1920.0 * z.powi(3)
        - 945.0 * z)
        / 92160.0;
    z + g1 / nu + g2 / nu.powi(2) + g3 / nu.powi(3) + g4 / nu.powi(4)
}

/// How many images fell under each degenerate-input rule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DegenerateCounts {
    /// All-zero maps, scored as uniform.
    pub zero_maps: usize,
    /// Boxes that reached outside the image and were clipped.
    pub clipped_boxes: usize,
    /// Masks with no foreground, excluded from the mask metrics.
    pub empty_masks: usize,
    /// Images without a mask (not degenerate, but outside the mask metrics).
    pub missing_masks: usize,
}

/// Every metric of one map source (a CAM method, or a baseline) over a split.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The map source's name: a method, or a baseline's [`crate::BaselineMap::name`].
    pub source: String,
    /// Images scored.
    pub images: usize,
    /// Degenerate-case counts.
    pub degenerate: DegenerateCounts,
    /// Mean heatmap ratio, box.
    pub box_ratio: Summary,
    /// Box area ratio (a uniform map's box ratio).
    pub box_area_ratio: Summary,
    /// Mean heatmap ratio, mask (images with a non-empty mask).
    pub mask_ratio: Option<Summary>,
    /// Mask area ratio.
    pub mask_area_ratio: Option<Summary>,
    /// Localisation accuracy at the configured τ and IoU.
    pub loc_acc: Summary,
    /// IoU of the localisation box.
    pub loc_iou: Summary,
    /// `(τ_k, localisation accuracy at τ_k)` over the grid.
    pub loc_acc_curve: Vec<(f32, f64)>,
    /// MaxBoxAccV2 (Choe et al. 2020).
    pub maxboxacc: MaxBoxAccV2,
    /// PxAP over the images with a non-empty mask; `None` when there is none.
    pub pxap: Option<f64>,
    /// Pointing game, box.
    pub pointing_box: Summary,
    /// Pointing game, mask.
    pub pointing_mask: Option<Summary>,
}

/// Aggregate per-image scores (made with `cfg`) of one map source into a [`Report`].
///
/// # Errors
/// No images, or scores made with another τ grid.
pub fn summarize(
    source: &str,
    scores: &[ImageScores],
    cfg: &EvalConfig,
) -> Result<Report, EvalError> {
    let grid = cfg.grid();
    let steps = grid.steps();
    if let Some(bad) = scores.iter().find(|s| s.sweep.hits.len() != steps) {
        return Err(EvalError::LengthMismatch {
            what: "threshold sweep length vs tau_steps (score and summarise with one config)",
            left: bad.sweep.hits.len(),
            right: steps,
        });
    }
    let collect = |f: &dyn Fn(&ImageScores) -> Option<f64>| -> Vec<f64> {
        scores.iter().filter_map(f).collect()
    };
    let all = |f: &dyn Fn(&ImageScores) -> f64| Summary::of(&collect(&|s| Some(f(s))));
    let some = |f: &dyn Fn(&ImageScores) -> Option<f64>| Summary::of(&collect(f));
    let box_ratio = all(&|s| s.box_ratio).ok_or(EvalError::NoImages)?;
    let box_area_ratio = all(&|s| s.box_area_ratio).ok_or(EvalError::NoImages)?;
    let loc_acc = all(&|s| f64::from(u8::from(s.loc_hit))).ok_or(EvalError::NoImages)?;
    let loc_iou = all(&|s| s.loc_iou).ok_or(EvalError::NoImages)?;
    let pointing_box = all(&|s| s.pointing_box).ok_or(EvalError::NoImages)?;

    let n = scores.len() as f64;
    let loc_acc_curve = (0..steps)
        .map(|k| {
            let hits = scores.iter().filter(|s| s.sweep.largest_iou[k] >= cfg.iou).count();
            (grid.tau(k), hits as f64 / n)
        })
        .collect();
    let mut boxes = MaxBoxAccumulator::new(grid, cfg.maxbox_iou);
    let mut pixels = PxapHistogram::new(grid);
    for s in scores {
        boxes.add(&s.sweep);
        if let Some(h) = &s.pxap {
            pixels.merge(h);
        }
    }
    let maxboxacc = boxes.finish().ok_or(EvalError::NoImages)?;

    let count = |f: &dyn Fn(&ImageScores) -> bool| scores.iter().filter(|s| f(s)).count();
    Ok(Report {
        source: source.to_string(),
        images: scores.len(),
        degenerate: DegenerateCounts {
            zero_maps: count(&|s| s.zero_map),
            clipped_boxes: count(&|s| s.clipped_box),
            empty_masks: count(&|s| s.empty_mask),
            missing_masks: count(&|s| s.mask_ratio.is_none() && !s.empty_mask),
        },
        box_ratio,
        box_area_ratio,
        mask_ratio: some(&|s| s.mask_ratio),
        mask_area_ratio: some(&|s| s.mask_area_ratio),
        loc_acc,
        loc_iou,
        loc_acc_curve,
        maxboxacc,
        pxap: pixels.pxap(),
        pointing_box,
        pointing_mask: some(&|s| s.pointing_mask),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn summary_hand_worked() {
        // [1, 2, 3, 4]: mean 2.5; s² = (2.25 + 0.25 + 0.25 + 2.25)/3 = 5/3;
        // ci = t(3) · √(5/3 / 4) = 3.182446 · 0.6454972 = 2.0542603.
        let s = Summary::of(&[1.0, 2.0, 3.0, 4.0]).unwrap();
        assert_eq!((s.n, s.mean), (4, 2.5));
        assert!((s.ci95.unwrap() - 2.054_260_3).abs() < 1e-6);
        assert_eq!(Summary::of(&[]), None);
        assert_eq!(Summary::of(&[0.7]).unwrap().ci95, None);
    }

    #[test]
    fn t_quantiles_match_published_values() {
        // Published 0.975 quantiles (R: qt(0.975, df)).
        for (df, t) in [
            (3, 3.182446),
            (30, 2.042272),
            (31, 2.039513),
            (40, 2.021075),
            (60, 2.000298),
            (120, 1.979930),
            (1000, 1.962339),
        ] {
            assert!((t975(df) - t).abs() < 2e-6, "df {df}: {} vs {t}", t975(df));
        }
    }
}
