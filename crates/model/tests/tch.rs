//! flex ↔ LibTorch parity: the same weights give the same embeddings (to 1e-4) and the same stage
//! activations on both backends. Compiled only with the `tch` feature.

use burn::tensor::Device;
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
