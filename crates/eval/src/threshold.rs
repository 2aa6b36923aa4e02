//! The two normalisations of a map and the threshold grid shared by localisation accuracy, its τ
//! curve, MaxBoxAccV2 and PxAP.
//!
//! A map `H ≥ 0` is brought to `v ∈ [0, 1]` before thresholding, in one of two ways:
//! - **by its maximum** (DESIGN's rule; localisation accuracy and its τ curve):
//!   `v(p) = H(p) / max H`, and an all-zero map is scored as uniform, `v ≡ 1` ([`normalise`]);
//! - **min–max** (Choe et al. CVPR 2020; MaxBoxAccV2 and PxAP, so that numbers carrying their
//!   names are comparable with theirs): `v(p) = (H(p) − min H) / (max H − min H)`, computed as
//!   wsolevaluation's `normalize_scoremap` does (`cam -= cam.min(); cam /= cam.max()`, in the
//!   map's float type), and a constant map — all-zero included — becomes `v ≡ 0`, as does a map
//!   holding a NaN ([`normalise_min_max`], [`TauGrid::levels_min_max`]). `score_image` refuses
//!   non-finite maps before any metric, so the NaN rule only shows when these are called
//!   directly.
//!
//! The two agree whenever `min H = 0 < max H` (every ReLU map with a zero pixel); they differ on
//! maps whose minimum is above 0 (min–max stretches the map's range to `[0, 1]`) and on constant
//! maps.
//!
//! The grid has `S` thresholds `τ_k = k / S`, `k = 0..S−1` (the default `S = 100` is
//! wsolevaluation's `np.arange(0, 1, 0.01)`); pixel `p` is above `τ_k` when `v(p) ≥ τ_k`. Each
//! pixel gets its *level* `ℓ(p) = max {k ≤ S : v(p) ≥ k/S}`, so the set above `τ_k` is
//! `{p : ℓ(p) ≥ k}` and level `S` holds the pixels with `v = 1`.

/// `v = h / max`, or 1 for an all-zero map (`max = 0`), scored as uniform.
#[inline]
pub fn normalise(h: f32, max: f32) -> f32 {
    if max > 0.0 { h / max } else { 1.0 }
}

/// Choe et al.'s `v = (h − min) / (max − min)` for a map with range `[min, max]`, or 0 for a
/// constant map (`max = min`): wsolevaluation's `normalize_scoremap` for one pixel (the
/// subtraction first, then the division by `max − min`, rounded as there).
#[inline]
pub fn normalise_min_max(h: f32, min: f32, max: f32) -> f32 {
    if max > min { (h - min) / (max - min) } else { 0.0 }
}

/// The threshold grid `τ_k = k / steps`, `k = 0..steps` (1 ≤ `steps` ≤ 255).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TauGrid {
    steps: usize,
}

impl TauGrid {
    /// A grid of `steps` thresholds; `steps` must lie in 1..=255 (checked by `EvalConfig`).
    pub fn new(steps: usize) -> Self {
        TauGrid { steps: steps.clamp(1, 255) }
    }

    /// Number of thresholds `S`.
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// `τ_k = k / S`.
    #[inline]
    pub fn tau(&self, k: usize) -> f32 {
        k as f32 / self.steps as f32
    }

    /// All thresholds, ascending.
    pub fn taus(&self) -> Vec<f32> {
        (0..self.steps).map(|k| self.tau(k)).collect()
    }

    /// The `k` with `τ_k == tau` exactly, when `tau` lies on the grid.
    pub fn index_of(&self, tau: f32) -> Option<usize> {
        (0..self.steps).find(|&k| self.tau(k) == tau)
    }

    /// `ℓ(v) = max {k ≤ S : v ≥ k/S}` for `v ∈ [0, 1]`, exact with respect to [`TauGrid::tau`].
    #[inline]
    pub fn level(&self, v: f32) -> u8 {
        let s = self.steps;
        let mut k = ((v * s as f32) as usize).min(s);
        if k < s && v >= self.tau(k + 1) {
            k += 1;
        }
        if k > 0 && v < self.tau(k) {
            k -= 1;
        }
        k as u8
    }

    /// Levels of a whole map with maximum `max` (values in `[0, max]`): [`TauGrid::level`] of
    /// [`normalise`]`(h, max)` per pixel, written so that it vectorises. An all-zero map is
    /// uniform: every pixel has `v = 1`, level `S`.
    pub fn levels(&self, values: &[f32], max: f32) -> Vec<u8> {
        if max <= 0.0 {
            return vec![self.steps as u8; values.len()];
        }
        self.levels_of(values, 0.0, max)
    }

