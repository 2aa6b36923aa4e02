//! Sanity checks for saliency maps (Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS
//! 2018): a map that explains a model must change when the model's parameters are randomised.
//! The caller randomises the network (`embcam_model::randomize`: cascading from the head down, or
//! one layer at a time), recomputes the maps, and compares each with the original here:
//!
//! - [`spearman`]: Spearman's rank correlation of the two maps' pixels;
//! - [`ssim`]: the structural similarity index of the two maps, each divided by its maximum,
//!   exactly as scikit-image's `structural_similarity` with its defaults (7 × 7 uniform window,
//!   `K1 = 0.01`, `K2 = 0.03`, sample covariance) and `data_range = 1`.
//!
//! [`summarize_randomisation`] averages them over the images of one randomisation step; a
//! method **fails** the check when its maps stay rank-correlated at
//! [`RANDOMISATION_MAX_SPEARMAN`] or more with every layer randomised ([`RandomisationRow::passes`]).

use crate::score::{Heatmap, checked_map};
use crate::{EvalError, Summary};

/// The highest mean Spearman ρ between original maps and maps of the fully randomised network at
/// which a method still passes. Adebayo et al. read their curves by eye; this threshold is the
/// harness's: a map still ranked like the original with no trained weight left is mostly
/// explaining the image, not the model.
pub const RANDOMISATION_MAX_SPEARMAN: f64 = 0.5;

/// How alike an original map and a randomised network's map are.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MapSimilarity {
    /// Spearman's ρ over the pixels ([`spearman`]).
    pub spearman: f64,
    /// SSIM of the max-normalised maps ([`ssim`]).
    pub ssim: f64,
}

/// Compare the map of the original network with the map of a randomised one, both in the same
/// pixels (e.g. the original image's, or the network input's).
///
/// # Errors
/// Maps of different sizes; a negative or non-finite value; a map narrower or lower than 7
/// pixels (SSIM's window).
pub fn compare_maps(
    id: u32,
    original: &Heatmap,
    randomised: &Heatmap,
) -> Result<MapSimilarity, EvalError> {
    let (w, h) = (original.width, original.height);
    let (_, max_a) = checked_map(id, "original heatmap", original, w, h)?;
    let (_, max_b) = checked_map(id, "randomised network's heatmap", randomised, w, h)?;
    let norm = |v: &[f32], max: f32| -> Vec<f64> {
        let k = if max > 0.0 { 1.0 / f64::from(max) } else { 0.0 };
        v.iter().map(|&x| f64::from(x) * k).collect()
    };
    let (a, b) = (norm(&original.values, max_a), norm(&randomised.values, max_b));
    Ok(MapSimilarity { spearman: spearman(&a, &b)?, ssim: ssim(&a, &b, w, h, 1.0)? })
}

/// Spearman's rank correlation ρ: Pearson's correlation of the ranks, tied values sharing their
/// mean rank (as `scipy.stats.spearmanr`). **Ties rule:** when either side is constant (every
/// value tied, or fewer than 2 values) the ranks have no spread and Pearson's formula is 0/0
/// (scipy returns NaN); here ρ = 0 — no ordering, no agreement — so that a uniform map scores 0.
///
/// # Errors
/// Slices of different lengths; a non-finite value.
pub fn spearman(a: &[f64], b: &[f64]) -> Result<f64, EvalError> {
    if a.len() != b.len() {
        return Err(EvalError::LengthMismatch {
            what: "Spearman correlation: the two samples",
            left: a.len(),
            right: b.len(),
        });
    }
    if let Some(v) = a.iter().chain(b).find(|v| !v.is_finite()) {
        return Err(EvalError::Config(format!(
            "Spearman correlation of a non-finite value ({v}); check the inputs for 0/0"
        )));
    }
    let (ra, rb) = (ranks(a), ranks(b));
    let mean = (a.len() as f64 + 1.0) / 2.0;
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in ra.iter().zip(&rb) {
        let (dx, dy) = (x - mean, y - mean);
        sab += dx * dy;
        saa += dx * dx;
        sbb += dy * dy;
    }
    Ok(if saa > 0.0 && sbb > 0.0 { (sab / (saa * sbb).sqrt()).clamp(-1.0, 1.0) } else { 0.0 })
}

/// 1-based ranks, tied values sharing the mean of their ranks.
fn ranks(v: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..v.len()).collect();
    order.sort_by(|&i, &j| v[i].total_cmp(&v[j]));
    let mut r = vec![0.0; v.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && v[order[end]] == v[order[start]] {
            end += 1;
        }
        // Positions start..end hold ranks start + 1 ..= end: they share the mean.
        let shared = (start + 1 + end) as f64 / 2.0;
        for &i in &order[start..end] {
            r[i] = shared;
        }
        start = end;
    }
    r
}

/// The window of [`ssim`].
const WIN: usize = 7;

