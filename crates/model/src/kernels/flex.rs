//! [`Kernels`] for flex: f32 tensors through the loops of `cpu.rs` (other dtypes take burn's
//! path), and the allocator setting that keeps large tensors' pages mapped between steps.

use burn::backend::Flex;
use burn::backend::flex::FlexTensor;
use burn::backend::ops::ConvOptions;
use burn::tensor::{DType, Shape, Tensor, TensorData};

use super::Kernels;
use super::cpu::{self, ConvGeometry, PoolGeometry};

/// `t`'s elements as one contiguous f32 slice (a copy only when `t` is a strided view).
fn contiguous(t: FlexTensor) -> FlexTensor {
    if t.as_slice::<f32>().is_some() { t } else { t.to_contiguous() }
}

fn slice(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>().expect("contiguous f32 tensor (checked by `handles` and `contiguous`)")
}

fn tensor(values: Vec<f32>, shape: impl Into<Shape>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape.into()))
}

fn dims4(t: &FlexTensor) -> [usize; 4] {
    let s = t.layout().shape();
    [s[0], s[1], s[2], s[3]]
}

/// The shapes of `x ∗ weight` under `options` (symmetric padding).
fn geometry(x: &FlexTensor, weight: &FlexTensor, options: &ConvOptions<2>) -> ConvGeometry {
    let ([n, c_in, h, w], [c_out, _, kh, kw]) = (dims4(x), dims4(weight));
    let out = |axis: usize, size: usize, k: usize| {
        let span = options.dilation[axis] * (k - 1) + 1;
        (size + 2 * options.padding_begin()[axis]).saturating_sub(span) / options.stride[axis] + 1
    };
    ConvGeometry {
        n,
        c_in,
        h,
        w,
        c_out,
        kernel: [kh, kw],
        out: [out(0, h, kh), out(1, w, kw)],
        stride: options.stride,
        padding: options.padding_begin(),
        dilation: options.dilation,
    }
}

/// `x ∗ weight (+ bias)` with contiguous f32 operands.
fn forward(
    x: &FlexTensor,
    weight: &FlexTensor,
    bias: Option<&FlexTensor>,
    options: &ConvOptions<2>,
) -> FlexTensor {
    let g = geometry(x, weight, options);
    let y = cpu::conv2d_forward(slice(x), slice(weight), bias.map(slice), &g);
    tensor(y, [g.n, g.c_out, g.out[0], g.out[1]])
}

/// The convolution on the plain flex device (inference, explanations): `None` when `x` is not a
/// flex f32 tensor there.
pub(super) fn conv2d_plain(
    x: &Tensor<4>,
    weight: &Tensor<4>,
    bias: Option<&Tensor<1>>,
    options: &ConvOptions<2>,
) -> Option<Tensor<4>> {
    let xp = contiguous(x.clone().try_into_primitive::<Flex>().ok()?);
    if !Flex::handles(&xp) {
        return None;
    }
    let wp = contiguous(weight.clone().try_into_primitive::<Flex>().ok()?);
    let bp = match bias {
        Some(b) => Some(contiguous(b.clone().try_into_primitive::<Flex>().ok()?)),
        None => None,
    };
    Some(Tensor::from_primitive::<Flex>(forward(&xp, &wp, bp.as_ref(), options)))
}

