//! Paired comparisons of two map sources scored on the same images: is A's metric higher than
//! B's, and by how much, with the uncertainty that comes from the choice of images.
//!
//! For per-image values `a_i`, `b_i` (i = 1..n) and differences `d_i = a_i − b_i`:
//! - the mean difference `d̄ = Σ d_i / n`, with a **percentile bootstrap** 95% interval: `B`
//!   resamples of n images drawn with replacement, the 2.5th and 97.5th percentiles of their mean
//!   differences (seeded, so a report is reproducible);
//! - the **Wilcoxon signed-rank test**, two-sided: zero differences are dropped (Wilcoxon's
//!   original rule, scipy's `zero_method="wilcox"`), the remaining `m` absolute differences are
//!   ranked with ties given their average rank, `W⁺` is the sum of the ranks of positive
//!   differences, and
//!   `z = (W⁺ − m(m+1)/4) / √(m(m+1)(2m+1)/24 − Σ_t (t³ − t)/48)` (t: the size of each group of
//!   tied |d|), `p = 2·(1 − Φ(|z|))` — scipy's `wilcoxon(..., method="approx", correction=False)`.
//!   The reported statistic is `min(W⁺, W⁻)`, as scipy reports it.

use rand::{Rng, SeedableRng, rngs::StdRng};

use crate::EvalError;

/// The outcome of a paired comparison of A against B.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Paired {
    /// Pairs compared.
    pub n: usize,
    /// Mean of `a − b`.
    pub mean_diff: f64,
    /// Lower end of the bootstrap 95% interval of the mean difference.
    pub ci_low: f64,
    /// Upper end.
    pub ci_high: f64,
    /// Wilcoxon's statistic `min(W⁺, W⁻)`.
    pub wilcoxon: f64,
    /// Two-sided p-value of the signed-rank test (1 when every difference is zero).
    pub p_value: f64,
}

/// Compare `a` with `b` pair by pair (`a[i]` and `b[i]` are the same image), with `resamples`
/// bootstrap resamples drawn from `seed`.
///
/// # Errors
/// [`EvalError::Paired`] when the lengths differ, there is no pair, or a value is not finite.
pub fn paired(a: &[f64], b: &[f64], resamples: usize, seed: u64) -> Result<Paired, EvalError> {
    if a.len() != b.len() || a.is_empty() {
        return Err(EvalError::Paired(format!(
            "{} values against {}: a paired comparison needs the same non-empty set of images \
             on both sides",
            a.len(),
            b.len()
        )));
    }
    if let Some(i) = a.iter().chain(b).position(|v| !v.is_finite()) {
        return Err(EvalError::Paired(format!("value {i} is not finite")));
    }
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    let n = d.len();
    let mean_diff = d.iter().sum::<f64>() / n as f64;
    let (ci_low, ci_high) = bootstrap(&d, resamples.max(1), seed);
    let (wilcoxon, p_value) = signed_rank(&d);
    Ok(Paired { n, mean_diff, ci_low, ci_high, wilcoxon, p_value })
}

/// Percentile bootstrap 95% interval of the mean of `d`.
fn bootstrap(d: &[f64], resamples: usize, seed: u64) -> (f64, f64) {
    let n = d.len();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut means: Vec<f64> = (0..resamples)
        .map(|_| (0..n).map(|_| d[rng.random_range(0..n)]).sum::<f64>() / n as f64)
        .collect();
    means.sort_by(f64::total_cmp);
    (quantile(&means, 0.025), quantile(&means, 0.975))
}

