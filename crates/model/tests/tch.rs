//! flex ↔ LibTorch parity: the same weights give the same embeddings (to 1e-4) and the same stage
//! activations on both backends, and the same training steps (through the two backends' training
//! kernels, written apart: ours on flex, ATen's on LibTorch). Compiled only with the `tch` feature.

use burn::module::Module;
use burn::optim::{GradientsParams, SgdConfig};
use burn::tensor::Device;
use embcam_model::loss::{Mining, TripletLoss};
use embcam_model::weights::{export_safetensors, load_exported};
use embcam_model::{BackboneKind, NetConfig, Staged, parse_device};

use crate::common::{host, max_abs_diff, random4};

#[test]
fn same_weights_same_embeddings_on_flex_and_libtorch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let flex = Device::flex();
    let tch = parse_device("tch-cpu").expect("tch-cpu");
    for (cfg, px) in [
        (NetConfig::embedding(BackboneKind::SmallCnn, 16, true), 64),
        (NetConfig::embedding(BackboneKind::Resnet18, 16, false), 64),
        (NetConfig::classifier(BackboneKind::Resnet50, 10), 64),
    ] {
        let net = cfg.init(&flex, 3).expect("init");
        let path = dir.path().join(format!("{}.safetensors", cfg.backbone));
        export_safetensors(&net, &path).expect("export");
        let other = load_exported(&path, &tch).expect("load on LibTorch");
        let x = random4([2, 3, px, px], 1, &flex);
        let xt = random4([2, 3, px, px], 1, &tch);
        let d = max_abs_diff(&host(net.forward(x.clone())), &host(other.forward(xt.clone())));
        assert!(d < 1e-4, "{}: output max |Δ| = {d}", cfg.backbone);
        for stage in net.stage_names() {
            let a = host(net.forward_to(x.clone(), stage).expect("stage"));
            let b = host(other.forward_to(xt.clone(), stage).expect("stage"));
            let scale = a.iter().fold(1.0f64, |m, v| m.max(v.abs()));
            let d = max_abs_diff(&a, &b) / scale;
            assert!(d < 1e-4, "{} {stage}: relative max |Δ| = {d}", cfg.backbone);
        }
    }
}

#[test]
fn libtorch_convolutions_agree_with_burn() {
    crate::kernels::convolutions_agree_with_burn(&parse_device("tch-cpu").expect("tch-cpu"));
}

#[test]
fn libtorch_batch_norms_agree_with_burn() {
    crate::kernels::batch_norms_agree_with_burn(&parse_device("tch-cpu").expect("tch-cpu"));
}

#[test]
fn libtorch_relus_agree_with_burn() {
    crate::kernels::relus_agree_with_burn(&parse_device("tch-cpu").expect("tch-cpu"));
}

/// Three SGD steps of the triplet loss from the same weights on flex and LibTorch (BatchNorm in
/// training mode: every convolution, BatchNorm and ReLU goes through the kernels) end at the same
/// network, one the steps moved. (At a learning rate ten times larger ResNet-18's steps amplify
/// float rounding ×600 per step: 1.5e-6 after one step, 0.02 after three.)
#[test]
fn training_steps_agree_on_flex_and_libtorch() {
    let dir = tempfile::tempdir().expect("tempdir");
    for cfg in [
        NetConfig::embedding(BackboneKind::SmallCnn, 16, true),
        NetConfig::embedding(BackboneKind::Resnet18, 16, true),
    ] {
        let path = dir.path().join(format!("{}.safetensors", cfg.backbone));
        export_safetensors(&cfg.init(&Device::flex(), 5).expect("init"), &path).expect("export");
        let labels: Vec<u32> = (0..8).map(|i| i / 4).collect();
        let loss = TripletLoss::new(0.2, Mining::All);
        let embed = |device: &Device, steps: u64| {
            let ad = device.clone().autodiff();
            let mut net = load_exported(&path, &ad).expect("load");
            let mut optim = SgdConfig::new().init();
            for step in 0..steps {
                let x = random4([8, 3, 48, 48], 10 + step, &ad);
                let out = loss.forward(net.forward(x), &labels).expect("loss");
                let grads = GradientsParams::from_grads(out.loss.backward(), &net);
                net = optim.step(0.005, net, grads);
            }
            host(net.valid().forward(random4([4, 3, 48, 48], 20, device)))
        };
        let (flex, tch) = (Device::flex(), parse_device("tch-cpu").expect("tch-cpu"));
        let (a, b) = (embed(&flex, 3), embed(&tch, 3));
        let d = max_abs_diff(&a, &b);
        assert!(d < 1e-5, "{}: embeddings after 3 steps, max |Δ| = {d}", cfg.backbone);
        let moved = max_abs_diff(&a, &embed(&flex, 0));
        assert!(moved > 1e-3, "{}: 3 steps moved the embeddings by only {moved}", cfg.backbone);
    }
}
