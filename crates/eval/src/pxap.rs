//! PxAP: pixel average precision of the heatmap against the binary mask, over a whole split
//! (Choe et al., CVPR 2020, §4.1, and wsolevaluation's `MaskEvaluator`), on Choe et al.'s min–max
//! normalised map `v = (H − min H)/(max H − min H)` (a constant map is `v ≡ 0`: its pixels enter
//! only at `t = 0`; see [`crate::threshold`]).
//!
//! Streaming and memory-bounded: each image contributes two histograms of its pixels' levels on
//! the τ grid ([`crate::threshold`]), foreground and background, `S + 1` bins each (bin `S` holds
//! `v = 1`); the split sums them. At the thresholds `t_k = k/S` (and `t_S = 1`), taken from the
//! top, `TP(k) = #{fg p : v(p) ≥ t_k}`, `FP(k)` likewise for the background,
//! `P(k) = TP/(TP + FP)`, `R(k) = TP / #fg`, and
//! `PxAP = Σ_{k = S..0} P(k) · (R(k) − R(k+1))` with `R(S+1) = 0` — wsolevaluation's
//! `Σ precision[1:] · diff(recall)`. A term with `TP + FP = 0` has `ΔR = 0` and contributes 0.

use crate::threshold::TauGrid;

/// Foreground and background level histograms of one image, or of a split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PxapHistogram {
    /// Count of foreground pixels per level `0..=S`.
    pub foreground: Vec<u64>,
    /// Count of background pixels per level `0..=S`.
    pub background: Vec<u64>,
}

impl PxapHistogram {
    /// Empty histograms for a grid of `S` thresholds.
    pub fn new(grid: TauGrid) -> Self {
        let bins = grid.steps() + 1;
        PxapHistogram { foreground: vec![0; bins], background: vec![0; bins] }
    }

    /// One image's histograms from its pixel levels and binary mask.
    pub fn from_levels(grid: TauGrid, levels: &[u8], foreground: &[bool]) -> Self {
        // Four interleaved sub-histograms (bin = 2·level + fg) break the store-to-load chain of
        // repeated increments to one bin.
        let mut sub = [[0u32; 512]; 4];
        let (chunks, rest) = (levels.chunks_exact(4), levels.len() / 4 * 4);
        for (ls, fs) in chunks.zip(foreground.chunks_exact(4)) {
            for k in 0..4 {
                sub[k][2 * ls[k] as usize + usize::from(fs[k])] += 1;
            }
        }
        for (&l, &f) in levels[rest..].iter().zip(&foreground[rest..]) {
            sub[0][2 * l as usize + usize::from(f)] += 1;
        }
        let mut h = PxapHistogram::new(grid);
        for l in 0..h.foreground.len() {
            for s in &sub {
                h.background[l] += u64::from(s[2 * l]);
                h.foreground[l] += u64::from(s[2 * l + 1]);
            }
        }
        h
    }

    /// Add another histogram (same grid).
    pub fn merge(&mut self, other: &PxapHistogram) {
        for (a, b) in self.foreground.iter_mut().zip(&other.foreground) {
            *a += b;
        }
        for (a, b) in self.background.iter_mut().zip(&other.background) {
            *a += b;
        }
    }

    /// PxAP of the accumulated pixels (formula in the module header); `None` when no pixel is
    /// foreground.
    pub fn pxap(&self) -> Option<f64> {
        let positives: u64 = self.foreground.iter().sum();
        if positives == 0 {
            return None;
        }
        let (mut tp, mut fp) = (0u64, 0u64);
        let mut recall_prev = 0.0;
        let mut ap = 0.0;
        for (f, b) in self.foreground.iter().zip(&self.background).rev() {
            tp += f;
            fp += b;
            let recall = tp as f64 / positives as f64;
            if tp + fp > 0 {
                ap += tp as f64 / (tp + fp) as f64 * (recall - recall_prev);
            }
            recall_prev = recall;
        }
        Some(ap)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn hand_worked_two_images() {
        // S = 4 (t = 1, .75, .5, .25, 0). Image 1: v = [1, .8, .3, .1], fg = [T, F, T, F].
        // Image 2: v = [1, .6, .6, 0], fg = [F, T, T, F]. Levels: [4, 3, 1, 0], [4, 2, 2, 0].
        // fg levels: 4, 1, 2, 2 (4 positives); bg levels: 3, 0, 4, 0.
        // From the top:
        //   t=1:   TP 1 FP 1 → P 1/2, R 1/4, ΔR 1/4 → 1/8
        //   t=.75: TP 1 FP 2 → P 1/3, ΔR 0
        //   t=.5:  TP 3 FP 2 → P 3/5, R 3/4, ΔR 1/2 → 3/10
        //   t=.25: TP 4 FP 2 → P 2/3, R 1, ΔR 1/4 → 1/6
        //   t=0:   TP 4 FP 4 → ΔR 0
        // PxAP = 1/8 + 3/10 + 1/6 = 0.591666…
        let g = TauGrid::new(4);
        let mut h = PxapHistogram::from_levels(
            g,
            &g.levels(&[1.0, 0.8, 0.3, 0.1], 1.0),
            &[true, false, true, false],
        );
        h.merge(&PxapHistogram::from_levels(
            g,
            &g.levels(&[1.0, 0.6, 0.6, 0.0], 1.0),
            &[false, true, true, false],
        ));
        let ap = h.pxap().unwrap();
        assert!((ap - (1.0 / 8.0 + 3.0 / 10.0 + 1.0 / 6.0)).abs() < 1e-12, "{ap}");
        assert_eq!(PxapHistogram::new(g).pxap(), None);
    }
}
