//! Gradients against central finite differences, in f64.
//!
//! A separate test binary: the float dtype is configured once per device and process, before any
//! tensor exists, so it cannot share a process with the f32 tests.

use std::sync::OnceLock;

use burn::tensor::{DType, Device, FloatDType, Tensor, TensorData};
use embcam_model::loss::{Mining, TripletLoss, cross_entropy};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn device() -> Device {
    static DEVICE: OnceLock<Device> = OnceLock::new();
    DEVICE
        .get_or_init(|| {
            let mut d = Device::flex();
            d.configure(FloatDType::F64).expect("configure f64 before any tensor");
            d
        })
        .clone()
}

fn tensor(v: &[f64], shape: [usize; 2], device: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(v.to_vec(), shape), device)
}

/// Max relative error between the autodiff gradient of `f` at `x0` and central differences.
fn check_gradient(f: &dyn Fn(Tensor<2>) -> Tensor<1>, x0: &[f64], shape: [usize; 2]) -> f64 {
    let plain = device();
    let ad = plain.clone().autodiff();
    let x = tensor(x0, shape, &ad).require_grad();
    assert_eq!(x.dtype(), DType::F64);
    let grads = f(x.clone()).backward();
    let g: Vec<f64> = x.grad(&grads).expect("grad").try_into_vec_as::<f64>().expect("read");
    let eps = 1e-6;
    let mut worst: f64 = 0.0;
    for i in 0..x0.len() {
        let mut xp = x0.to_vec();
        let mut xm = x0.to_vec();
        xp[i] += eps;
        xm[i] -= eps;
        let fp = f(tensor(&xp, shape, &plain)).into_scalar::<f64>();
        let fm = f(tensor(&xm, shape, &plain)).into_scalar::<f64>();
        let fd = (fp - fm) / (2.0 * eps);
        let err = (fd - g[i]).abs() / (fd.abs().max(g[i].abs()).max(1e-3));
        worst = worst.max(err);
    }
    worst
}

#[test]
fn triplet_loss_gradients_match_finite_differences() {
    let mut rng = StdRng::seed_from_u64(1);
    let shape = [8, 5];
    let labels = [0, 0, 1, 1, 2, 2, 3, 3];
    let x0: Vec<f64> = (0..40).map(|_| rng.random_range(-1.0..1.0)).collect();
    for mining in [Mining::All, Mining::SemiHard, Mining::BatchHard] {
        for normalize in [false, true] {
            let loss = TripletLoss { margin: 0.3, mining, normalize };
            let f = |x: Tensor<2>| {
                let out = loss.forward(x, &labels).expect("loss");
                assert!(out.stats.active > 0, "{mining} normalize={normalize}: no active triplet");
                out.loss
            };
            let err = check_gradient(&f, &x0, shape);
            assert!(err < 1e-6, "{mining} normalize={normalize}: relative error {err}");
        }
    }
}

#[test]
fn cross_entropy_gradient_matches_finite_differences() {
    let mut rng = StdRng::seed_from_u64(2);
    let x0: Vec<f64> = (0..12).map(|_| rng.random_range(-2.0..2.0)).collect();
    let f = |x: Tensor<2>| cross_entropy(x, &[0, 3, 1]).expect("ce");
    let err = check_gradient(&f, &x0, [3, 4]);
    assert!(err < 1e-7, "relative error {err}");
}
