//! Eval-mode BatchNorm folded into the convolution before it, for inference and explanation
//! passes: `BN(W ∗ x)` with running statistics is the convolution `(s·W) ∗ x + (β − s·μ)`, with
//! `s = γ / √(σ² + ε)` per output channel, so the four element-wise passes of the BatchNorm over
//! every activation (subtract, divide, scale, shift) disappear into the convolution's weights and
//! bias. The stage activations, and so every CAM, are the same to float rounding (tested).
//!
//! The nets' own convolutions are bias-free (torchvision's layout): a convolution that carries a
//! bias is one with its BatchNorm folded in, and [`conv_bn`] then skips the BatchNorm, which
//! folding has also set to the identity. A folded net is for eval-mode forward passes only:
//! training it would train the folded bias instead of the BatchNorm, and its weights are not
//! torchvision's any more (export the unfolded net).

use burn::module::{Param, RunningState};
use burn::nn::BatchNorm;
use burn::nn::conv::Conv2d;
use burn::tensor::Tensor;

/// `conv` then `bn`, or `conv` alone when `bn` is folded into it (the convolution has a bias).
///
/// # Shapes
/// - `x`: `[B, C_in, H, W]` → `[B, C_out, H', W']`
pub(crate) fn conv_bn(conv: &Conv2d, bn: &BatchNorm, x: Tensor<4>) -> Tensor<4> {
    let y = crate::kernels::conv2d(conv, x);
    if conv.bias.is_some() { y } else { crate::kernels::batch_norm(bn, y) }
}

/// Folds `bn`'s running statistics and affine map into `conv` (weights `s·W`, bias
/// `s·(b − μ) + β`, `b` the old bias or 0) and sets `bn` to the identity (γ = 1, β = 0, μ = 0,
/// σ² = 1 − ε).
pub(crate) fn fold(conv: &mut Conv2d, bn: &mut BatchNorm) {
    let [c_out, _, _, _] = conv.weight.dims();
    let eps = bn.epsilon;
    let mean = bn.running_mean.value(); // [C_out]
    let scale = bn.gamma.val() / bn.running_var.value().add_scalar(eps).sqrt(); // [C_out]
    let weight = conv.weight.val() * scale.clone().reshape([c_out, 1, 1, 1]); // [C_out, C_in, k, k]
    let old_bias = match &conv.bias {
        Some(b) => b.val(),
        None => mean.zeros_like(),
    };
    let bias = (old_bias - mean.clone()) * scale + bn.beta.val(); // [C_out]
    conv.weight = Param::from_tensor(weight);
    conv.bias = Some(Param::from_tensor(bias));
    bn.gamma = Param::from_tensor(mean.ones_like());
    bn.beta = Param::from_tensor(mean.zeros_like());
    bn.running_var = RunningState::new(mean.ones_like().sub_scalar(eps));
    bn.running_mean = RunningState::new(mean.zeros_like());
}
