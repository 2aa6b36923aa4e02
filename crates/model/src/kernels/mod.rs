//! Training kernels of the project's own for the operations that dominate a training step — the
//! convolution (its backward above all) and BatchNorm in training mode, plus ReLU on LibTorch —
//! on the backends where burn's generic versions are slow: flex (f32) and LibTorch (any float).
//!
//! burn differentiates a convolution through its backend's `conv2d_weight_backward`, whose
//! default (used by flex and burn-tch alike) is a convolution of the batch-transposed input with
//! the output gradient as the kernel, and BatchNorm's training pass through
//! `batch_norm_train[_backward]`, whose default is ≈ 20 element-wise passes with transposed
//! copies; neither backend overrides them, and burn-tch's ReLU backward is a comparison and a mask
//! fill. Here they are autodiff operations of our own ([`conv2d`], [`batch_norm`], [`relu`]): on
//! flex the loops of `cpu.rs` (im2col + gemm, forward and backward; two-pass BatchNorm), on
//! LibTorch ATen's `conv2d` / `native_batch_norm` differentiated by LibTorch's own autograd
//! (`convolution_backward`, `native_batch_norm_backward`: what PyTorch runs) and
//! `threshold_backward` for ReLU. `results/bench-vs-pytorch.md` has what each bought.
//!
//! Two more matter most for inference and explanations: flex's max pool ([`max_pool2d`], forward
//! and backward: burn-flex's generic 3-D kernel took ≈ 15 of the small CNN's ≈ 21 ms inference
//! batch, ours ≈ 2.6; `examples/layers.rs`), and eval-mode BatchNorm as the per-channel affine map it is (one pass on flex, two
//! tensor operations elsewhere) instead of burn's four passes.
//!
//! Where a kernel does not apply (gradient checkpointing, f64 on flex, a convolution with groups
//! or asymmetric padding, a bias on the autodiff device, a max pool in ceil mode or with "same"
//! padding) the functions are burn's own `Conv2d::forward` / `BatchNorm::forward` / `relu` /
//! `MaxPool2d::forward`, so every caller can use them unconditionally. The tests check every
//! kernel against burn's generic path on the same inputs.

mod cpu;
mod flex;
#[cfg(feature = "tch")]
mod tch;

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::ops::ConvOptions;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, DispatchKindConversion, DispatchTensor};
use burn::module::RunningState;
use burn::nn::BatchNorm;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::nn::pool::MaxPool2d;
use burn::tensor::Tensor;

pub use flex::tune_allocator;

/// What a backend provides to [`conv2d`] and [`batch_norm`]'s autodiff operations. Each
/// forward returns what its backward needs (`Saved`): the inputs on flex, the inputs and
/// LibTorch's own autograd graph on LibTorch.
pub(crate) trait Kernels: Backend {
    /// What [`Kernels::train_conv2d`] keeps for [`Kernels::train_conv2d_backward`].
    type ConvSaved: Clone + Send + std::fmt::Debug + 'static;
    /// What [`Kernels::train_batch_norm`] keeps for [`Kernels::train_batch_norm_backward`].
    type NormSaved: Clone + Send + std::fmt::Debug + 'static;

    /// Whether the kernels handle `x` (its dtype and rank).
    fn handles(x: &FloatTensor<Self>) -> bool;

    /// The convolution of `x` with `weight` (no groups, symmetric padding, no bias); `track`
    /// says which of the two will want a gradient.
    fn train_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        options: &ConvOptions<2>,
        track: [bool; 2],
    ) -> (FloatTensor<Self>, Self::ConvSaved);

    /// The gradients of `x` and `weight` (those tracked) from the output gradient.
    fn train_conv2d_backward(
        saved: Self::ConvSaved,
        grad: FloatTensor<Self>,
    ) -> [Option<FloatTensor<Self>>; 2];

    /// BatchNorm with the batch's own statistics: `[output, mean, biased variance]`.
    fn train_batch_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
        track: bool,
    ) -> ([FloatTensor<Self>; 3], Self::NormSaved);

    /// The gradients `[dx, dγ, dβ]` of [`Kernels::train_batch_norm`] from the output gradient.
    fn train_batch_norm_backward(
        saved: Self::NormSaved,
        grad: FloatTensor<Self>,
    ) -> [FloatTensor<Self>; 3];
}

