//! The single point proxy (docs/method.md): on `z` the map is the same detached or not (after max
//! normalisation); on `y = z/‖z‖` it is zero up to rounding, and the result carries a warning.
//! A zero gradient gives a zero map, never NaN.

use embcam_cam::{
    CamOptions, CamWarning, ClosedForm, Embeddings, Method, ProxyBank, ProxySpec, Query, Space,
    Target, explain, max_normalize,
};
use embcam_cub::Silent;

use crate::common::*;

fn single_point_batch(net: &TinyNet, x: burn::tensor::Tensor<4>) -> embcam_cam::ProxyBatch {
    let z = to_vec(
        embcam_cam::Target::dot().embed(
            embcam_cam::Staged::forward_from(
                net,
                embcam_cam::Staged::forward_to(net, x, "block2").unwrap(),
                "block2",
            )
            .unwrap(),
        ),
    );
    let table = Embeddings::new(vec![1, 2], vec![0, 0], 5, z.clone(), "eval").unwrap();
    let bank = ProxyBank::new(table).unwrap();
    let q: Vec<Query> = (0..2)
        .map(|i| Query { id: i as u32 + 1, label: 0, embedding: &z[i * 5..(i + 1) * 5] })
        .collect();
    bank.batch(&[ProxySpec::SinglePoint], &q).unwrap()
}

#[test]
fn single_point_on_pre_norm_is_the_same_detached_or_not() {
    let net = TinyNet::small(61, true);
    let x = images(62, 2, 16);
    let proxies = single_point_batch(&net, x.clone());
    for stage in ["block1", "block2"] {
        let detached =
            explain(&net, x.clone(), &proxies, Method::GradCam, &CamOptions::new(stage), &Silent)
                .unwrap();
        assert!(
            detached
                .warnings
                .iter()
                .all(|w| !matches!(w, CamWarning::SinglePointOnNormalized { .. }))
        );
        // Not detached: s = z·z, differentiated through both factors (∂s/∂z = 2z).
        let mut opts = CamOptions::new(stage);
        opts.target = Target::custom("self-dot", |e, _p| (e.clone() * e).sum_dim(1).squeeze_dim(1));
        let attached = explain(&net, x.clone(), &proxies, Method::GradCam, &opts, &Silent).unwrap();
        for b in 0..2 {
            let (d, a) = (
                max_normalize(&detached.maps.relu(b, 0)),
                max_normalize(&attached.maps.relu(b, 0)),
            );
            assert!(d.iter().any(|&v| v > 0.0), "a non-trivial map");
            assert!(rel_err(&d, &a) < 1e-5, "{stage} image {b}");
        }
    }
}

#[test]
fn single_point_on_normalized_is_zero_and_warned() {
    let net = TinyNet::small(71, true);
    let x = images(72, 2, 16);
    let proxies = single_point_batch(&net, x.clone());
    for stage in ["block1", "block2"] {
        for cf in [ClosedForm::Auto, ClosedForm::Off] {
            let mut opts = CamOptions::new(stage);
            opts.closed_form = cf;
            let reference =
                explain(&net, x.clone(), &proxies, Method::GradCam, &opts, &Silent).unwrap();
            opts.target = Target::dot().on(Space::Normalized);
            let out = explain(&net, x.clone(), &proxies, Method::GradCam, &opts, &Silent).unwrap();
            let scale = reference.maps.raw_all().iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let size = out.maps.raw_all().iter().fold(0.0f32, |m, v| m.max(v.abs()));
            assert!(size <= 1e-5 * scale, "{stage} {cf:?}: |map| {size} vs pre-norm {scale}");
            assert!(
                out.warnings
                    .iter()
                    .any(|w| matches!(w, CamWarning::SinglePointOnNormalized { .. })),
                "{:?}",
                out.warnings
            );
            assert!(!out.warnings[0].to_string().is_empty());
        }
    }
}

#[test]
fn zero_gradient_gives_a_zero_map_not_nan() {
    let net = TinyNet::small(81, false);
    let x = images(82, 2, 16);
    let proxies = single_point_batch(&net, x.clone());
    for (stage, cf) in
        [("block1", ClosedForm::Off), ("block2", ClosedForm::Off), ("block2", ClosedForm::Require)]
    {
        let mut opts = CamOptions::new(stage);
        opts.closed_form = cf;
        // A score that does not depend on the embedding.
        opts.target = Target::custom("zero", |e, _p| e.sum_dim(1).squeeze_dim(1).mul_scalar(0.0));
        for m in [
            Method::GradCam,
            Method::GradCamPlusPlus,
            Method::XGradCam,
            Method::HiResCam,
            Method::LayerCam,
        ] {
            let out = explain(&net, x.clone(), &proxies, m, &opts, &Silent).unwrap();
            assert!(out.maps.raw_all().iter().all(|&v| v == 0.0), "{stage} {}", m.name());
            assert!(
                out.warnings.iter().any(|w| matches!(w, CamWarning::ZeroMaps { count: 2, .. }))
            );
        }
    }
    // A proxy of zeros: the gradient is exactly zero too.
    let zeros = embcam_cam::ProxyBatch::from_vectors(
        vec![1, 2],
        vec!["zero".into()],
        vec![vec![vec![0.0; 5]]; 2],
    )
    .unwrap();
    for m in [Method::GradCam, Method::GradCamPlusPlus, Method::XGradCam, Method::ScoreCam] {
        let out = explain(&net, x.clone(), &zeros, m, &CamOptions::new("block1"), &Silent).unwrap();
        assert!(out.maps.raw_all().iter().all(|v| v.is_finite()), "{}", m.name());
    }
}
