//! Networks: stage consistency for every stage of every backbone, shapes, the linear head's
//! orientation, and error messages.

use burn::tensor::Device;
use embcam_model::nets::{global_avg_pool, l2_normalize};
use embcam_model::{BackboneKind, ModelError, NetConfig, Staged};

use crate::common::{host, max_abs_diff, random4};

fn all_backbones() -> Vec<(NetConfig, usize)> {
    vec![
        (
            NetConfig::embedding(BackboneKind::SmallCnn, 16, true)
                .with_small_cnn_widths([8, 16, 16, 32]),
            32,
        ),
        (NetConfig::embedding(BackboneKind::Resnet18, 16, false), 32),
        (NetConfig::embedding(BackboneKind::Resnet34, 16, true), 32),
        (NetConfig::classifier(BackboneKind::Resnet50, 5), 32),
    ]
}

#[test]
fn forward_from_forward_to_equals_forward_for_every_stage() {
    let device = Device::flex();
    for (cfg, px) in all_backbones() {
        let net = cfg.init(&device, 7).expect("init");
        let x = random4([2, 3, px, px], 1, &device);
        let full_raw = host(net.forward_raw(x.clone()));
        let full = host(net.forward(x.clone()));
        assert_eq!(full_raw.len(), 2 * cfg.head.out_dim());
        for stage in net.stage_names() {
            let a = net.forward_to(x.clone(), stage).expect("forward_to");
            let z = net.forward_from(a, stage).expect("forward_from");
            let z_host = host(z.clone());
            let d = max_abs_diff(&z_host, &full_raw);
            assert!(d < 1e-5, "{} stage {stage}: max |Δ| = {d}", cfg.backbone);
            let y = if net.l2_normalize() { l2_normalize(z) } else { z };
            let d = max_abs_diff(&host(y), &full);
            assert!(d < 1e-5, "{} stage {stage} (normalised): max |Δ| = {d}", cfg.backbone);
        }
    }
}

#[test]
fn stage_shapes_follow_the_documented_strides() {
    let device = Device::flex();
    let cfg = NetConfig::embedding(BackboneKind::Resnet18, 8, true);
    let net = cfg.init(&device, 1).expect("init");
    let x = random4([1, 3, 64, 64], 2, &device);
    let dims: Vec<[usize; 4]> = net
        .stage_names()
        .iter()
        .map(|s| net.forward_to(x.clone(), s).expect("stage").dims())
        .collect();
    assert_eq!(dims, vec![[1, 64, 16, 16], [1, 128, 8, 8], [1, 256, 4, 4], [1, 512, 2, 2]]);

    let cfg = NetConfig::embedding(BackboneKind::SmallCnn, 8, true);
    let net = cfg.init(&device, 1).expect("init");
    assert_eq!(net.stage_names(), vec!["block1", "block2", "block3", "block4"]);
    let a = net.forward_to(x.clone(), "block4").expect("stage");
    assert_eq!(a.dims(), [1, 256, 4, 4]);
    let a = net.forward_to(x, "block1").expect("stage");
    assert_eq!(a.dims(), [1, 32, 32, 32]);
}

#[test]
fn linear_head_gives_z_equals_w_abar_plus_b() {
    let device = Device::flex();
    let net = NetConfig::embedding(BackboneKind::SmallCnn, 6, true)
        .with_small_cnn_widths([4, 8, 8, 12])
        .init(&device, 3)
        .expect("init");
    let x = random4([3, 3, 32, 32], 4, &device);
    let a = net.forward_to(x.clone(), "block4").expect("stage");
    let abar = host(global_avg_pool(a)); // [3, 12]
    let (w, b) = net.linear_head().expect("GAP + linear head");
    assert_eq!(w.dims(), [6, 12]);
    let (w, b) = (host(w), host(b));
    let z = host(net.forward_raw(x));
    for i in 0..3 {
        for r in 0..6 {
            let by_hand: f64 =
                b[r] + (0..12).map(|k| w[r * 12 + k] * abar[i * 12 + k]).sum::<f64>();
            assert!((by_hand - z[i * 6 + r]).abs() < 1e-5, "row {i} dim {r}");
        }
    }
}

#[test]
fn l2_output_has_unit_norm_and_classifier_does_not_normalise() {
    let device = Device::flex();
    let net = NetConfig::embedding(BackboneKind::SmallCnn, 8, true).init(&device, 1).expect("init");
    let y = host(net.forward(random4([2, 3, 32, 32], 5, &device)));
    for row in y.chunks(8) {
        let n: f64 = row.iter().map(|v| v * v).sum::<f64>().sqrt();
        assert!((n - 1.0).abs() < 1e-5, "norm {n}");
    }
    let clf = NetConfig::classifier(BackboneKind::SmallCnn, 3).init(&device, 1).expect("init");
    assert!(!clf.l2_normalize());
}