/// Eval-mode BatchNorm on the plain flex device, one pass: `x·s + t` per channel, with
/// `s = γ / √(σ² + ε)` and `t = β − μ·s` from `[γ, β, μ, σ²]`. `None` when `x` is not a flex f32
/// tensor there.
pub(super) fn batch_norm_plain(
    x: &Tensor<4>,
    [gamma, beta, mean, variance]: [&Tensor<1>; 4],
    epsilon: f64,
) -> Option<Tensor<4>> {
    let xp = contiguous(x.clone().try_into_primitive::<Flex>().ok()?);
    if !Flex::handles(&xp) {
        return None;
    }
    let host = |t: &Tensor<1>| -> Option<FlexTensor> {
        let t = contiguous(t.clone().try_into_primitive::<Flex>().ok()?);
        (t.dtype() == DType::F32).then_some(t)
    };
    let (g, b, m, v) = (host(gamma)?, host(beta)?, host(mean)?, host(variance)?);
    let [n, c, h, w] = dims4(&xp);
    let (g, b, m, v) = (slice(&g), slice(&b), slice(&m), slice(&v));
    let scale: Vec<f32> = (0..c).map(|ch| g[ch] * inv_std(v[ch], epsilon)).collect();
    let shift: Vec<f32> = (0..c).map(|ch| b[ch] - m[ch] * scale[ch]).collect();
    let y = cpu::scale_shift(slice(&xp), c, h * w, &scale, &shift);
    Some(Tensor::from_primitive::<Flex>(tensor(y, [n, c, h, w])))
}

/// The max pool of a flex f32 tensor `x` (`None` otherwise) and, when `with_indices`, what its
/// backward needs.
pub(super) fn max_pool2d(
    x: FlexTensor,
    g: &PoolGeometry,
    with_indices: bool,
) -> Option<(FlexTensor, PoolSaved)> {
    if !Flex::handles(&x) {
        return None;
    }
    let x = contiguous(x);
    let [n, c, _, _] = dims4(&x);
    let (y, indices) = cpu::max_pool2d_forward(slice(&x), g, with_indices);
    let y = tensor(y, [n, c, g.out[0], g.out[1]]);
    Some((y, PoolSaved { indices: std::sync::Arc::new(indices), geometry: *g, dims: [n, c] }))
}

/// The max pool on the plain flex device (inference, explanations): `None` when `x` is not a flex
/// f32 tensor there.
pub(super) fn max_pool2d_plain(x: &Tensor<4>, g: &PoolGeometry) -> Option<Tensor<4>> {
    let (y, _) = max_pool2d(x.clone().try_into_primitive::<Flex>().ok()?, g, false)?;
    Some(Tensor::from_primitive::<Flex>(y))
}

/// What flex's max pool keeps for its backward: where each window's maximum is.
#[derive(Clone, Debug)]
pub(crate) struct PoolSaved {
    indices: std::sync::Arc<Vec<u32>>,
    geometry: PoolGeometry,
    dims: [usize; 2],
}

/// The max pool's input gradient from its output gradient.
pub(super) fn max_pool2d_backward(saved: PoolSaved, grad: FlexTensor) -> FlexTensor {
    let PoolSaved { indices, geometry: g, dims: [n, c] } = saved;
    let dx = cpu::max_pool2d_backward(slice(&contiguous(grad)), &indices, &g);
    tensor(dx, [n, c, g.size[0], g.size[1]])
}

/// What flex's convolution keeps: its input, weight, options and which gradients are wanted.
#[derive(Clone, Debug)]
pub(crate) struct ConvSaved {
    x: FlexTensor,
    weight: FlexTensor,
    options: ConvOptions<2>,
    track: [bool; 2],
}

/// What flex's BatchNorm keeps: its input, `gamma`, the batch statistics and ε.
#[derive(Clone, Debug)]
pub(crate) struct NormSaved {
    x: FlexTensor,
    gamma: FlexTensor,
    mean: FlexTensor,
    variance: FlexTensor,
    epsilon: f64,
}

impl Kernels for Flex {
    type ConvSaved = ConvSaved;
    type NormSaved = NormSaved;

    fn handles(x: &FlexTensor) -> bool {
        x.dtype() == DType::F32 && x.layout().shape().num_dims() == 4
    }

