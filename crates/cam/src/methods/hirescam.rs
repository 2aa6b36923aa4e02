//! HiResCAM (Draelos & Carin, 2020), as in pytorch-grad-cam's `HiResCAM`: the element-wise
//! product of gradient and activation, summed over channels, `Σ_k G^k ⊙ A^k`. For a GAP head the
//! gradient is constant over space and HiResCAM equals Grad-CAM up to the factor `Z`.

use burn::tensor::Tensor;

/// `[N, K, h, w]` × `[N, K, h, w]` → `[N, 1, h, w]`.
pub(crate) fn combine(a: Tensor<4>, g: Tensor<4>) -> Tensor<4> {
    (g * a).sum_dim(1)
}
