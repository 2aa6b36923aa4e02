//! XGrad-CAM (Fu et al., BMVC 2020), as in pytorch-grad-cam's `XGradCAM`:
//! `w_k = Σ_ij G^k_ij A^k_ij / (Σ_ij A^k_ij + ε)` (ε = 1e-7), raw map `Σ_k w_k A^k`.

use burn::tensor::Tensor;

/// `[N, K, h, w]` × `[N, K, h, w]` → `[N, 1, h, w]`.
pub(crate) fn combine(a: Tensor<4>, g: Tensor<4>) -> Tensor<4> {
    let sum_a = a.clone().sum_dims(&[2, 3]).add_scalar(1e-7); // [N, K, 1, 1]
    let w = (g * a.clone()).sum_dims(&[2, 3]) / sum_a;
    (w * a).sum_dim(1)
}