/// `conv.forward(x)`: on flex (f32) computed by the kernels' im2col + gemm, and on an autodiff
/// device differentiated with [`Kernels::train_conv2d_backward`] where it applies.
///
/// # Shapes
/// - `x`: `[B, C_in, H, W]` → `[B, C_out, H', W']`
pub fn conv2d(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let Some(options) = options(conv, &x) else { return conv.forward(x) };
    let weight = conv.weight.val();
    if conv.bias.is_none() {
        let y = conv2d_on::<burn::backend::Flex>(&x, &weight, &options);
        #[cfg(feature = "tch")]
        #[allow(deprecated)] // burn-tch is marked deprecated upstream; see tch.rs
        let y = y.or_else(|| conv2d_on::<burn::backend::LibTorch>(&x, &weight, &options));
        if let Some(y) = y {
            return y;
        }
    }
    let bias = conv.bias.as_ref().map(|b| b.val());
    if let Some(y) = flex::conv2d_plain(&x, &weight, bias.as_ref(), &options) {
        return y;
    }
    conv.forward(x)
}

/// `bn.forward(x)`; in training mode on an autodiff device, [`Kernels::train_batch_norm`] and its
/// backward where they apply, with the running statistics updated as burn's `BatchNorm` does
/// (`running = (1 − momentum)·running + momentum·batch`, biased batch variance).
///
/// # Shapes
/// - `x`: `[B, C, H, W]` → `[B, C, H, W]`
pub fn batch_norm(bn: &BatchNorm, x: Tensor<4>) -> Tensor<4> {
    if !(x.device().is_autodiff() && bn.training.is_enabled()) {
        return eval_batch_norm(bn, x);
    }
    let (gamma, beta) = (bn.gamma.val(), bn.beta.val());
    let fused = batch_norm_on::<burn::backend::Flex>(&x, &gamma, &beta, bn.epsilon);
    #[cfg(feature = "tch")]
    #[allow(deprecated)] // burn-tch is marked deprecated upstream; see tch.rs
    let fused =
        fused.or_else(|| batch_norm_on::<burn::backend::LibTorch>(&x, &gamma, &beta, bn.epsilon));
    let Some((y, mean, variance)) = fused else { return bn.forward(x) };
    let device = y.device();
    let update = |state: &RunningState<Tensor<1>>, batch: Tensor<1>| {
        let running = state.value_sync().to_device(&device);
        let next =
            running.mul_scalar(1.0 - bn.momentum).add(batch.detach().mul_scalar(bn.momentum));
        state.update(next.detach());
    };
    update(&bn.running_mean, mean);
    update(&bn.running_var, variance);
    y
}

/// BatchNorm with the running statistics (eval mode, or any plain device), as the per-channel
/// affine map `x·s + t` with `s = γ / √(σ² + ε)`, `t = β − μ·s`: one pass on the plain flex
/// device (`cpu::scale_shift`), two tensor operations elsewhere (autodiff differentiates them),
/// where burn's `batch_norm` makes four passes (subtract, divide, scale, shift). Equal to burn's
/// to float rounding (tested). An input whose channel count is not the BatchNorm's goes to burn,
/// which reports it.
fn eval_batch_norm(bn: &BatchNorm, x: Tensor<4>) -> Tensor<4> {
    let [_, c, _, _] = x.dims();
    if bn.gamma.dims() != [c] {
        return bn.forward(x);
    }
    let device = x.device();
    let mean = bn.running_mean.value().to_device(&device);
    let variance = bn.running_var.value().to_device(&device);
    let (gamma, beta) = (bn.gamma.val(), bn.beta.val());
    if let Some(y) = flex::batch_norm_plain(&x, [&gamma, &beta, &mean, &variance], bn.epsilon) {
        return y;
    }
    let scale = gamma / variance.add_scalar(bn.epsilon).sqrt(); // [C]
    let shift = beta - mean * scale.clone(); // [C]
    x * scale.reshape([1, c, 1, 1]) + shift.reshape([1, c, 1, 1])
}

/// `pool.forward(x)`; on flex (f32) the loops of `cpu.rs`, on the plain device and, with a
/// backward of its own, on the autodiff device. burn-flex's max pool runs the generic 3-D
/// kernel with per-output range arithmetic: ≈ 15 of the small CNN's ≈ 21 ms inference batch.
/// Ceil mode, "same" or asymmetric padding and a window that could lie wholly in the padding
/// take burn's path. Outputs, and gradients where windows do not overlap, are burn's to the bit
/// (tested).
///
/// # Shapes
/// - `x`: `[B, C, H, W]` → `[B, C, H', W']`
pub fn max_pool2d(pool: &MaxPool2d, x: Tensor<4>) -> Tensor<4> {
    let Some(g) = pool_geometry(pool, x.dims()) else { return pool.forward(x) };
    if let Some(y) = flex::max_pool2d_plain(&x, &g).or_else(|| max_pool2d_on_flex(&x, &g)) {
        return y;
    }
    pool.forward(x)
}

