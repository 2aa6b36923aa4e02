//! [`Kernels`] for LibTorch: the forward is ATen's `conv2d` / `native_batch_norm` on leaves that
//! ask LibTorch's autograd for gradients, and the backward is LibTorch's own backward of that
//! graph (`convolution_backward`, `native_batch_norm_backward`: what PyTorch runs), instead of
//! burn's generic compositions of tensor ops. The output handed to burn is detached from that
//! graph, so burn's own operations never build LibTorch graphs.
//!
//! Tensors handed back to burn never share storage with a tensor LibTorch saved for the backward
//! (burn-tch reuses a tensor it believes it owns in place, which LibTorch refuses at backward
//! time), and the inputs are kept in [`Saved`] so that burn does not reuse theirs.

// burn-tch is marked deprecated upstream; it is this project's LibTorch backend (crate README).
#![allow(deprecated)]

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::libtorch::TchTensor;
use burn::backend::ops::ConvOptions;
use burn::backend::{Autodiff, LibTorch};
use burn::tensor::Tensor;

use super::{Kernels, NoCheckpoint, step};

/// The leaves of one operation in LibTorch's autograd and its output with their graph.
#[derive(Clone, Debug)]
pub(crate) struct Saved {
    /// burn's inputs, kept so that burn never reuses their storage in place (the leaves share it).
    inputs: Vec<TchTensor>,
    /// The leaves, in the order of the operation's inputs; `None` where no gradient is wanted.
    leaves: Vec<Option<TchTensor>>,
    /// The output, still attached to LibTorch's graph.
    output: TchTensor,
}

/// A leaf sharing `t`'s storage, asking for a gradient when `track`.
fn leaf(t: &TchTensor, track: bool) -> tch::Tensor {
    t.tensor.detach().set_requires_grad(track)
}

/// Runs LibTorch's backward of `saved.output` under the output gradient `grad`: the gradient of
/// `Σ output·grad` with respect to each tracked leaf.
fn backward(saved: Saved, grad: TchTensor) -> Vec<Option<TchTensor>> {
    let wanted: Vec<&tch::Tensor> = saved.leaves.iter().flatten().map(|t| &t.tensor).collect();
    if wanted.is_empty() {
        return saved.leaves.iter().map(|_| None).collect();
    }
    let objective = (&saved.output.tensor * &grad.tensor).sum(saved.output.tensor.kind());
    let mut grads = tch::Tensor::run_backward(&[objective], &wanted, false, false).into_iter();
    saved.leaves.iter().map(|l| l.as_ref().and_then(|_| grads.next()).map(TchTensor::new)).collect()
}

/// `relu(x)` on `Autodiff<LibTorch>`: LibTorch's `relu`, and its `threshold_backward` (one pass)
/// as the backward, instead of burn-tch's comparison + mask fill. `None` elsewhere.
pub(super) fn relu(x: &Tensor<4>) -> Option<Tensor<4>> {
    let x = x.clone().try_into_primitive::<Autodiff<LibTorch>>().ok()?;
    if !LibTorch::handles(x.primitive()) {
        return None;
    }
    let y = match ReluBackward.prepare::<NoCheckpoint>([x.node()]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => {
            let output = TchTensor::new(x.into_primitive().tensor.relu());
            // burn's handle shares the saved output's storage record, so that burn never
            // overwrites the output in place
            let y = TchTensor::from_existing(output.tensor.shallow_clone(), output.storage.clone());
            prep.finish(output, y)
        }
        OpsKind::UnTracked(prep) => prep.finish(TchTensor::new(x.into_primitive().tensor.relu())),
    };
    Some(Tensor::from_primitive::<Autodiff<LibTorch>>(y))
}

#[derive(Debug)]
struct ReluBackward;

impl Backward<LibTorch, 1> for ReluBackward {
    /// The output: the gradient passes where it is positive.
    type State = TchTensor;

    fn backward(self, ops: Ops<TchTensor, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        step::<LibTorch, _, 1>(ops, grads, |output, g| {
            // tch names the operands after the method receiver: `output` is ATen's `self`
            [Some(TchTensor::new(output.tensor.threshold_backward(&g.tensor, 0.0)))]
        });
    }
}

impl Kernels for LibTorch {
    type ConvSaved = Saved;
    type NormSaved = Saved;

    fn handles(x: &TchTensor) -> bool {
        matches!(x.tensor.kind(), tch::Kind::Float | tch::Kind::Double) && x.tensor.dim() == 4
    }

    fn train_conv2d(
        x: TchTensor,
        weight: TchTensor,
        options: &ConvOptions<2>,
        track: [bool; 2],
    ) -> (TchTensor, Saved) {
        let (xl, wl) = (leaf(&x, track[0]), leaf(&weight, track[1]));
        let i64s = |v: [usize; 2]| v.map(|u| u as i64);
        let output = xl.conv2d(
            &wl,
            None::<tch::Tensor>,
            i64s(options.stride),
            i64s(options.padding_begin()),
            i64s(options.dilation),
            1,
        );
        let y = TchTensor::new(output.detach());
        let leaves = [(xl, track[0]), (wl, track[1])]
            .into_iter()
            .map(|(l, t)| t.then(|| TchTensor::new(l)))
            .collect();
        (y, Saved { inputs: vec![x, weight], leaves, output: TchTensor::new(output) })
    }

    fn train_conv2d_backward(saved: Saved, grad: TchTensor) -> [Option<TchTensor>; 2] {
        let mut g = backward(saved, grad).into_iter();
        [g.next().flatten(), g.next().flatten()]
    }

    fn train_batch_norm(
        x: TchTensor,
        gamma: TchTensor,
        beta: TchTensor,
        epsilon: f64,
        track: bool,
    ) -> ([TchTensor; 3], Saved) {
        let leaves = [&x, &gamma, &beta].map(|t| leaf(t, track));
        let (output, mean, inv_std) = leaves[0].native_batch_norm(
            Some(&leaves[1]),
            Some(&leaves[2]),
            None::<&tch::Tensor>,
            None::<&tch::Tensor>,
            true,
            0.0,
            epsilon,
        );
        // biased batch variance, what burn's running statistics take: 1/inv_std² − ε
        let variance = inv_std.detach().pow_tensor_scalar(-2.0) - epsilon;
        let y = TchTensor::new(output.detach());
        let saved = Saved {
            inputs: vec![x, gamma, beta],
            leaves: leaves.into_iter().map(|l| track.then(|| TchTensor::new(l))).collect(),
            output: TchTensor::new(output),
        };
        // `mean` is saved by LibTorch for the backward: burn gets a copy
        ([y, TchTensor::new(mean.detach().copy()), TchTensor::new(variance)], saved)
    }

    fn train_batch_norm_backward(saved: Saved, grad: TchTensor) -> [TchTensor; 3] {
        let inputs = saved.inputs.clone();
        let grads = backward(saved, grad);
        // All three leaves are tracked whenever the operation is recorded; zeros stand in for a
        // gradient LibTorch does not return.
        let mut g = inputs
            .into_iter()
            .zip(grads)
            .map(|(t, g)| g.unwrap_or_else(|| TchTensor::new(t.tensor.zeros_like())));
        std::array::from_fn(|_| g.next().expect("BatchNorm has three inputs"))
    }
}
