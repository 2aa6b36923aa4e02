//! Eigen-CAM (Muhammad & Yeasin, IJCNN 2020), as in pytorch-grad-cam's `EigenCAM`
//! (`get_2d_projection`): target-free.
//!
//! Per image, `X` = the activation as an `[h·w, K]` matrix with each channel centred over space;
//! `v` = its first right singular vector; raw map `X v` (reshaped to `h × w`), `H = ReLU(X v)`.
//! The sign of a singular vector is arbitrary (pytorch-grad-cam keeps whatever the SVD returns);
//! here it is fixed so that the map correlates positively with the channel sum `Σ_k A^k`.
//!
//! `v` is found by power iteration on the smaller Gram matrix (`XᵀX` or `X Xᵀ`) in `f64`, from a
//! fixed start vector, until the Rayleigh quotient changes by less than `1e-12` relative (at most
//! 5000 iterations). The same map is returned for every proxy column.

use burn::tensor::Tensor;
use rayon::prelude::*;

use crate::error::Result;
use crate::util;

/// Top eigenvector of the symmetric positive semi-definite `n × n` matrix `g` (row-major).
pub(crate) fn top_eigenvector(g: &[f64], n: usize) -> Vec<f64> {
    // A fixed, generic start vector (not orthogonal to the top eigenvector in practice).
    let mut v: Vec<f64> =
        (0..n).map(|i| 1.0 + ((i as f64 + 1.0) * 0.618_033_988_75).fract()).collect();
    let mut last = f64::NAN;
    for _ in 0..5000 {
        let mut nv = vec![0.0; n];
        for (i, row) in g.chunks_exact(n).enumerate() {
            nv[i] = row.iter().zip(&v).map(|(a, b)| a * b).sum();
        }
        let norm = nv.iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm <= 0.0 || !norm.is_finite() {
            return vec![0.0; n];
        }
        nv.iter_mut().for_each(|x| *x /= norm);
        v = nv;
        // ‖G v_old‖ → λ_max.
        if (norm - last).abs() <= 1e-12 * norm {
            break;
        }
        last = norm;
    }
    v
}

/// The Eigen-CAM projection of one image's activation `a` (`[K, hw]` row-major).
pub fn projection(a: &[f32], k: usize, hw: usize) -> Vec<f32> {
    // X[i][c] = A[c][i] − mean_i A[c]
    let mut x = vec![0.0f64; hw * k];
    for c in 0..k {
        let ch = &a[c * hw..(c + 1) * hw];
        let mean = ch.iter().map(|&v| v as f64).sum::<f64>() / hw as f64;
        for i in 0..hw {
            x[i * k + c] = ch[i] as f64 - mean;
        }
    }
    let proj: Vec<f64> = if k <= hw {
        // v = top eigenvector of XᵀX (K × K); projection X v.
        let mut g = vec![0.0; k * k];
        for row in x.chunks_exact(k) {
            for i in 0..k {
                for j in 0..k {
                    g[i * k + j] += row[i] * row[j];
                }
            }
        }
        let v = top_eigenvector(&g, k);
        x.chunks_exact(k).map(|row| row.iter().zip(&v).map(|(a, b)| a * b).sum()).collect()
    } else {
        // u = top eigenvector of X Xᵀ (hw × hw); X v = σ u with σ = ‖Xᵀ u‖.
        let mut g = vec![0.0; hw * hw];
        for i in 0..hw {
            for j in 0..hw {
                g[i * hw + j] = x[i * k..(i + 1) * k]
                    .iter()
                    .zip(&x[j * k..(j + 1) * k])
                    .map(|(a, b)| a * b)
                    .sum();
            }
        }
        let u = top_eigenvector(&g, hw);
        let sigma = (0..k)
            .map(|c| (0..hw).map(|i| x[i * k + c] * u[i]).sum::<f64>().powi(2))
            .sum::<f64>()
            .sqrt();
        u.iter().map(|v| v * sigma).collect()
    };
    // Fix the sign: positive correlation with the channel sum.
    let chan_sum: Vec<f64> = (0..hw).map(|i| (0..k).map(|c| a[c * hw + i] as f64).sum()).collect();
    let corr: f64 = proj.iter().zip(&chan_sum).map(|(p, s)| p * s).sum();
    let sign = if corr < 0.0 { -1.0 } else { 1.0 };
    proj.iter().map(|&p| (sign * p) as f32).collect()
}

/// Raw Eigen-CAM maps for a batch, `[B, h·w]` row-major (in parallel over images).
pub(crate) fn raw_maps(a: &Tensor<4>) -> Result<Vec<f32>> {
    let [b, k, h, w] = a.dims();
    let host = util::to_vec(a.clone())?;
    let per: Vec<Vec<f32>> = (0..b)
        .into_par_iter()
        .map(|i| projection(&host[i * k * h * w..(i + 1) * k * h * w], k, h * w))
        .collect();
    Ok(per.concat())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rank_one_activation_projects_onto_its_spatial_factor() {
        // A[c][i] = s_c · u_i + m_c: after centring, X = (u − ū) sᵀ, so X v ∝ u − ū.
        let (k, hw) = (3, 6);
        let u = [0.0f32, 1.0, 4.0, 2.0, 0.5, 3.0];
        let s = [1.0f32, -2.0, 0.5];
        let m = [5.0f32, 7.0, 1.0];
        let a: Vec<f32> = (0..k).flat_map(|c| u.iter().map(move |&ui| s[c] * ui + m[c])).collect();
        let p = projection(&a, k, hw);
        let ubar = u.iter().sum::<f32>() / hw as f32;
        let centred: Vec<f32> = u.iter().map(|x| x - ubar).collect();
        // p = ±‖s‖ (u − ū) exactly; the sign follows the channel sum Σ_c s_c u_i (Σ s = −0.5 < 0).
        let snorm = s.iter().map(|x| x * x).sum::<f32>().sqrt();
        for (pi, ci) in p.iter().zip(&centred) {
            assert!((pi - (-snorm * ci)).abs() < 1e-4, "{p:?} vs {centred:?}");
        }
        // The hw < K branch gives the same answer.
        let a_wide: Vec<f32> = (0..8)
            .flat_map(|c| u[..4].iter().map(move |&ui| (c as f32 - 3.0) * ui + 1.0))
            .collect();
        let p_wide = projection(&a_wide, 8, 4);
        let ub = u[..4].iter().sum::<f32>() / 4.0;
        let sn = (0..8).map(|c| (c as f32 - 3.0).powi(2)).sum::<f32>().sqrt();
        let sign = if (0..8).map(|c| c as f32 - 3.0).sum::<f32>() < 0.0 { -1.0 } else { 1.0 };
        for (pi, ui) in p_wide.iter().zip(&u[..4]) {
            assert!((pi - sign * sn * (ui - ub)).abs() < 1e-4, "{p_wide:?}");
        }
    }

    #[test]
    fn power_iteration_finds_the_top_eigenvector() {
        // diag(1, 5, 2) rotated? Keep it diagonal: the top eigenvector is e_2.
        let g = [1.0, 0.0, 0.0, 0.0, 5.0, 0.0, 0.0, 0.0, 2.0];
        let v = top_eigenvector(&g, 3);
        assert!(v[1].abs() > 1.0 - 1e-9 && v[0].abs() < 1e-6 && v[2].abs() < 1e-6, "{v:?}");
    }
}
