//! `∂s/∂A` from autodiff (and from the closed form) against central finite differences, in f64.
//!
//! A separate test binary: the float dtype is a per-process setting of the flex device, set here
//! to f64 before any tensor exists.

#![allow(clippy::unwrap_used)]
// Index loops mirror the formulas being checked.
#![allow(clippy::needless_range_loop)]

mod common;

use std::sync::Once;

use burn::tensor::{FloatDType, Tensor};
use embcam_cam::{
    CamOptions, ClosedForm, GradientPath, ProxyBatch, Space, Staged, Target, stage_gradients,
};
use rand::SeedableRng;
use rand::rngs::StdRng;

use common::*;

static F64: Once = Once::new();

fn setup() {
    F64.call_once(|| {
        let mut d = device();
        d.configure(FloatDType::F64).unwrap();
    });
}

fn host64<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    t.try_into_vec_as::<f64>().unwrap()
}

/// Central differences of `s(A_b) = target(head(A_b), p)` over every element of `A_b`.
fn finite_differences(
    net: &TinyNet,
    a_b: Tensor<4>,
    stage: &str,
    target: &Target,
    p: &[f32],
    eps: f64,
) -> Vec<f64> {
    let [_, k, h, w] = a_b.dims();
    let m = k * h * w;
    let base = host64(a_b);
    let mut rows = Vec::with_capacity(2 * m * m);
    for i in 0..m {
        for sign in [1.0, -1.0] {
            let mut v = base.clone();
            v[i] += sign * eps;
            rows.extend(v);
        }
    }
    let pert =
        Tensor::<4>::from_data(burn::tensor::TensorData::new(rows, [2 * m, k, h, w]), &device());
    let z = net.forward_from(pert, stage).unwrap();
    let d = p.len();
    let p_rep = tensor(p.repeat(2 * m), [2 * m, d], &device());
    let s = host64(target.score(z, p_rep));
    (0..m).map(|i| (s[2 * i] - s[2 * i + 1]) / (2.0 * eps)).collect()
}

#[test]
fn autodiff_and_closed_form_match_finite_differences() {
    setup();
    let net = TinyNet::small(91, true);
    let x = images(92, 2, 16);
    let mut rng = StdRng::seed_from_u64(93);
    let p: Vec<Vec<Vec<f32>>> = (0..2).map(|_| vec![randn(&mut rng, 5, 1.0)]).collect();
    let proxies = ProxyBatch::from_vectors(vec![1, 2], vec!["p".into()], p.clone()).unwrap();
    let targets = [
        Target::dot(),
        Target::dot().on(Space::Normalized),
        Target::cosine(),
        Target::neg_sq_dist().on(Space::Normalized),
    ];
    let mut checked = 0;
    for stage in ["block1", "block2"] {
        for target in &targets {
            let paths: &[ClosedForm] = if stage == "block2" {
                &[ClosedForm::Off, ClosedForm::Require]
            } else {
                &[ClosedForm::Off]
            };
            for &cf in paths {
                let mut opts = CamOptions::new(stage);
                opts.target = target.clone();
                opts.closed_form = cf;
                let g = stage_gradients(&net, x.clone(), &proxies, &opts).unwrap();
                assert_eq!(
                    g.path,
                    if cf == ClosedForm::Off {
                        GradientPath::Autodiff
                    } else {
                        GradientPath::ClosedForm
                    }
                );
                assert_eq!(g.grad.dtype(), burn::tensor::DType::F64, "the check runs in f64");
                let [_, k, h, w] = g.activation.dims();
                let grad = host64(g.grad.clone());
                for b in 0..2 {
                    let a_b = g.activation.clone().narrow(0, b, 1);
                    let fd = finite_differences(&net, a_b, stage, target, &p[b][0], 1e-6);
                    let ad = &grad[b * k * h * w..(b + 1) * k * h * w];
                    let scale = ad.iter().fold(0.0f64, |m, v| m.max(v.abs()));
                    let err =
                        ad.iter().zip(&fd).fold(0.0f64, |m, (a, f)| m.max((a - f).abs())) / scale;
                    assert!(scale > 0.0);
                    assert!(
                        err < 1e-6,
                        "{stage} {} {cf:?} image {b}: relative error {err:e}",
                        target.name()
                    );
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, 2 * (4 + 8));
}