/// Linear-interpolation quantile of sorted values (numpy's default).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// Wilcoxon signed-rank test: (`min(W⁺, W⁻)`, two-sided p, normal approximation).
fn signed_rank(d: &[f64]) -> (f64, f64) {
    let mut nz: Vec<f64> = d.iter().copied().filter(|&v| v != 0.0).collect();
    let m = nz.len();
    if m == 0 {
        return (0.0, 1.0);
    }
    nz.sort_by(|x, y| x.abs().total_cmp(&y.abs()));
    let (mut w_plus, mut ties) = (0.0, 0.0);
    let mut i = 0;
    while i < m {
        let mut j = i;
        while j + 1 < m && nz[j + 1].abs() == nz[i].abs() {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0; // average of ranks i+1..=j+1
        w_plus += rank * nz[i..=j].iter().filter(|&&v| v > 0.0).count() as f64;
        let t = (j - i + 1) as f64;
        ties += t * t * t - t;
        i = j + 1;
    }
    let mf = m as f64;
    let total = mf * (mf + 1.0) / 2.0;
    let var = mf * (mf + 1.0) * (2.0 * mf + 1.0) / 24.0 - ties / 48.0;
    let p = if var > 0.0 {
        let z = (w_plus - total / 2.0) / var.sqrt();
        erfc(z.abs() / std::f64::consts::SQRT_2).min(1.0)
    } else {
        1.0
    };
    (w_plus.min(total - w_plus), p)
}

/// The complementary error function, `erfc(x) = 1 − erf(x)` for x ≥ 0, by W. J. Cody's rational
/// Chebyshev approximation as given in Numerical Recipes (`erfcc`, fractional error < 1.2e-7).
fn erfc(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.5 * x.abs());
    let poly = -x * x - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_rank_by_hand() {
        // d = 1, −2, 3, 4, −5, 6: ranks of |d| are 1..6; W⁺ = 1+3+4+6 = 14, W⁻ = 2+5 = 7.
        // m = 6: E = 6·7/4 = 10.5, Var = 6·7·13/24 = 22.75, z = 3.5/4.769696 = 0.733799,
        // p = 2(1 − Φ(0.733799)) = 0.463071 (scipy.stats.wilcoxon, method="approx": the same).
        let (w, p) = signed_rank(&[1.0, -2.0, 3.0, 4.0, -5.0, 6.0]);
        assert_eq!(w, 7.0);
        assert!((p - 0.463071).abs() < 1e-6, "{p}");
        // Ties and a zero: d = 1, 1, −1, 2, 2, 2, 0 → the zero is dropped, m = 6; |d| ranks:
        // 1,1,1 → 2 each, 2,2,2 → 5 each; W⁺ = 2+2+5+5+5 = 19, W⁻ = 2.
        // Var = 22.75 − (24 + 24)/48 = 21.75, z = 8.5/4.663690 = 1.822594, p = 0.068365.
        let (w, p) = signed_rank(&[1.0, 1.0, -1.0, 2.0, 2.0, 2.0, 0.0]);
        assert_eq!(w, 2.0);
        assert!((p - 0.068365).abs() < 1e-6, "{p}");
        assert_eq!(signed_rank(&[0.0, 0.0]), (0.0, 1.0));
    }

    #[test]
    fn erfc_against_known_values() {
        // erfc(0) = 1, erfc(0.5) = 0.4795001222, erfc(1) = 0.1572992071, erfc(2) = 0.004677734981.
        for (x, v) in
            [(0.0, 1.0), (0.5, 0.479_500_122_2), (1.0, 0.157_299_207_1), (2.0, 0.004_677_735)]
        {
            assert!((erfc(x) - v).abs() < 2e-7 * v.max(1e-3), "erfc({x}) = {}", erfc(x));
        }
    }

    #[test]
    fn bootstrap_interval_brackets_the_mean_and_shrinks_with_n() {
        let a: Vec<f64> = (0..200).map(|i| ((i * 37) % 101) as f64 / 100.0).collect();
        let b: Vec<f64> = a.iter().map(|x| x - 0.1).collect();
        // A constant difference has a degenerate interval at exactly that difference.
        let r = paired(&a, &b, 500, 1).expect("paired");
        assert!((r.mean_diff - 0.1).abs() < 1e-12);
        assert!((r.ci_low - 0.1).abs() < 1e-12 && (r.ci_high - 0.1).abs() < 1e-12);
        assert!(r.p_value < 1e-30, "200 positive differences: {}", r.p_value);
        // Noisy differences: the interval holds the mean, and is about 4·sd/√n wide.
        let noisy: Vec<f64> =
            a.iter().zip(&b).enumerate().map(|(i, (x, _))| x - a[(i * 7) % 200]).collect();
        let zero = vec![0.0; 200];
        let r = paired(&noisy, &zero, 2000, 3).expect("paired");
        let sd = (noisy.iter().map(|v| (v - r.mean_diff).powi(2)).sum::<f64>() / 199.0).sqrt();
        assert!(r.ci_low < r.mean_diff && r.mean_diff < r.ci_high);
        let width = r.ci_high - r.ci_low;
        assert!((width / (3.92 * sd / 200f64.sqrt()) - 1.0).abs() < 0.15, "width {width}");
        // Same seed, same interval.
        assert_eq!(paired(&noisy, &zero, 2000, 3).expect("paired"), r);
    }

    #[test]
    fn refuses_mismatched_or_non_finite_input() {
        assert!(paired(&[1.0], &[1.0, 2.0], 10, 0).is_err());
        assert!(paired(&[], &[], 10, 0).is_err());
        assert!(paired(&[f64::NAN], &[1.0], 10, 0).is_err());
    }
}