#[test]
fn same_seed_same_weights_other_seed_other_weights() {
    let device = Device::flex();
    let cfg = NetConfig::embedding(BackboneKind::SmallCnn, 8, false);
    let x = random4([1, 3, 32, 32], 9, &device);
    let a = host(cfg.init(&device, 11).expect("init").forward(x.clone()));
    let b = host(cfg.init(&device, 11).expect("init").forward(x.clone()));
    let c = host(cfg.init(&device, 12).expect("init").forward(x));
    assert_eq!(a, b);
    assert!(max_abs_diff(&a, &c) > 1e-4);
}

#[test]
fn unknown_stage_lists_the_stages_that_exist() {
    let device = Device::flex();
    let net = NetConfig::embedding(BackboneKind::Resnet18, 4, true).init(&device, 0).expect("init");
    let err = net.forward_to(random4([1, 3, 32, 32], 0, &device), "layer5").expect_err("no layer5");
    assert!(matches!(err, ModelError::UnknownStage { .. }));
    let msg = err.to_string();
    assert!(msg.contains("layer5") && msg.contains("layer1, layer2, layer3, layer4"), "{msg}");
}

#[test]
fn config_round_trips_through_json_and_rejects_bad_values() {
    let cfg = NetConfig::embedding(BackboneKind::Resnet50, 128, true);
    let json = serde_json::to_string(&cfg).expect("json");
    assert!(json.contains("\"resnet50\"") && json.contains("\"embedding\""), "{json}");
    let back: NetConfig = serde_json::from_str(&json).expect("parse");
    assert_eq!(back, cfg);
    assert!("resnet101".parse::<BackboneKind>().is_err());
    assert_eq!("small-cnn".parse::<BackboneKind>().expect("parse"), BackboneKind::SmallCnn);
    let bad = NetConfig::embedding(BackboneKind::SmallCnn, 0, true);
    assert!(bad.init(&Device::flex(), 0).is_err());
}

/// Every backbone after one training step with a large learning rate and two more training-mode
/// passes, so that γ, β and the running statistics are all away from their initial values.
fn trained_eval_net(cfg: &NetConfig, px: usize) -> embcam_model::Net {
    use burn::module::Module;
    use burn::optim::{AdamConfig, GradientsParams};
    use embcam_model::loss::{Mining, TripletLoss};

    let ad = Device::flex().autodiff();
    let mut net = cfg.init(&ad, 3).expect("init");
    let x = random4([8, 3, px, px], 4, &ad);
    let labels: Vec<u32> = (0..8).map(|i| i / 2).collect();
    let out = if cfg.head.l2() {
        TripletLoss::new(0.5, Mining::All)
            .forward(net.forward(x.clone()), &labels)
            .expect("loss")
            .loss
    } else {
        net.forward(x.clone()).square().mean()
    };
    let grads = GradientsParams::from_grads(out.backward(), &net);
    net = AdamConfig::new().init().step(0.1, net, grads);
    for seed in [5, 6] {
        let _ = net.forward(random4([8, 3, px, px], seed, &ad).mul_scalar(1.5).add_scalar(0.3));
    }
    net.valid()
}

#[test]
fn folded_batchnorm_gives_the_same_stages_and_outputs() {
    for (cfg, px) in all_backbones() {
        let net = trained_eval_net(&cfg, px);
        let folded = net.clone().fold_batchnorm();
        let x = random4([2, 3, px, px], 9, &Device::flex());
        // max |Δ| relative to the largest magnitude (at least 1): f32 rounding of the folded
        // weights, through up to 50 layers.
        let close = |a: &[f64], b: &[f64], what: &str| {
            let scale = a.iter().fold(1.0f64, |m, v| m.max(v.abs()));
            let d = max_abs_diff(a, b);
            assert!(d < 1e-5 * scale, "{} {what}: max |Δ| = {d}, max |a| = {scale}", cfg.backbone);
        };
        for stage in net.stage_names() {
            let a = net.forward_to(x.clone(), stage).expect("stage");
            let b = folded.forward_to(x.clone(), stage).expect("stage");
            close(&host(a.clone()), &host(b.clone()), stage);
            let za = host(net.forward_from(a, stage).expect("z"));
            let zb = host(folded.forward_from(b, stage).expect("z"));
            close(&za, &zb, &format!("from {stage}"));
        }
        close(&host(net.forward(x.clone())), &host(folded.forward(x.clone())), "output");
        // The first BatchNorm was far from the identity, so the comparison tests the folding.
        let bn = match &net.backbone {
            embcam_model::nets::Backbone::SmallCnn(m) => &m.block1.bn,
            embcam_model::nets::Backbone::ResNet(m) => &m.bn1,
        };
        let moved = |t: burn::tensor::Tensor<1>, init: f64| {
            host(t).iter().fold(0.0f64, |m, v| m.max((v - init).abs()))
        };
        assert!(moved(bn.gamma.val(), 1.0) > 0.05, "{}: γ still 1", cfg.backbone);
        assert!(moved(bn.beta.val(), 0.0) > 0.05, "{}: β still 0", cfg.backbone);
        assert!(moved(bn.running_mean.value(), 0.0) > 0.05, "{}: μ still 0", cfg.backbone);
        assert!(moved(bn.running_var.value(), 1.0) > 0.05, "{}: σ² still 1", cfg.backbone);
    }
}