/// The shapes of `pool` over an input of `dims`, for the pools the kernels take.
fn pool_geometry(pool: &MaxPool2d, [n, c, h, w]: [usize; 4]) -> Option<cpu::PoolGeometry> {
    let padding = symmetric(&pool.padding)?;
    let (k, s, d) = (pool.kernel_size, pool.stride, pool.dilation);
    let out = |a: usize, size: usize| {
        let span = d[a] * k[a].checked_sub(1)? + 1;
        (s[a] > 0 && 2 * padding[a] <= k[a] && size + 2 * padding[a] >= span)
            .then(|| (size + 2 * padding[a] - span) / s[a] + 1)
    };
    let out = [out(0, h)?, out(1, w)?];
    let planes = n * c;
    let indexable = h > 0 && w > 0 && u32::try_from(h * w).is_ok(); // in-plane u32 indices
    let g =
        cpu::PoolGeometry { planes, size: [h, w], kernel: k, out, stride: s, padding, dilation: d };
    (indexable && !pool.ceil_mode && d.iter().all(|&d| d > 0) && g.windows_reach_the_plane())
        .then_some(g)
}

/// [`max_pool2d`] on flex's autodiff device.
fn max_pool2d_on_flex(x: &Tensor<4>, g: &cpu::PoolGeometry) -> Option<Tensor<4>> {
    let x = x.clone().try_into_primitive::<Autodiff<Flex>>().ok()?;
    if !Flex::handles(x.primitive()) {
        return None;
    }
    let y = match MaxPool2dBackward.prepare::<NoCheckpoint>([x.node()]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => {
            let (y, saved) = flex::max_pool2d(x.into_primitive(), g, true)?;
            prep.finish(saved, y)
        }
        OpsKind::UnTracked(prep) => prep.finish(flex::max_pool2d(x.into_primitive(), g, false)?.0),
    };
    Some(Tensor::from_primitive::<Autodiff<Flex>>(y))
}

/// `relu(x)`; on LibTorch's autodiff device LibTorch's own relu and backward (burn-tch's relu
/// backward is a comparison and a mask fill, ≈ 4× PyTorch's time on the small CNN's first block).
///
/// # Shapes
/// - `x`: `[B, C, H, W]` → `[B, C, H, W]`
pub fn relu(x: Tensor<4>) -> Tensor<4> {
    #[cfg(feature = "tch")]
    if let Some(y) = tch::relu(&x) {
        return y;
    }
    burn::tensor::activation::relu(x)
}

/// The options `Conv2d::forward` builds, for the convolutions the kernels take: no groups,
/// explicit symmetric (or no) padding, a kernel no larger than the padded input, and an input
/// with the weight's channel count (anything else goes to burn, which reports it).
fn options(conv: &Conv2d, x: &Tensor<4>) -> Option<ConvOptions<2>> {
    let padding = symmetric(&conv.padding)?;
    let ([_, c_in, h, w], [_, w_in, kh, kw]) = (x.dims(), conv.weight.dims());
    let fits = |axis: usize, size: usize, k: usize| {
        size + 2 * padding[axis] > conv.dilation[axis] * (k - 1)
    };
    (conv.groups == 1 && c_in == w_in && fits(0, h, kh) && fits(1, w, kw))
        .then(|| ConvOptions::new(conv.stride, padding, conv.dilation, 1))
}

/// `[vertical, horizontal]` padding when `padding` is none or explicit and the same on both sides
/// of each axis ("same" padding may be asymmetric and is left to burn).
fn symmetric(padding: &PaddingConfig2d) -> Option<[usize; 2]> {
    match *padding {
        PaddingConfig2d::Valid => Some([0, 0]),
        PaddingConfig2d::Explicit(top, left, bottom, right) if top == bottom && left == right => {
            Some([top, left])
        }
        _ => None,
    }
}

