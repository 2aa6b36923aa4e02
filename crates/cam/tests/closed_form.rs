//! The closed form `α = Wᵀ g / Z` equals autodiff, with and without L2 normalisation, at 1 and
//! 100 proxies per image, for every gradient method; it is used only where it applies.

use embcam_cam::{
    CamError, CamOptions, ClosedForm, GradientPath, Method, ProxyBatch, Space, Target, explain,
    explain_many,
};
use embcam_cub::Silent;
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::common::*;

fn random_proxies(seed: u64, b: usize, p: usize, d: usize) -> ProxyBatch {
    let mut rng = StdRng::seed_from_u64(seed);
    let vectors = (0..b).map(|_| (0..p).map(|_| randn(&mut rng, d, 1.0)).collect()).collect();
    ProxyBatch::from_vectors(
        (0..b as u32).collect(),
        (0..p).map(|i| format!("p{i}")).collect(),
        vectors,
    )
    .unwrap()
}

#[test]
fn closed_form_equals_autodiff() {
    let grad_methods = [
        Method::GradCam,
        Method::GradCamPlusPlus,
        Method::HiResCam,
        Method::XGradCam,
        Method::LayerCam,
    ];
    for l2 in [false, true] {
        let net = TinyNet::small(31, l2);
        let x = images(32, 2, 16);
        for n_p in [1, 100] {
            let proxies = random_proxies(33 + n_p as u64, 2, n_p, 5);
            let targets = [
                Target::dot(),
                Target::dot().on(Space::Normalized),
                Target::cosine(),
                Target::neg_sq_dist().on(Space::Normalized),
                Target::custom("sum-of-squares", |e, p| (e * p).square().sum_dim(1).squeeze_dim(1)),
            ];
            for target in targets {
                let mut opts = CamOptions::new("block2");
                opts.target = target.clone();
                opts.max_rows = 64; // several chunks at 100 proxies
                opts.closed_form = ClosedForm::Require;
                let cf =
                    explain_many(&net, x.clone(), &proxies, &grad_methods, &opts, &Silent).unwrap();
                opts.closed_form = ClosedForm::Off;
                let ad =
                    explain_many(&net, x.clone(), &proxies, &grad_methods, &opts, &Silent).unwrap();
                for (c, a) in cf.iter().zip(&ad) {
                    assert_eq!(c.path, GradientPath::ClosedForm);
                    assert_eq!(a.path, GradientPath::Autodiff);
                    let err = rel_err(c.maps.raw_all(), a.maps.raw_all());
                    assert!(
                        err < 1e-5,
                        "l2 {l2}, {n_p} proxies, {}, {}: relative error {err}",
                        target.name(),
                        c.maps.method
                    );
                }
            }
        }
    }
}

#[test]
fn closed_form_is_used_only_where_it_applies() {
    let net = TinyNet::small(41, true);
    let x = images(42, 2, 16);
    let proxies = random_proxies(43, 2, 3, 5);
    // Auto: closed form at the last stage, autodiff before it.
    let last =
        explain(&net, x.clone(), &proxies, Method::GradCam, &CamOptions::new("block2"), &Silent)
            .unwrap();
    assert_eq!(last.path, GradientPath::ClosedForm);
    let inner =
        explain(&net, x.clone(), &proxies, Method::GradCam, &CamOptions::new("block1"), &Silent)
            .unwrap();
    assert_eq!(inner.path, GradientPath::Autodiff);
    // Require before the last stage: an error that says why.
    let mut opts = CamOptions::new("block1");
    opts.closed_form = ClosedForm::Require;
    let err = explain(&net, x.clone(), &proxies, Method::GradCam, &opts, &Silent).unwrap_err();
    assert!(matches!(err, CamError::ClosedFormUnavailable(_)), "{err}");
    assert!(err.to_string().contains("not the last stage"), "{err}");
    // A head that misreports W: Auto falls back to autodiff (and stays right), Require refuses.
    let mut liar = net.clone();
    liar.lie_about_head = true;
    let fallback =
        explain(&liar, x.clone(), &proxies, Method::GradCam, &CamOptions::new("block2"), &Silent)
            .unwrap();
    assert_eq!(fallback.path, GradientPath::Autodiff);
    assert!(rel_err(fallback.maps.raw_all(), last.maps.raw_all()) < 1e-5);
    let mut opts = CamOptions::new("block2");
    opts.closed_form = ClosedForm::Require;
    assert!(matches!(
        explain(&liar, x, &proxies, Method::GradCam, &opts, &Silent),
        Err(CamError::ClosedFormUnavailable(_))
    ));
}
