//! The closed form for heads that are global average pooling → linear (→ L2), at the last stage
//! (docs/method.md, "The closed form for GAP → linear (→ L2) heads").
//!
//! With `ā_k = (1/Z) Σ_ij A^k_ij` (Z = h·w) and `z = W ā + b`, every location of channel `k`
//! reaches `z` through the same weight, so `∂s/∂A^k_ij = (Wᵀ g)_k / Z` is constant over `(i, j)`,
//! where `g = ∂s/∂z`: `g = p` for `s = z·p`, `g = (p − (y·p) y)/‖z‖` for `s = y·p`
//! ([`Target::grad_z`]). Grad-CAM's weights are then `α = Wᵀ g / Z` and the maps of any number of
//! proxies need one forward pass and no backward: `H_p = ReLU(Σ_k α_pk A^k)`, a `[P, K] × [K, hw]`
//! product per image.

use burn::tensor::Tensor;
use embcam_model::Staged;

use crate::target::Target;
use crate::util;

/// The head's `(W [d, K], b [d])` when the closed form applies to `stage`, or why it does not.
///
/// It applies when `stage` is the network's last stage, the head reports `linear_head()`, the
/// shapes fit (`W` is `[d, K]`), and — checked on this very batch — `z = W ā + b` reproduces
/// `forward_from` to `1e-4` relative, so a head that misreports itself falls back to autodiff.
pub(crate) fn applicable<M: Staged>(
    model: &M,
    stage: &str,
    a: &Tensor<4>,
    z: &Tensor<2>,
) -> std::result::Result<(Tensor<2>, Tensor<1>), String> {
    let stages = model.stage_names();
    if stages.last().copied() != Some(stage) {
        return Err(format!(
            "stage `{stage}` is not the last stage ({})",
            stages.last().copied().unwrap_or("none")
        ));
    }
    let Some((w, b)) = model.linear_head() else {
        return Err("the head is not GAP → linear (linear_head() is None)".into());
    };
    let [_, k, _, _] = a.dims();
    let [_, d] = z.dims();
    if w.dims() != [d, k] || b.dims() != [d] {
        return Err(format!(
            "linear head W {:?}, b {:?} does not fit K = {k}, d = {d}",
            w.dims(),
            b.dims()
        ));
    }
    let z_check = pooled(a.clone()).matmul(w.clone().transpose()) + b.clone().unsqueeze_dim(0);
    let (Ok(zc), Ok(zz)) = (util::to_vec(z_check), util::to_vec(z.clone())) else {
        return Err("could not read the head's output back".into());
    };
    let scale = zz.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-6);
    let err = zc.iter().zip(&zz).fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    if err.is_nan() || err > 1e-4 * scale {
        return Err(format!(
            "W ā + b differs from the head's output by {err:e} (relative {:e})",
            err / scale
        ));
    }
    Ok((w, b))
}

/// `ā = mean_ij A`, `[N, K, h, w]` → `[N, K]`.
pub(crate) fn pooled(a: Tensor<4>) -> Tensor<2> {
    let [n, k, _, _] = a.dims();
    a.mean_dims(&[2, 3]).reshape([n, k])
}

/// The constant gradient `∂s/∂A^k_ij = (Wᵀ g)_k / Z` for every row.
///
/// # Shapes
/// - `z`, `p`: `[N, d]`, `w`: `[d, K]` → `[N, K]`
pub(crate) fn constant_grad(
    target: &Target,
    z: Tensor<2>,
    p: Tensor<2>,
    w: Tensor<2>,
    spatial: usize,
) -> Tensor<2> {
    let g = target.grad_z(z, p); // [N, d]
    g.matmul(w).div_scalar(spatial as f64) // [N, K]
}

/// Grad-CAM raw maps from per-(image, proxy) weights: `raw_bp = Σ_k α_bpk A_b^k`.
///
/// # Shapes
/// - `alpha`: `[B, P, K]`, `a`: `[B, K, h, w]` → `[B, P, h·w]`
pub(crate) fn gradcam_maps(alpha: Tensor<3>, a: Tensor<4>) -> Tensor<3> {
    let [b, k, h, w] = a.dims();
    alpha.matmul(a.reshape([b, k, h * w]))
}
