//! Where a network's time goes, layer by layer: milliseconds of a convolution (forward; forward +
//! backward for the input and weight gradients), a BatchNorm (training mode forward + backward;
//! eval mode forward), ReLU (forward + backward) and a 2×2 max pool (forward; forward + backward)
//! at the shapes of the small CNN's four blocks (96², batch 32) or ResNet-18's four stages (224²,
//! batch 16), through burn's modules and through the project's kernels (`embcam_model::kernels`).
//! `bench/torch_layers.py` times the same layers in PyTorch; `results/bench-vs-pytorch.md` has
//! both side by side.
//!
//! `cargo run -p embcam-model --example layers -- [flex|tch-cpu] [small-cnn|resnet18] [iters]`
//!
//! The allocator setting of the `embcam` binary ([`embcam_model::kernels::tune_allocator`]) is on
//! unless `EMBCAM_DEFAULT_MALLOC` is set.

use std::time::Instant;

use burn::module::Module;
use burn::nn::pool::MaxPool2dConfig;
use burn::nn::{BatchNormConfig, PaddingConfig2d, conv::Conv2dConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Distribution, Tensor};
use embcam_model::{kernels, parse_device};

/// Mean milliseconds of `f` over `iters` runs after one untimed run.
fn ms(iters: usize, mut f: impl FnMut()) -> f64 {
    f();
    let start = Instant::now();
    for _ in 0..iters {
        f();
    }
    start.elapsed().as_secs_f64() * 1e3 / iters as f64
}

/// Waits for `t` (reads one element back).
fn sync<const D: usize>(t: Tensor<D>) {
    let _ = t.flatten::<1>(0, D - 1).narrow(0, 0, 1).into_data();
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var_os("EMBCAM_DEFAULT_MALLOC").is_none() {
        kernels::tune_allocator();
    }
    let mut args = std::env::args().skip(1);
    let device: Device = parse_device(&args.next().unwrap_or_else(|| "flex".into()))?;
    let net = args.next().unwrap_or_else(|| "small-cnn".into());
    let iters: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(10);
    // (batch, C_in, input side, C_out, stride, max pool before)
    let layers: &[(usize, usize, usize, usize, usize, bool)] = match net.as_str() {
        "small-cnn" => &[
            (32, 3, 96, 32, 2, false),
            (32, 32, 48, 64, 1, true),
            (32, 64, 24, 128, 1, true),
            (32, 128, 12, 256, 1, true),
        ],
        "resnet18" => &[
            (16, 64, 56, 64, 1, false),
            (16, 128, 28, 128, 1, false),
            (16, 256, 14, 256, 1, false),
            (16, 512, 7, 512, 1, false),
        ],
        other => return Err(format!("unknown net {other:?}: small-cnn or resnet18").into()),
    };
    let ad = device.clone().autodiff();
    println!(
        "| layer (batch × C_in × side → C_out, stride) | path | conv forward | conv forward + backward | BatchNorm train forward + backward | BatchNorm eval forward | ReLU forward + backward | max pool forward | max pool forward + backward |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for &(b, cin, side, cout, stride, pool) in layers {
        let side_in = if pool { side / 2 } else { side };
        let side_out = side_in / stride;
        let cfg = Conv2dConfig::new([cin, cout], [3, 3])
            .with_stride([stride, stride])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .with_bias(false);
        let (conv, conv_ad) = (cfg.init(&device), cfg.init(&ad));
        let bn = BatchNormConfig::new(cout).init(&ad);
        let bn_eval = bn.valid();
        let normal = Distribution::Normal(0.0, 1.0);
        let x = Tensor::<4>::random([b, cin, side_in, side_in], normal, &device);
        let a = Tensor::<4>::random([b, cout, side_out, side_out], normal, &device);
        let p = Tensor::<4>::random([b, cin, side, side], normal, &device);
        let x_ad = Tensor::<4>::random([b, cin, side_in, side_in], normal, &ad).require_grad();
        let a_ad = Tensor::<4>::random([b, cout, side_out, side_out], normal, &ad).require_grad();
        let p_ad = Tensor::<4>::random([b, cin, side, side], normal, &ad).require_grad();
        // the gradients of Σ f(a)·a for a random a: a full-size output gradient
        let grad_of = |y: Tensor<4>, a: &Tensor<4>| {
            let g = (y * a.clone().detach()).sum().backward();
            sync(a.grad(&g).expect("gradient"));
        };
        let max_pool = MaxPool2dConfig::new([2, 2]).init();
        for ours in [false, true] {
            let pooled = |x: Tensor<4>| {
                if ours { kernels::max_pool2d(&max_pool, x) } else { max_pool.forward(x) }
            };
            let [pool_fwd, pool_fwd_bwd] = if pool {
                [
                    ms(iters, || sync(pooled(p.clone()))),
                    ms(iters, || {
                        sync(p_ad.grad(&pooled(p_ad.clone()).sum().backward()).expect("gradient"))
                    }),
                ]
                .map(|t| format!("{t:.2}"))
            } else {
                ["–".into(), "–".into()]
            };
            let fwd = ms(iters, || {
                sync(if ours { kernels::conv2d(&conv, x.clone()) } else { conv.forward(x.clone()) })
            });
            let fwd_bwd = ms(iters, || {
                let y = if ours {
                    kernels::conv2d(&conv_ad, x_ad.clone())
                } else {
                    conv_ad.forward(x_ad.clone())
                };
                let g = y.sum().backward();
                sync(x_ad.grad(&g).expect("input gradient"));
                sync(conv_ad.weight.grad(&g).expect("weight gradient"));
            });
            let bn_ms = ms(iters, || {
                let y = if ours {
                    kernels::batch_norm(&bn, a_ad.clone())
                } else {
                    bn.forward(a_ad.clone())
                };
                grad_of(y, &a_ad)
            });
            let bn_eval_ms = ms(iters, || {
                sync(if ours {
                    kernels::batch_norm(&bn_eval, a.clone())
                } else {
                    bn_eval.forward(a.clone())
                })
            });
            let relu_ms = ms(iters, || {
                grad_of(if ours { kernels::relu(a_ad.clone()) } else { relu(a_ad.clone()) }, &a_ad)
            });
            let path = if ours { "embcam kernels" } else { "burn modules" };
            println!(
                "| {b} × {cin} × {side_in}² → {cout}, s{stride} | {path} | {fwd:.2} | {fwd_bwd:.2} | {bn_ms:.2} | {bn_eval_ms:.2} | {relu_ms:.2} | {pool_fwd} | {pool_fwd_bwd} |"
            );
        }
    }
    Ok(())
}