/// Mean structural similarity (Wang et al., IEEE TIP 2004) of two `width × height` images, as
/// scikit-image's `structural_similarity(a, b, data_range=data_range)`: over every 7 × 7 window
/// that fits inside the image (skimage crops the 3-pixel border), with window means `μ`, sample
/// variances and covariance (`σ² = 49/48 · (mean(x²) − μ²)`), `C1 = (0.01 R)²`, `C2 = (0.03 R)²`,
/// `S = (2 μa μb + C1)(2 σab + C2) / ((μa² + μb² + C1)(σa² + σb² + C2))`, and the mean of `S`.
/// Two constant images of the same value score 1.
///
/// # Errors
/// Slices that do not hold `width · height` values; an image narrower or lower than 7 pixels; a
/// `data_range` that is not positive.
pub fn ssim(
    a: &[f64],
    b: &[f64],
    width: u32,
    height: u32,
    data_range: f64,
) -> Result<f64, EvalError> {
    let (w, h) = (width as usize, height as usize);
    if a.len() != w * h || b.len() != w * h {
        return Err(EvalError::LengthMismatch {
            what: "SSIM: values of the two images vs width · height",
            left: a.len().max(b.len()),
            right: w * h,
        });
    }
    if w < WIN || h < WIN {
        return Err(EvalError::Config(format!(
            "SSIM needs images of at least {WIN} × {WIN} pixels (its window), got {w} × {h}; \
             compare larger maps (e.g. resampled to the input size)"
        )));
    }
    if !(data_range > 0.0 && data_range.is_finite()) {
        return Err(EvalError::Config(format!("SSIM data_range = {data_range} must be > 0")));
    }
    // Summed-area tables of a, b, a², b², ab: window sums in O(1).
    let table = |f: &dyn Fn(usize) -> f64| {
        let mut t = vec![0.0f64; (w + 1) * (h + 1)];
        for j in 0..h {
            let mut row = 0.0;
            for i in 0..w {
                row += f(j * w + i);
                t[(j + 1) * (w + 1) + i + 1] = t[j * (w + 1) + i + 1] + row;
            }
        }
        t
    };
    let tables = [
        table(&|p| a[p]),
        table(&|p| b[p]),
        table(&|p| a[p] * a[p]),
        table(&|p| b[p] * b[p]),
        table(&|p| a[p] * b[p]),
    ];
    let np = (WIN * WIN) as f64;
    let cov_norm = np / (np - 1.0);
    let (c1, c2) = ((0.01 * data_range).powi(2), (0.03 * data_range).powi(2));
    let mut total = 0.0;
    let mut count = 0usize;
    for j in 0..=h - WIN {
        for i in 0..=w - WIN {
            let mean = |t: &[f64]| {
                let at = |x: usize, y: usize| t[y * (w + 1) + x];
                (at(i + WIN, j + WIN) - at(i, j + WIN) - at(i + WIN, j) + at(i, j)) / np
            };
            let [ua, ub, uaa, ubb, uab] = [0, 1, 2, 3, 4].map(|k| mean(&tables[k]));
            let (va, vb) = (cov_norm * (uaa - ua * ua), cov_norm * (ubb - ub * ub));
            let vab = cov_norm * (uab - ua * ub);
            let num = (2.0 * ua * ub + c1) * (2.0 * vab + c2);
            let den = (ua * ua + ub * ub + c1) * (va + vb + c2);
            total += num / den;
            count += 1;
        }
    }
    Ok(total / count as f64)
}

/// One randomisation step of one method over a set of images.
#[derive(Debug, Clone, PartialEq)]
pub struct RandomisationRow {
    /// The step, e.g. `cascade:head.fc` or `independent:backbone.block2.conv`.
    pub step: String,
    /// Spearman's ρ between original and randomised maps over the images.
    pub spearman: Summary,
    /// SSIM over the images.
    pub ssim: Summary,
}

impl RandomisationRow {
    /// Whether the maps changed enough: mean ρ below [`RANDOMISATION_MAX_SPEARMAN`]. Meaningful
    /// on the step that randomises every layer; a method that fails there does not depend on the
    /// model's weights.
    pub fn passes(&self) -> bool {
        self.spearman.mean < RANDOMISATION_MAX_SPEARMAN
    }
}

