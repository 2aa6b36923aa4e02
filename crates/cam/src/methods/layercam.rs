//! LayerCAM (Jiang et al., IEEE TIP 2021), as in pytorch-grad-cam's `LayerCAM`: positive
//! gradients weight each location, `Σ_k ReLU(G^k) ⊙ A^k`.

use burn::tensor::Tensor;

/// `[N, K, h, w]` × `[N, K, h, w]` → `[N, 1, h, w]`.
pub(crate) fn combine(a: Tensor<4>, g: Tensor<4>) -> Tensor<4> {
    (g.clamp_min(0.0) * a).sum_dim(1)
}
