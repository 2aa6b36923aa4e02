//! The project's training kernels (`embcam_model::kernels`) against burn's own modules on the same
//! inputs: convolution outputs and gradients (input and weight), BatchNorm outputs, gradients
//! (input, γ, β) and running statistics. burn's path (`Conv2d::forward`, `BatchNorm::forward`,
//! differentiated by burn's autodiff) is an implementation written apart from ours, so agreement
//! is evidence for both. `tests/tch.rs` runs the same checks on LibTorch.

use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::MaxPool2dConfig;
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::tensor::{Device, Tensor};
use embcam_model::kernels;

use crate::common::{host, max_abs_diff, random4};

/// Largest |a − b| relative to the largest |b| (at least 1).
fn rel(a: Tensor<4>, b: Tensor<4>) -> f64 {
    let (a, b) = (host(a), host(b));
    max_abs_diff(&a, &b) / b.iter().fold(1.0f64, |m, v| m.max(v.abs()))
}

fn rel1(a: Tensor<1>, b: Tensor<1>) -> f64 {
    rel(a.reshape([1, 1, 1, -1]), b.reshape([1, 1, 1, -1]))
}

/// A bias-free convolution `[cin, cout, k, stride, pad]` with the weights of `seed` on `device`.
fn conv([cin, cout, k, stride, pad]: [usize; 5], seed: u64, device: &Device) -> Conv2d {
    let mut c = Conv2dConfig::new([cin, cout], [k, k])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
        .with_bias(false)
        .init(device);
    c.weight = Param::from_tensor(random4([cout, cin, k, k], seed, device));
    c
}

/// Every convolution geometry of the nets (3×3 stride 1 and 2, the 1×1 stride-2 shortcut, the
/// 7×7 stride-2 stem, an odd size), forward and both gradients, against burn's.
pub fn convolutions_agree_with_burn(device: &Device) {
    let ad = device.clone().autodiff();
    for (i, &(cin, cout, k, stride, pad, h)) in [
        (3, 8, 3, 2, 1, 17),
        (8, 16, 3, 1, 1, 12),
        (8, 16, 1, 2, 0, 12),
        (3, 8, 7, 2, 3, 23),
        (5, 4, 3, 1, 1, 1),
    ]
    .iter()
    .enumerate()
    {
        let seed = 10 * i as u64;
        let what = format!("conv {cin}→{cout} k{k} s{stride} p{pad} on {h}²");
        // plain device, with and without bias (a folded net's convolutions have one)
        for bias in [false, true] {
            let mut c = conv([cin, cout, k, stride, pad], seed, device);
            if bias {
                c.bias = Some(Param::from_tensor(
                    random4([1, 1, 1, cout], seed + 1, device).reshape([cout]),
                ));
            }
            let x = random4([3, cin, h, h + 1], seed + 2, device);
            let d = rel(kernels::conv2d(&c, x.clone()), c.forward(x));
            assert!(d < 1e-5, "{what} (bias {bias}) forward: relative max |Δ| = {d}");
        }
        // autodiff device: output, input gradient and weight gradient under a random output gradient
        let c = conv([cin, cout, k, stride, pad], seed, &ad);
        let x = random4([3, cin, h, h + 1], seed + 2, &ad).require_grad();
        let run = |y: Tensor<4>| {
            let g = random4(y.dims(), seed + 3, &ad);
            let grads = (y.clone() * g).sum().backward();
            let dx = x.grad(&grads).expect("input gradient");
            let dw = c.weight.grad(&grads).expect("weight gradient");
            (y, dx, dw)
        };
        let (y, dx, dw) = run(kernels::conv2d(&c, x.clone()));
        let (y0, dx0, dw0) = run(c.forward(x.clone()));
        let (y, y0) = (y.inner(), y0.inner());
        for (name, d) in [
            ("output", rel(y, y0)),
            ("input gradient", rel(dx, dx0)),
            ("weight gradient", rel(dw, dw0)),
        ] {
            assert!(d < 1e-5, "{what} {name}: relative max |Δ| = {d}");
        }
    }
}