/// Mean and 95% CI of the similarities of one randomisation step.
///
/// # Errors
/// No images.
pub fn summarize_randomisation(
    step: &str,
    sims: &[MapSimilarity],
) -> Result<RandomisationRow, EvalError> {
    let of = |f: fn(&MapSimilarity) -> f64| {
        Summary::of(&sims.iter().map(f).collect::<Vec<_>>()).ok_or(EvalError::NoImages)
    };
    Ok(RandomisationRow {
        step: step.to_string(),
        spearman: of(|s| s.spearman)?,
        ssim: of(|s| s.ssim)?,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The 12 × 9 test pattern `a(i, j) = ((7i + 3j) mod 11)/10`, `b(i, j) = ((5i + j²) mod 13)/12`.
    fn pattern() -> (Vec<f64>, Vec<f64>) {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for j in 0..9usize {
            for i in 0..12usize {
                a.push(((i * 7 + j * 3) % 11) as f64 / 10.0);
                b.push(((i * 5 + j * j) % 13) as f64 / 12.0);
            }
        }
        (a, b)
    }

    #[test]
    fn spearman_hand_worked_with_ties() {
        // a = [1, 2, 2, 3] → ranks [1, 2.5, 2.5, 4]; b = [1, 2, 3, 4] → ranks [1, 2, 3, 4]; mean
        // rank 2.5. Σ dx·dy = 2.25 + 0 + 0 + 2.25 = 4.5, Σ dx² = 4.5, Σ dy² = 5:
        // ρ = 4.5 / √22.5 = 0.9486833 (scipy.stats.spearmanr gives 0.9486832980505139).
        let r = spearman(&[1.0, 2.0, 2.0, 3.0], &[1.0, 2.0, 3.0, 4.0]).unwrap();
        assert!((r - 4.5 / 22.5f64.sqrt()).abs() < 1e-15);
        assert_eq!(spearman(&[3.0, 2.0, 1.0], &[10.0, 20.0, 30.0]).unwrap(), -1.0);
        // The ties rule: a constant side (every value tied) scores 0, not NaN; so do < 2 values.
        assert_eq!(spearman(&[5.0; 4], &[1.0, 2.0, 3.0, 4.0]).unwrap(), 0.0);
        assert_eq!(spearman(&[1.0], &[2.0]).unwrap(), 0.0);
        assert_eq!(spearman(&[], &[]).unwrap(), 0.0);
        assert!(spearman(&[1.0, f64::NAN], &[1.0, 2.0]).is_err());
        assert!(spearman(&[1.0], &[1.0, 2.0]).is_err());
    }

    #[test]
    fn spearman_and_ssim_match_scipy_and_skimage() {
        // Reference values from Python (scipy 1.17.1, scikit-image 0.26.0) on the same pattern:
        // spearmanr(a.ravel(), b.ravel()).statistic = 0.15528769311021706
        // structural_similarity(a, b, data_range=1.0)  = 0.17632012873133507
        // structural_similarity(a, 0.5*a + 0.2, data_range=1.0) = 0.7971189277483135
        let (a, b) = pattern();
        assert!((spearman(&a, &b).unwrap() - 0.155_287_693_110_217_06).abs() < 1e-12);
        assert!((ssim(&a, &b, 12, 9, 1.0).unwrap() - 0.176_320_128_731_335_07).abs() < 1e-12);
        let c: Vec<f64> = a.iter().map(|v| 0.5 * v + 0.2).collect();
        assert!((ssim(&a, &c, 12, 9, 1.0).unwrap() - 0.797_118_927_748_313_5).abs() < 1e-12);
        assert_eq!(ssim(&a, &a, 12, 9, 1.0).unwrap(), 1.0);
    }

    #[test]
    fn ssim_hand_worked_on_constant_images() {
        // 7 × 7 zeros against ones: one window, μa = 0, μb = 1, no variance. C1 = 1e-4,
        // C2 = 9e-4: S = (0 + C1)(0 + C2) / ((0 + 1 + C1)(0 + 0 + C2)) = C1 / (1 + C1)
        // = 9.9990001e-5 (skimage: 9.999000099990002e-05).
        let s = ssim(&[0.0; 49], &[1.0; 49], 7, 7, 1.0).unwrap();
        assert!((s - 1e-4 / 1.0001).abs() < 1e-18);
        assert!(ssim(&[0.0; 36], &[0.0; 36], 6, 6, 1.0).is_err());
        assert!(ssim(&[0.0; 49], &[0.0; 49], 7, 7, 0.0).is_err());
    }

    #[test]
    fn compare_maps_normalises_by_the_maximum() {
        // A map and 3× the same map: identical after max-normalisation → ρ = 1, SSIM = 1.
        let (a, _) = pattern();
        let map = |k: f64| Heatmap {
            width: 12,
            height: 9,
            values: a.iter().map(|v| (v * k) as f32).collect(),
        };
        let s = compare_maps(1, &map(1.0), &map(3.0)).unwrap();
        assert_eq!(s.spearman, 1.0);
        assert!((s.ssim - 1.0).abs() < 1e-6);
        let mut bad = map(1.0);
        bad.values[5] = -1.0;
        assert!(compare_maps(1, &map(1.0), &bad).is_err());
        let small = Heatmap { width: 3, height: 3, values: vec![0.0; 9] };
        assert!(compare_maps(1, &map(1.0), &small).is_err());
    }

    #[test]
    fn a_method_that_does_not_change_fails() {
        let same = MapSimilarity { spearman: 1.0, ssim: 1.0 };
        let changed = MapSimilarity { spearman: 0.05, ssim: 0.2 };
        assert!(!summarize_randomisation("cascade:all", &[same; 3]).unwrap().passes());
        assert!(summarize_randomisation("cascade:all", &[changed; 3]).unwrap().passes());
        assert!(summarize_randomisation("x", &[]).is_err());
    }
}
