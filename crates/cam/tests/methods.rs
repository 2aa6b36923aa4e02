//! Every method against an independent host computation of its published formula, from the same
//! activation `A` and gradient `G` (pytorch-grad-cam's formulas).

use std::path::Path;

use embcam_cam::methods::{eigencam, gradcam_pp};
use embcam_cam::{
    CamOptions, ClosedForm, Method, ProxyBatch, Staged, Target, explain_many, read_npy,
    stage_gradients,
};
use embcam_cub::{Silent, resize_bilinear};
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::common::*;

/// Host formulas on one (image, proxy): `a`, `g` are `[K, hw]`.
fn host_map(m: Method, a: &[f32], g: &[f32], k: usize, hw: usize) -> Vec<f32> {
    let at = |c: usize, i: usize| a[c * hw + i] as f64;
    let gt = |c: usize, i: usize| g[c * hw + i] as f64;
    let weights = |f: &dyn Fn(usize) -> f64| -> Vec<f32> {
        (0..hw).map(|i| (0..k).map(|c| f(c) * at(c, i)).sum::<f64>() as f32).collect()
    };
    match m {
        Method::GradCam => weights(&|c| (0..hw).map(|i| gt(c, i)).sum::<f64>() / hw as f64),
        Method::GradCamPlusPlus => weights(&|c| {
            let sum_a: f64 = (0..hw).map(|i| at(c, i)).sum();
            (0..hw)
                .map(|i| {
                    let (g1, g2, g3) = (gt(c, i), gt(c, i).powi(2), gt(c, i).powi(3));
                    // ε = 1e-6, pytorch-grad-cam's `eps = 0.000001`.
                    let aij = if g1 != 0.0 { g2 / (2.0 * g2 + sum_a * g3 + 1e-6) } else { 0.0 };
                    aij * g1.max(0.0)
                })
                .sum()
        }),
        Method::XGradCam => weights(&|c| {
            let sum_a: f64 = (0..hw).map(|i| at(c, i)).sum();
            (0..hw).map(|i| gt(c, i) * at(c, i)).sum::<f64>() / (sum_a + 1e-7)
        }),
        Method::HiResCam => {
            (0..hw).map(|i| (0..k).map(|c| gt(c, i) * at(c, i)).sum::<f64>() as f32).collect()
        }
        Method::LayerCam => (0..hw)
            .map(|i| (0..k).map(|c| gt(c, i).max(0.0) * at(c, i)).sum::<f64>() as f32)
            .collect(),
        _ => unreachable!(),
    }
}

#[test]
fn gradient_methods_follow_their_formulas() {
    let net = TinyNet::small(111, true);
    let x = images(112, 2, 16);
    let mut rng = StdRng::seed_from_u64(113);
    let vectors: Vec<Vec<Vec<f32>>> =
        (0..2).map(|_| (0..2).map(|_| randn(&mut rng, 5, 1.0)).collect()).collect();
    let proxies =
        ProxyBatch::from_vectors(vec![1, 2], vec!["a".into(), "b".into()], vectors).unwrap();
    let methods = [
        Method::GradCam,
        Method::GradCamPlusPlus,
        Method::HiResCam,
        Method::XGradCam,
        Method::LayerCam,
    ];
    for (stage, cf) in
        [("block1", ClosedForm::Off), ("block2", ClosedForm::Off), ("block2", ClosedForm::Require)]
    {
        let mut opts = CamOptions::new(stage);
        opts.closed_form = cf;
        let outs = explain_many(&net, x.clone(), &proxies, &methods, &opts, &Silent).unwrap();
        let g = stage_gradients(&net, x.clone(), &proxies, &opts).unwrap();
        let [_, k, h, w] = g.activation.dims();
        let (a, gr) = (to_vec(g.activation), to_vec(g.grad));
        for (m, out) in methods.iter().zip(&outs) {
            for b in 0..2 {
                for p in 0..2 {
                    let a_b = &a[b * k * h * w..(b + 1) * k * h * w];
                    let g_bp = &gr[(b * 2 + p) * k * h * w..(b * 2 + p + 1) * k * h * w];
                    let expect = host_map(*m, a_b, g_bp, k, h * w);
                    let err = rel_err(out.maps.raw(b, p), &expect);
                    assert!(err < 1e-5, "{stage} {cf:?} {}: {err}", m.name());
                }
            }
        }
    }
}

/// A `.npy` array written by `tests/fixtures/gradcam_pp.py`: its shape and values.
fn gradcam_pp_fixture(name: &str) -> (Vec<usize>, Vec<f32>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    read_npy(&dir.join(format!("gradcam_pp_{name}.npy"))).unwrap()
}