/// BatchNorm in training mode: output, the three gradients and the running statistics after two
/// steps, against burn's; in eval mode both are burn's.
pub fn batch_norms_agree_with_burn(device: &Device) {
    let ad = device.clone().autodiff();
    for (i, &(n, c, h)) in [(4, 3, 5), (8, 16, 12), (2, 32, 1)].iter().enumerate() {
        let seed = 100 + 10 * i as u64;
        let init = |d: &Device| -> BatchNorm {
            let mut bn = BatchNormConfig::new(c).init(d);
            bn.gamma =
                Param::from_tensor(random4([1, 1, 1, c], seed, d).reshape([c]).add_scalar(1.5));
            bn.beta = Param::from_tensor(random4([1, 1, 1, c], seed + 1, d).reshape([c]));
            bn
        };
        let (ours, burns) = (init(&ad), init(&ad));
        let mut last = None;
        for step in 0..2 {
            let x = random4([n, c, h, h + 2], seed + 2 + step, &ad)
                .mul_scalar(3.0)
                .add_scalar(0.5)
                .require_grad();
            let g = random4([n, c, h, h + 2], seed + 4 + step, &ad);
            let run = |bn: &BatchNorm, y: Tensor<4>| {
                let grads = (y.clone() * g.clone()).sum().backward();
                let dx = x.grad(&grads).expect("input gradient");
                let dgamma = bn.gamma.grad(&grads).expect("γ gradient");
                let dbeta = bn.beta.grad(&grads).expect("β gradient");
                (y.inner(), dx, dgamma, dbeta)
            };
            let a = run(&ours, kernels::batch_norm(&ours, x.clone()));
            let b = run(&burns, burns.forward(x.clone()));
            let what = format!("batch norm {n}×{c}×{h}² step {step}");
            for (name, d) in [("output", rel(a.0, b.0)), ("input gradient", rel(a.1, b.1))] {
                assert!(d < 1e-4, "{what} {name}: relative max |Δ| = {d}");
            }
            for (name, d) in [("γ gradient", rel1(a.2, b.2)), ("β gradient", rel1(a.3, b.3))] {
                assert!(d < 1e-4, "{what} {name}: relative max |Δ| = {d}");
            }
            last = Some(x);
        }
        for (name, a, b) in [
            ("running mean", ours.running_mean.value(), burns.running_mean.value()),
            ("running variance", ours.running_var.value(), burns.running_var.value()),
        ] {
            let d = rel1(a, b);
            assert!(d < 1e-5, "batch norm {n}×{c}×{h}² {name}: relative max |Δ| = {d}");
        }
        // eval mode (the running statistics) on the plain device, as burn
        let x = last.expect("two steps").inner();
        let d =
            rel(kernels::batch_norm(&ours.valid(), x.clone()), burns.valid().forward(x.clone()));
        assert!(d < 1e-6, "batch norm eval: relative max |Δ| = {d}");
        // and on the autodiff device (explanations): output and input gradient
        let x = Tensor::<4>::from_data(x.into_data(), &ad).require_grad();
        let g = random4([n, c, h, h + 2], seed + 9, &ad);
        let run = |y: Tensor<4>| {
            let dx = x.grad(&(y.clone() * g.clone()).sum().backward()).expect("input gradient");
            (y.inner(), dx)
        };
        let eval = |bn: &BatchNorm| bn.valid().to_device(&ad);
        let (a, b) = (
            run(kernels::batch_norm(&eval(&ours), x.clone())),
            run(eval(&burns).forward(x.clone())),
        );
        for (name, d) in [("output", rel(a.0, b.0)), ("input gradient", rel(a.1, b.1))] {
            assert!(d < 1e-6, "batch norm eval on autodiff {name}: relative max |Δ| = {d}");
        }
    }
}

/// ReLU: output and input gradient against burn's, with an exact zero in the input (burn's and
/// LibTorch's gradient there is 0).
pub fn relus_agree_with_burn(device: &Device) {
    let ad = device.clone().autodiff();
    let x = random4([2, 3, 5, 4], 300, &ad)
        .mask_fill(random4([2, 3, 5, 4], 301, &ad).lower_elem(-0.8), 0.0);
    let x = x.detach().require_grad();
    let g = random4([2, 3, 5, 4], 302, &ad);
    let run = |y: Tensor<4>| {
        let dx = x.grad(&(y.clone() * g.clone()).sum().backward()).expect("input gradient");
        (y.inner(), dx)
    };
    let (a, b) = (run(kernels::relu(x.clone())), run(burn::tensor::activation::relu(x.clone())));
    assert_eq!(host(a.0), host(b.0), "relu output");
    assert_eq!(host(a.1), host(b.1), "relu input gradient");
}

/// Max pools: output (plain and autodiff device) and input gradient against burn's, on inputs
/// with many ties (rounded values), for the small CNN's 2×2/2 pool, ResNet's padded 3×3/2 stem
/// pool (overlapping windows), stride 1, dilation, and a "same" padding (burn's path).
pub fn max_pools_agree_with_burn(device: &Device) {
    let ad = device.clone().autodiff();
    let cases = [
        ([2, 3, 8, 8], MaxPool2dConfig::new([2, 2])),
        (
            [2, 4, 9, 7],
            MaxPool2dConfig::new([3, 3])
                .with_strides([2, 2])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)),
        ),
        (
            [1, 2, 6, 5],
            MaxPool2dConfig::new([3, 3])
                .with_strides([1, 1])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)),
        ),
        ([1, 3, 9, 9], MaxPool2dConfig::new([2, 2]).with_strides([1, 1]).with_dilation([2, 2])),
        (
            [2, 2, 7, 6],
            MaxPool2dConfig::new([3, 3]).with_strides([1, 1]).with_padding(PaddingConfig2d::Same),
        ),
    ];
    for (i, (shape, cfg)) in cases.into_iter().enumerate() {
        let pool = cfg.init();
        let seed = 400 + 10 * i as u64;
        let x = random4(shape, seed, device).mul_scalar(3.0).round(); // ties
        let what = format!("max pool {shape:?} {pool:?}");
        assert_eq!(
            host(kernels::max_pool2d(&pool, x.clone())),
            host(pool.forward(x.clone())),
            "{what}: output"
        );

        let x = Tensor::<4>::from_data(x.into_data(), &ad).require_grad();
        let y_burn = pool.forward(x.clone());
        let g = random4(y_burn.dims(), seed + 1, &ad);
        let run = |y: Tensor<4>| {
            let dx = x.grad(&(y.clone() * g.clone()).sum().backward()).expect("input gradient");
            (y.inner(), dx)
        };
        let (a, b) = (run(kernels::max_pool2d(&pool, x.clone())), run(y_burn));
        assert_eq!(host(a.0), host(b.0), "{what}: output on the autodiff device");
        let d = max_abs_diff(&host(a.1), &host(b.1));
        assert!(d < 1e-6, "{what}: input gradient |Δ| = {d}");
    }
}

#[test]
fn flex_max_pools_agree_with_burn() {
    max_pools_agree_with_burn(&Device::flex());
}

#[test]
fn flex_relus_agree_with_burn() {
    relus_agree_with_burn(&Device::flex());
}

#[test]
fn flex_convolutions_agree_with_burn() {
    convolutions_agree_with_burn(&Device::flex());
}

#[test]
fn flex_batch_norms_agree_with_burn() {
    batch_norms_agree_with_burn(&Device::flex());
}
