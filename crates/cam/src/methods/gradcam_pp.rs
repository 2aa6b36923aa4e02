//! Grad-CAM++ (Chattopadhay et al., WACV 2018), as in pytorch-grad-cam's `GradCAMPlusPlus`.
//!
//! With `G = ∂s/∂A` and the usual exponential-score approximation of the higher derivatives
//! (`∂²/∂A² ≈ G²`, `∂³/∂A³ ≈ G³`):
//! `a^k_ij = G² / (2 G² + (Σ_ab A^k_ab) G³ + ε)` (ε = 1e-7; zero where `G = 0`),
//! `w_k = Σ_ij a^k_ij · ReLU(G^k_ij)`, raw map `Σ_k w_k A^k`.

use burn::tensor::Tensor;

/// `[N, K, h, w]` × `[N, K, h, w]` → `[N, 1, h, w]`.
pub(crate) fn combine(a: Tensor<4>, g: Tensor<4>) -> Tensor<4> {
    let g2 = g.clone().square();
    let g3 = g2.clone() * g.clone();
    let sum_a = a.clone().sum_dims(&[2, 3]); // [N, K, 1, 1]
    let aij = g2.clone() / (g2.mul_scalar(2.0) + sum_a * g3).add_scalar(1e-7);
    let w = (aij * g.clamp_min(0.0)).sum_dims(&[2, 3]); // [N, K, 1, 1]
    (w * a).sum_dim(1)
}