#[test]
fn gradcam_pp_matches_pytorch_grad_cam() {
    // Inputs and expected weights and map from pytorch-grad-cam's own GradCAMPlusPlus formula
    // (numpy, float32), made by tests/fixtures/gradcam_pp.py. The gradients are small (G ≈ 1e-3,
    // G² ≈ 1e-6, as for embedding targets), so ε matters: with 1e-7 instead of the library's 1e-6
    // some weight moves by 44% and the map by 4% of its largest value (the script checks it).
    let (shape, a) = gradcam_pp_fixture("activations");
    let &[n, k, h, w] = &shape[..] else { panic!("activations have shape {shape:?}") };
    let (g_shape, g) = gradcam_pp_fixture("grads");
    let (w_shape, expect_w) = gradcam_pp_fixture("weights");
    let (cam_shape, expect_cam) = gradcam_pp_fixture("cam");
    assert_eq!((g_shape, w_shape, cam_shape), (shape.clone(), vec![n, k], vec![n, h, w]));
    let (a, g) = (tensor(a, [n, k, h, w], &device()), tensor(g, [n, k, h, w], &device()));
    let got_w = to_vec(gradcam_pp::weights(a.clone(), g.clone()));
    for (i, (got, expect)) in got_w.iter().zip(&expect_w).enumerate() {
        // Each weight to 1e-4 of itself (f32 sums in another order differ by ~1e-7).
        assert!((got - expect).abs() <= 1e-4 * expect.abs(), "w[{i}] = {got}, expected {expect}");
    }
    let err = rel_err(&to_vec(gradcam_pp::combine(a, g)), &expect_cam);
    assert!(err < 1e-4, "map: max |Δ| = {err} of the largest value");
}

#[test]
fn score_cam_and_eigen_cam_follow_their_formulas() {
    let net = TinyNet::small(121, false);
    let (b, s) = (2, 16);
    let x = images(122, b, s);
    let mut rng = StdRng::seed_from_u64(123);
    let vectors: Vec<Vec<Vec<f32>>> =
        (0..b).map(|_| (0..2).map(|_| randn(&mut rng, 5, 1.0)).collect()).collect();
    let proxies =
        ProxyBatch::from_vectors(vec![1, 2], vec!["a".into(), "b".into()], vectors.clone())
            .unwrap();
    let mut opts = CamOptions::new("block2");
    opts.target = Target::cosine();
    opts.score_cam_batch = 3;
    let outs = explain_many(
        &net,
        x.clone(),
        &proxies,
        &[Method::ScoreCam, Method::EigenCam],
        &opts,
        &Silent,
    )
    .unwrap();
    let a_all = net.forward_to(x.clone(), "block2").unwrap();
    let [_, k, h, w] = a_all.dims();
    let a = to_vec(a_all);
    let xs = to_vec(x);
    for bi in 0..b {
        let a_b = &a[bi * k * h * w..(bi + 1) * k * h * w];
        let x_b = &xs[bi * 3 * s * s..(bi + 1) * 3 * s * s];
        // Score-CAM, one masked image at a time.
        let mut scores = vec![vec![0.0f64; k]; 2];
        for c in 0..k {
            let up = resize_bilinear(
                &a_b[c * h * w..(c + 1) * h * w],
                w as u32,
                h as u32,
                s as u32,
                s as u32,
            );
            let (lo, hi) = up.iter().fold((f32::MAX, f32::MIN), |(l, u), &v| (l.min(v), u.max(v)));
            let mask: Vec<f32> = up
                .iter()
                .map(|&v| if hi > lo { (v - lo) / (hi - lo + 1e-8) } else { 0.0 })
                .collect();
            let masked: Vec<f32> = (0..3 * s * s).map(|i| x_b[i] * mask[i % (s * s)]).collect();
            let z = to_vec(
                net.forward_from(
                    net.forward_to(tensor(masked, [1, 3, s, s], &device()), "block2").unwrap(),
                    "block2",
                )
                .unwrap(),
            );
            for p in 0..2 {
                let pv = &vectors[bi][p];
                let dot: f64 = z.iter().zip(pv).map(|(a, b)| (a * b) as f64).sum();
                let nz = z.iter().map(|v| (v * v) as f64).sum::<f64>().sqrt();
                let np = pv.iter().map(|v| (v * v) as f64).sum::<f64>().sqrt();
                scores[p][c] = dot / (nz * np);
            }
        }
        for p in 0..2 {
            let mx = scores[p].iter().copied().fold(f64::MIN, f64::max);
            let e: Vec<f64> = scores[p].iter().map(|v| (v - mx).exp()).collect();
            let tot: f64 = e.iter().sum();
            let expect: Vec<f32> = (0..h * w)
                .map(|i| (0..k).map(|c| e[c] / tot * a_b[c * h * w + i] as f64).sum::<f64>() as f32)
                .collect();
            let err = rel_err(outs[0].maps.raw(bi, p), &expect);
            assert!(err < 1e-5, "scorecam image {bi} proxy {p}: {err}");
        }
        // Eigen-CAM: target-free, the same map in every column.
        let proj = eigencam::projection(a_b, k, h * w);
        for p in 0..2 {
            assert_eq!(outs[1].maps.raw(bi, p), proj.as_slice());
        }
    }
}