    /// Levels of a whole map with range `[min, max]` under Choe et al.'s min–max normalisation:
    /// [`TauGrid::level`] of [`normalise_min_max`]`(h, min, max)` per pixel. A constant map
    /// (`max = min`) or one holding a NaN is all level 0, as wsolevaluation's
    /// `normalize_scoremap` turns both into zeros.
    pub fn levels_min_max(&self, values: &[f32], min: f32, max: f32) -> Vec<u8> {
        // Not `max > min`: constant, or a NaN bound.
        let constant = max.partial_cmp(&min) != Some(std::cmp::Ordering::Greater);
        if constant || values.iter().any(|v| v.is_nan()) {
            return vec![0; values.len()];
        }
        self.levels_of(values, min, max - min)
    }

    /// [`TauGrid::level`] of `(h − offset) / range` per pixel (`range > 0`, results in `[0, 1]`).
    fn levels_of(&self, values: &[f32], offset: f32, range: f32) -> Vec<u8> {
        let s = self.steps as i32;
        let sf = s as f32;
        let mut out = vec![0u8; values.len()];
        for (o, &h) in out.iter_mut().zip(values) {
            // h − 0 = h exactly, so the max normalisation stays `h / max`.
            let v = (h - offset) / range;
            // Nearest integer to v·S by the 2²³ trick (a float-to-int cast does not vectorise);
            // it is within one of the level, and the two exact steps below fix it.
            let x = (v * sf).max(0.0).min(sf);
            let k = ((x + 8_388_608.0).to_bits() & 0x7F_FFFF) as i32;
            let k = k + i32::from((k < s) & (v >= (k + 1) as f32 / sf));
            let k = k - i32::from((k > 0) & (v < k as f32 / sf));
            *o = k as u8;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_match_the_definition() {
        let g = TauGrid::new(100);
        // 0.2 is exactly τ_20; one ulp below it is level 19; 1.0 is level S.
        assert_eq!(g.level(0.2), 20);
        assert_eq!(g.level(f32::from_bits(0.2f32.to_bits() - 1)), 19);
        assert_eq!(g.level(1.0), 100);
        assert_eq!(g.level(0.999_999), 99);
        assert_eq!(g.level(0.0), 0);
        assert_eq!(g.index_of(0.2), Some(20));
        assert_eq!(g.index_of(0.205), None);
        // Brute force: the level is the number of grid values (k = 1..=S) not above v.
        for i in 0..=10_000 {
            let v = i as f32 / 10_000.0;
            let brute = (1..=100).filter(|&k| v >= g.tau(k)).count();
            assert_eq!(g.level(v) as usize, brute, "v = {v}");
        }
        let vs: Vec<f32> = (0..=10_000).map(|i| i as f32 / 10_000.0).collect();
        let table = g.levels(&vs, 1.0);
        assert!(vs.iter().zip(&table).all(|(&v, &l)| g.level(v) == l));
        assert_eq!(TauGrid::new(7).levels(&[0.0, 3.0, 6.0, 7.0], 7.0), vec![0, 3, 6, 7]);
        assert_eq!(normalise(0.0, 0.0), 1.0);
        assert_eq!(normalise(3.0, 4.0), 0.75);
    }

    #[test]
    fn min_max_levels_follow_normalize_scoremap() {
        // H = [2, 3, 4, 6, 5]: min 2, range 4, v = [0, 1/4, 1/2, 1, 3/4]; S = 4 → levels
        // [0, 1, 2, 4, 3]. By the max instead, v = [1/3, 1/2, 2/3, 1, 5/6] → [1, 2, 2, 4, 3].
        let g = TauGrid::new(4);
        let h = [2.0, 3.0, 4.0, 6.0, 5.0];
        assert_eq!(g.levels_min_max(&h, 2.0, 6.0), vec![0, 1, 2, 4, 3]);
        assert_eq!(g.levels(&h, 6.0), vec![1, 2, 2, 4, 3]);
        assert_eq!(normalise_min_max(3.0, 2.0, 6.0), 0.25);
        // A minimum of 0: the two normalisations are the same.
        let h0 = [0.0, 1.5, 3.0, 6.0];
        assert_eq!(g.levels_min_max(&h0, 0.0, 6.0), g.levels(&h0, 6.0));
        // normalize_scoremap: a constant map, all-zero included, and a map holding a NaN become
        // zeros (level 0), where the max normalisation makes an all-zero map uniform (level S).
        assert_eq!(g.levels_min_max(&[5.0; 3], 5.0, 5.0), vec![0; 3]);
        assert_eq!(g.levels_min_max(&[0.0; 3], 0.0, 0.0), vec![0; 3]);
        assert_eq!(g.levels(&[0.0; 3], 0.0), vec![4; 3]);
        assert_eq!(g.levels_min_max(&[1.0, f32::NAN, 3.0], 1.0, 3.0), vec![0; 3]);
        assert_eq!(normalise_min_max(5.0, 5.0, 5.0), 0.0);
    }
}