    fn train_conv2d(
        x: FlexTensor,
        weight: FlexTensor,
        options: &ConvOptions<2>,
        track: [bool; 2],
    ) -> (FlexTensor, ConvSaved) {
        let (x, weight) = (contiguous(x), contiguous(weight));
        let y = forward(&x, &weight, None, options);
        (y, ConvSaved { x, weight, options: options.clone(), track })
    }

    fn train_conv2d_backward(saved: ConvSaved, grad: FlexTensor) -> [Option<FlexTensor>; 2] {
        let ConvSaved { x, weight, options, track: [want_dx, want_dw] } = saved;
        let grad = contiguous(grad);
        let g = geometry(&x, &weight, &options);
        let (dx, dw) =
            cpu::conv2d_backward(slice(&x), slice(&weight), slice(&grad), &g, want_dx, want_dw);
        let [kh, kw] = g.kernel;
        [
            dx.map(|v| tensor(v, [g.n, g.c_in, g.h, g.w])),
            dw.map(|v| tensor(v, [g.c_out, g.c_in, kh, kw])),
        ]
    }

    fn train_batch_norm(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        epsilon: f64,
        _track: bool,
    ) -> ([FlexTensor; 3], NormSaved) {
        let (x, gamma, beta) = (contiguous(x), contiguous(gamma), contiguous(beta));
        let [n, c, h, w] = dims4(&x);
        let (mean, variance) = cpu::batch_norm_stats(slice(&x), n, c, h * w);
        let (g, b) = (slice(&gamma), slice(&beta));
        let scale: Vec<f32> = (0..c).map(|ch| g[ch] * inv_std(variance[ch], epsilon)).collect();
        let shift: Vec<f32> = (0..c).map(|ch| b[ch] - mean[ch] * scale[ch]).collect();
        let y = tensor(cpu::scale_shift(slice(&x), c, h * w, &scale, &shift), [n, c, h, w]);
        let (mean, variance) = (tensor(mean, [c]), tensor(variance, [c]));
        let saved = NormSaved { x, gamma, mean: mean.clone(), variance: variance.clone(), epsilon };
        ([y, mean, variance], saved)
    }

    fn train_batch_norm_backward(saved: NormSaved, grad: FlexTensor) -> [FlexTensor; 3] {
        let NormSaved { x, gamma, mean, variance, epsilon } = saved;
        let grad = contiguous(grad);
        let [n, c, h, w] = dims4(&x);
        let inv: Vec<f32> = slice(&variance).iter().map(|&v| inv_std(v, epsilon)).collect();
        let (dx, dgamma, dbeta) = cpu::batch_norm_backward(
            slice(&x),
            slice(&grad),
            [n, c, h * w],
            slice(&mean),
            &inv,
            slice(&gamma),
        );
        [tensor(dx, [n, c, h, w]), tensor(dgamma, [c]), tensor(dbeta, [c])]
    }
}

/// `1 / √(σ² + ε)`, computed as burn's BatchNorm does (f32 square root of `σ² + ε`).
fn inv_std(variance: f32, epsilon: f64) -> f32 {
    1.0 / (variance + epsilon as f32).sqrt()
}

/// Keeps freed memory in the process instead of returning it to the system, so that the large
/// tensors of a training step reuse mapped pages: glibc otherwise serves every allocation above
/// its mmap threshold (≤ 32 MiB) with fresh pages — each one a page fault and a zero fill — and
/// trims the heap's top when it is freed. On the small CNN's training step this is ≈ 14% of the
/// time (`results/bench-vs-pytorch.md`). Call once, early, from a binary; does nothing on other
/// C libraries.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        #[allow(unsafe_code)]
        // SAFETY: mallopt only changes two allocator parameters; it is called before any thread
        // of ours allocates concurrently (binaries call it first thing in `main`).
        unsafe {
            // M_TRIM_THRESHOLD = -1, M_MMAP_THRESHOLD = -3 (malloc.h)
            libc::mallopt(-1, 1 << 30);
            libc::mallopt(-3, 1 << 30);
        }
    }
}
