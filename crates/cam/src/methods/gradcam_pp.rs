//! Grad-CAM++ (Chattopadhay et al., WACV 2018), as in pytorch-grad-cam's `GradCAMPlusPlus`.
//!
//! With `G = ∂s/∂A` and the usual exponential-score approximation of the higher derivatives
//! (`∂²/∂A² ≈ G²`, `∂³/∂A³ ≈ G³`):
//! `a^k_ij = G² / (2 G² + (Σ_ab A^k_ab) G³ + ε)` (ε = [`EPS`] = 1e-6; zero where `G = 0`),
//! `w_k = Σ_ij a^k_ij · ReLU(G^k_ij)`, raw map `Σ_k w_k A^k`.
//!
//! ε is not negligible for embedding targets: their gradients are small (`G² ≈ 1e-6`), the size
//! of ε itself, so the constant changes the weights by tens of percent. It is the reference
//! library's, and `tests/fixtures/gradcam_pp.py` checks it against that library's formula.

use burn::tensor::Tensor;

/// ε in the denominator of Grad-CAM++'s `a^k_ij`: pytorch-grad-cam's `eps = 0.000001`
/// (`pytorch_grad_cam/grad_cam_plusplus.py`, 1.5.x and master), the reference docs/method.md names.
pub const EPS: f32 = 1e-6;

/// The channel weights `w_k = Σ_ij a^k_ij · ReLU(G^k_ij)` (formula in the module header):
/// `A`, `G` `[N, K, h, w]` → `[N, K, 1, 1]`.
pub fn weights(a: Tensor<4>, g: Tensor<4>) -> Tensor<4> {
    let g2 = g.clone().square();
    let g3 = g2.clone() * g.clone();
    let sum_a = a.sum_dims(&[2, 3]); // [N, K, 1, 1]
    // Where G = 0 the numerator is 0 and the denominator ε: a = 0, as pytorch-grad-cam's mask.
    let aij = g2.clone() / (g2.mul_scalar(2.0) + sum_a * g3).add_scalar(EPS);
    (aij * g.clamp_min(0.0)).sum_dims(&[2, 3])
}

/// The raw (pre-ReLU) map `Σ_k w_k A^k`: `A`, `G` `[N, K, h, w]` → `[N, 1, h, w]`.
pub fn combine(a: Tensor<4>, g: Tensor<4>) -> Tensor<4> {
    (weights(a.clone(), g) * a).sum_dim(1)
}