/// [`conv2d`] on `Autodiff<B>` when `x` and `weight` live there and `B` handles them.
fn conv2d_on<B>(x: &Tensor<4>, weight: &Tensor<4>, options: &ConvOptions<2>) -> Option<Tensor<4>>
where
    B: Kernels,
    DispatchTensor: DispatchKindConversion<Autodiff<B>>,
{
    let x = x.clone().try_into_primitive::<Autodiff<B>>().ok()?;
    let weight = weight.clone().try_into_primitive::<Autodiff<B>>().ok()?;
    if !B::handles(x.primitive()) {
        return None;
    }
    let track = [x.is_tracked(), weight.is_tracked()];
    let y = match Conv2dBackward
        .prepare::<NoCheckpoint>([x.node(), weight.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let (y, saved) =
                B::train_conv2d(x.into_primitive(), weight.into_primitive(), options, track);
            prep.finish(saved, y)
        }
        OpsKind::UnTracked(prep) => prep
            .finish(B::train_conv2d(x.into_primitive(), weight.into_primitive(), options, track).0),
    };
    Some(Tensor::from_primitive::<Autodiff<B>>(y))
}

/// [`batch_norm`]'s fused operation on `Autodiff<B>`: `(output, mean, variance)`.
fn batch_norm_on<B>(
    x: &Tensor<4>,
    gamma: &Tensor<1>,
    beta: &Tensor<1>,
    epsilon: f64,
) -> Option<(Tensor<4>, Tensor<1>, Tensor<1>)>
where
    B: Kernels,
    DispatchTensor: DispatchKindConversion<Autodiff<B>>,
{
    let x = x.clone().try_into_primitive::<Autodiff<B>>().ok()?;
    let gamma = gamma.clone().try_into_primitive::<Autodiff<B>>().ok()?;
    let beta = beta.clone().try_into_primitive::<Autodiff<B>>().ok()?;
    if !B::handles(x.primitive()) {
        return None;
    }
    let track = x.is_tracked() || gamma.is_tracked() || beta.is_tracked();
    let prepared = BatchNormBackward
        .prepare::<NoCheckpoint>([x.node(), gamma.node(), beta.node()])
        .compute_bound()
        .stateful();
    let (x, gamma, beta) = (x.into_primitive(), gamma.into_primitive(), beta.into_primitive());
    let ([y, mean, variance], saved) = B::train_batch_norm(x, gamma, beta, epsilon, track);
    let y = match prepared {
        OpsKind::Tracked(prep) => prep.finish(saved, y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    // The statistics leave the graph (untracked): they only feed the running averages.
    let stat = |t| Tensor::<1>::from_primitive::<Autodiff<B>>(FloatTensor::<Autodiff<B>>::new(t));
    Some((Tensor::from_primitive::<Autodiff<B>>(y), stat(mean), stat(variance)))
}

/// The gradient checkpointing strategy of the autodiff devices this crate creates
/// (`Device::autodiff()`): none. Tensors on a checkpointing device do not convert to
/// `Autodiff<B, NoCheckpoint>` and take burn's path.
pub(crate) type NoCheckpoint = burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;

/// One backward step: the output gradient through `gradients`, and each parent that asked for a
/// gradient gets its own.
pub(crate) fn step<B: Backend, S, const N: usize>(
    ops: Ops<S, N>,
    grads: &mut Gradients,
    gradients: impl FnOnce(S, FloatTensor<B>) -> [Option<FloatTensor<B>>; N],
) {
    let grad = grads.consume::<B>(&ops.node);
    for (node, g) in ops.parents.into_iter().zip(gradients(ops.state, grad)) {
        if let (Some(node), Some(g)) = (node, g) {
            grads.register::<B>(node.id, g);
        }
    }
}

#[derive(Debug)]
struct Conv2dBackward;

impl<B: Kernels> Backward<B, 2> for Conv2dBackward {
    type State = B::ConvSaved;

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        step::<B, _, 2>(ops, grads, B::train_conv2d_backward);
    }
}

#[derive(Debug)]
struct BatchNormBackward;

impl<B: Kernels> Backward<B, 3> for BatchNormBackward {
    type State = B::NormSaved;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        step::<B, _, 3>(ops, grads, |s, g| B::train_batch_norm_backward(s, g).map(Some));
    }
}

#[derive(Debug)]
struct MaxPool2dBackward;

impl Backward<Flex, 1> for MaxPool2dBackward {
    type State = flex::PoolSaved;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        step::<Flex, _, 1>(ops, grads, |s, g| [Some(flex::max_pool2d_backward(s, g))]);
    }
}
