//! Weights in and out: torchvision names, round trips through `.safetensors` and `.bpk`, a `.pth`
//! fixture, and the error for files that do not fit.

use std::collections::BTreeMap;
use std::path::Path;

use burn::module::Module;
use burn::tensor::activation::relu;
use burn::tensor::module::{conv2d, max_pool2d};
use burn::tensor::ops::{ConvOptions, MaxPoolOptions};
use burn::tensor::{Device, Tensor, TensorData};
use embcam_model::weights::{
    ImportOptions, export_safetensors, import_weights, load_burnpack, load_exported, save_burnpack,
};
use embcam_model::{BackboneKind, ModelError, Net, NetConfig, Staged};

use crate::common::{RawTensor, host, max_abs_diff, random4, read_safetensors, write_safetensors};

/// torchvision's `resnet{18,50}().state_dict()` keys and shapes minus `num_batches_tracked`,
/// written out from torchvision/models/resnet.py (independent of the crate's code).
fn torchvision_resnet_keys(bottleneck: bool, d: usize) -> Vec<(String, Vec<usize>)> {
    let mut keys = vec![("conv1.weight".to_string(), vec![64, 3, 7, 7])];
    let bn = |prefix: &str, c: usize, keys: &mut Vec<(String, Vec<usize>)>| {
        for p in ["weight", "bias", "running_mean", "running_var"] {
            keys.push((format!("{prefix}.{p}"), vec![c]));
        }
    };
    bn("bn1", 64, &mut keys);
    let blocks = if bottleneck { [3, 4, 6, 3] } else { [2, 2, 2, 2] };
    let exp = if bottleneck { 4 } else { 1 };
    let mut inplanes = 64;
    for (i, &n) in blocks.iter().enumerate() {
        let planes = 64 << i;
        for j in 0..n {
            let p = format!("layer{}.{j}", i + 1);
            if bottleneck {
                keys.push((format!("{p}.conv1.weight"), vec![planes, inplanes, 1, 1]));
                bn(&format!("{p}.bn1"), planes, &mut keys);
                keys.push((format!("{p}.conv2.weight"), vec![planes, planes, 3, 3]));
                bn(&format!("{p}.bn2"), planes, &mut keys);
                keys.push((format!("{p}.conv3.weight"), vec![planes * 4, planes, 1, 1]));
                bn(&format!("{p}.bn3"), planes * 4, &mut keys);
            } else {
                keys.push((format!("{p}.conv1.weight"), vec![planes, inplanes, 3, 3]));
                bn(&format!("{p}.bn1"), planes, &mut keys);
                keys.push((format!("{p}.conv2.weight"), vec![planes, planes, 3, 3]));
                bn(&format!("{p}.bn2"), planes, &mut keys);
            }
            if j == 0 && (i > 0 || inplanes != planes * exp) {
                keys.push((format!("{p}.downsample.0.weight"), vec![planes * exp, inplanes, 1, 1]));
                bn(&format!("{p}.downsample.1"), planes * exp, &mut keys);
            }
            inplanes = planes * exp;
        }
    }
    keys.push(("fc.weight".into(), vec![d, 512 * exp]));
    keys.push(("fc.bias".into(), vec![d]));
    keys.sort();
    keys
}

fn file_keys(path: &Path) -> Vec<(String, Vec<usize>)> {
    read_safetensors(path).into_iter().map(|(k, t)| (k, t.shape)).collect()
}

fn outputs(net: &Net, px: usize) -> Vec<f64> {
    host(net.forward(random4([2, 3, px, px], 42, &Device::flex())))
}

#[test]
fn resnet_exports_use_torchvision_names_and_round_trip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let device = Device::flex();
    for (kind, bottleneck) in [(BackboneKind::Resnet18, false), (BackboneKind::Resnet50, true)] {
        let net = NetConfig::embedding(kind, 24, true).init(&device, 1).expect("init");
        let path = dir.path().join(format!("{kind}.safetensors"));
        let arch = export_safetensors(&net, &path).expect("export");
        let expected = torchvision_resnet_keys(bottleneck, 24);
        assert_eq!(file_keys(&path), expected, "{kind}: names and shapes are torchvision's");
        assert_eq!(arch.tensors, expected);
        assert_eq!(arch.stages, vec!["layer1", "layer2", "layer3", "layer4"]);
        if kind == BackboneKind::Resnet18 {
            // `fc.weight` is [d, K] with z = W·ā + b, the orientation of Staged::linear_head.
            let (w, _) = net.linear_head().expect("head");
            let file = read_safetensors(&path);
            let wf: Vec<f64> = file["fc.weight"].values().iter().map(|&v| v as f64).collect();
            assert_eq!(wf, host(w));
            let back = load_exported(&path, &device).expect("load exported");
            assert_eq!(back.config, net.config);
            assert!(max_abs_diff(&outputs(&back, 32), &outputs(&net, 32)) == 0.0);
        }
    }
}

#[test]
fn torchvision_style_file_with_num_batches_tracked_loads() {
    // Take an exported ResNet-18, add `num_batches_tracked` (int64 scalars) as torchvision has them,
    // reverse the tensor order, write it by hand, and load into a differently seeded net.
    let dir = tempfile::tempdir().expect("tempdir");
    let device = Device::flex();
    let cfg = NetConfig::embedding(BackboneKind::Resnet18, 8, false);
    let a = cfg.init(&device, 1).expect("init");
    let exported = dir.path().join("a.safetensors");
    export_safetensors(&a, &exported).expect("export");
    let mut tensors: Vec<(String, RawTensor)> = read_safetensors(&exported).into_iter().collect();
    let bn_names: Vec<String> = tensors
        .iter()
        .filter_map(|(k, _)| {
            k.strip_suffix(".running_mean").map(|s| format!("{s}.num_batches_tracked"))
        })
        .collect();
    for name in bn_names {
        let t =
            RawTensor { dtype: "I64".into(), shape: vec![], bytes: 7i64.to_le_bytes().to_vec() };
        tensors.push((name, t));
    }
    tensors.reverse();
    let tv = dir.path().join("torchvision.safetensors");
    write_safetensors(&tv, &tensors);

    let b = cfg.init(&device, 2).expect("init");
    assert!(max_abs_diff(&outputs(&a, 32), &outputs(&b, 32)) > 1e-3);
    let (b, summary) =
        import_weights(b, &tv, ImportOptions { include_head: true }).expect("import");
    assert_eq!(
        summary.applied, 102,
        "ResNet-18: 62 conv/fc + 40 BN running stats... as torchvision"
    );
    assert_eq!(summary.ignored.len(), 20, "the 20 num_batches_tracked");
    assert_eq!(max_abs_diff(&outputs(&a, 32), &outputs(&b, 32)), 0.0);
}

#[test]
fn imagenet_style_head_is_skipped_when_only_the_backbone_is_imported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let device = Device::flex();
    let imagenet =
        NetConfig::classifier(BackboneKind::Resnet18, 1000).init(&device, 1).expect("init");
    let path = dir.path().join("imagenet.safetensors");
    export_safetensors(&imagenet, &path).expect("export");
    let emb =
        NetConfig::embedding(BackboneKind::Resnet18, 16, true).init(&device, 2).expect("init");
    let head_before = host(emb.linear_head().expect("head").0);

    // With the head: fc is mis-shaped and the error says so.
    let err = import_weights(emb.clone(), &path, ImportOptions { include_head: true })
        .expect_err("fc mis-shaped");
    let msg = err.to_string();
    assert!(msg.contains("fc.weight") && msg.contains("mis-shaped"), "{msg}");

    // Backbone only: applies, keeps the head, and the backbone now matches.
    let (emb, summary) =
        import_weights(emb, &path, ImportOptions { include_head: false }).expect("import");
    assert!(summary.ignored.iter().any(|n| n == "fc.weight"), "{:?}", summary.ignored);
    assert_eq!(host(emb.linear_head().expect("head").0), head_before);
    let x = random4([1, 3, 32, 32], 5, &device);
    let a = host(imagenet.forward_to(x.clone(), "layer4").expect("stage"));
    let b = host(emb.forward_to(x, "layer4").expect("stage"));
    assert_eq!(max_abs_diff(&a, &b), 0.0);
}

#[test]
fn mismatched_file_lists_missing_unexpected_and_mis_shaped_tensors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let device = Device::flex();
    let cfg =
        NetConfig::embedding(BackboneKind::SmallCnn, 4, true).with_small_cnn_widths([2, 2, 2, 2]);
    let net = cfg.init(&device, 0).expect("init");
    let good = dir.path().join("good.safetensors");
    export_safetensors(&net, &good).expect("export");
    let mut tensors: Vec<(String, RawTensor)> = read_safetensors(&good).into_iter().collect();
    tensors.retain(|(k, _)| k != "block2.bn.running_var"); // missing
    tensors.push(("block9.conv.weight".into(), RawTensor::f32(vec![1], &[0.0]))); // unexpected
    for (k, t) in tensors.iter_mut() {
        if k == "fc.bias" {
            *t = RawTensor::f32(vec![5], &[0.0; 5]); // mis-shaped
        }
    }
    let bad = dir.path().join("bad.safetensors");
    write_safetensors(&bad, &tensors);
    let err =
        import_weights(net, &bad, ImportOptions { include_head: true }).expect_err("does not fit");
    let ModelError::WeightsMismatch(report) = &err else { panic!("wrong error: {err}") };
    assert_eq!(report.missing, vec!["block2.bn.running_var"]);
    assert_eq!(report.unexpected, vec!["block9.conv.weight"]);
    assert_eq!(report.mis_shaped.len(), 1);
    assert!(report.mis_shaped[0].starts_with("fc.bias"), "{:?}", report.mis_shaped);
    let msg = err.to_string();
    assert!(msg.contains("bad.safetensors") && msg.contains("block9.conv.weight"), "{msg}");
}

/// The formula of tests/fixtures/make_fixture.py.
fn fixture_values(k: usize, name: &str, n: usize) -> Vec<f32> {
    (0..n)
        .map(|j| {
            let v = ((0.37 * j as f64 + 1.3 * k as f64).sin() * 1e4).round() / 1e4;
            (if name.ends_with("running_var") { 0.5 + v.abs() } else { v }) as f32
        })
        .collect()
}

#[test]
fn pth_fixture_loads_with_torch_names_and_layouts() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/small_cnn_tiny.pth");
    let device = Device::flex();
    let cfg =
        NetConfig::embedding(BackboneKind::SmallCnn, 3, false).with_small_cnn_widths([2, 2, 2, 2]);
    let (net, summary) = import_weights(
        cfg.init(&device, 0).expect("init"),
        &fixture,
        ImportOptions { include_head: true },
    )
    .expect("import .pth");
    assert_eq!(summary.applied, 4 * 5 + 2);
    assert_eq!(summary.ignored.len(), 4, "num_batches_tracked");

    // Export and compare every tensor with the fixture's formula (names in the script's order).
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("re.safetensors");
    export_safetensors(&net, &out).expect("export");
    let file = read_safetensors(&out);
    let mut k = 0;
    let mut cin = 3;
    for i in 1..=4 {
        let mut names = vec![(format!("block{i}.conv.weight"), 2 * cin * 9)];
        names.extend(
            ["weight", "bias", "running_mean", "running_var"]
                .map(|p| (format!("block{i}.bn.{p}"), 2)),
        );
        for (name, n) in names {
            assert_eq!(file[&name].values(), fixture_values(k, &name, n), "{name}");
            k += 1;
        }
        k += 1; // num_batches_tracked
        cin = 2;
    }
    assert_eq!(file["fc.weight"].values(), fixture_values(k, "fc.weight", 6));
    assert_eq!(file["fc.bias"].values(), fixture_values(k + 1, "fc.bias", 3));
    // fc.weight is [out, in] in the file and W of z = W·ā + b in the net.
    let (w, _) = net.linear_head().expect("head");
    assert_eq!(w.dims(), [3, 2]);
    let w: Vec<f32> = host(w).iter().map(|&v| v as f32).collect();
    assert_eq!(w, fixture_values(k, "fc.weight", 6));
}

#[test]
fn burnpack_keeps_running_statistics() {
    // A training-mode forward on the autodiff device updates BatchNorm's running statistics; a
    // .bpk round trip must keep them (the eval-mode output depends on them).
    let dir = tempfile::tempdir().expect("tempdir");
    let device = Device::flex().autodiff();
    let cfg =
        NetConfig::embedding(BackboneKind::SmallCnn, 4, true).with_small_cnn_widths([4, 4, 4, 4]);
    let net = cfg.init(&device, 3).expect("init");
    let _ = net.forward(random4([4, 3, 32, 32], 8, &device)); // updates running stats
    let trained = net.valid();
    let fresh = cfg.init(&Device::flex(), 3).expect("init");
    assert!(
        max_abs_diff(&outputs(&trained, 32), &outputs(&fresh, 32)) > 1e-4,
        "running stats moved"
    );
    let path = dir.path().join("ck.bpk");
    save_burnpack(&trained, &path).expect("save");
    let back = load_burnpack(cfg.init(&Device::flex(), 9).expect("init"), &path).expect("load");
    assert_eq!(max_abs_diff(&outputs(&trained, 32), &outputs(&back, 32)), 0.0);
}

/// What [`apply_map`] reads: the exported tensors and the device.
struct Weights<'a> {
    w: &'a BTreeMap<String, RawTensor>,
    device: &'a Device,
}

impl Weights<'_> {
    fn t<const D: usize>(&self, name: &str) -> Tensor<D> {
        let r = &self.w[name];
        let shape: [usize; D] = r.shape.clone().try_into().expect("rank");
        Tensor::<D>::from_data(TensorData::new(r.values(), shape), self.device)
    }
}

fn usizes(v: &serde_json::Value) -> Vec<usize> {
    v.as_array().expect("array").iter().map(|n| n.as_u64().expect("number") as usize).collect()
}

fn two(v: &serde_json::Value) -> [usize; 2] {
    usizes(v).try_into().expect("2 values")
}

/// `[top, left, bottom, right]` → burn's symmetric `[h, w]` (these networks pad symmetrically).
fn symmetric(v: &serde_json::Value) -> [usize; 2] {
    let p = usizes(v);
    assert_eq!((p[0], p[1]), (p[2], p[3]), "asymmetric padding");
    [p[0], p[1]]
}

/// One `model.json` operation on a `[B, C, H, W]` map, with nothing but the JSON, the exported
/// tensors and burn's functional ops — no [`Net`] code — as another tool rebuilding it would.
fn apply_map(op: &serde_json::Value, x: Tensor<4>, w: &Weights<'_>) -> Tensor<4> {
    let name = op["name"].as_str().unwrap_or_default();
    match op["op"].as_str().expect("op") {
        "conv2d" => {
            let bias =
                op["bias"].as_bool().expect("bias").then(|| w.t::<1>(&format!("{name}.bias")));
            let opts = ConvOptions::new(
                two(&op["stride"]),
                symmetric(&op["padding"]),
                two(&op["dilation"]),
                op["groups"].as_u64().expect("groups") as usize,
            );
            conv2d(x, w.t::<4>(&format!("{name}.weight")), bias, opts)
        }
        "batch_norm" => {
            let c = op["channels"].as_u64().expect("channels") as usize;
            let eps = op["eps"].as_f64().expect("eps");
            let channel =
                |suffix: &str| w.t::<1>(&format!("{name}.{suffix}")).reshape([1, c, 1, 1]);
            (x - channel("running_mean")) / (channel("running_var") + eps).sqrt()
                * channel("weight")
                + channel("bias")
        }
        "relu" => relu(x),
        "max_pool2d" => {
            assert!(!op["ceil_mode"].as_bool().expect("ceil_mode"));
            let opts = MaxPoolOptions::new(two(&op["kernel"]))
                .with_stride(two(&op["stride"]))
                .with_padding(symmetric(&op["padding"]))
                .with_dilation(two(&op["dilation"]));
            max_pool2d(x, opts)
        }
        "residual" => {
            let run = |ops: &serde_json::Value, x: Tensor<4>| {
                ops.as_array().expect("ops").iter().fold(x, |x, op| apply_map(op, x, w))
            };
            let body = run(&op["body"], x.clone());
            relu(body + run(&op["shortcut"], x))
        }
        "stage" => x,
        other => panic!("not a map operation: {other}"),
    }
}

/// The whole `operations` list: maps, then pooling, the linear head and the normalisation.
fn rebuild_from_json(ops: &[serde_json::Value], x: Tensor<4>, w: &Weights<'_>) -> Tensor<2> {
    let pool = ops.iter().position(|op| op["op"] == "global_avg_pool").expect("a pooling op");
    let map = ops[..pool].iter().fold(x, |x, op| apply_map(op, x, w));
    let [b, c, _, _] = map.dims();
    let mut z = map.mean_dim(3).mean_dim(2).reshape([b, c]);
    for op in &ops[pool + 1..] {
        match op["op"].as_str().expect("op") {
            "linear" => {
                let name = op["name"].as_str().expect("name");
                let weight = w.t::<2>(&format!("{name}.weight")); // [out, in]
                z = z.matmul(weight.transpose())
                    + w.t::<1>(&format!("{name}.bias")).unsqueeze::<2>();
            }
            "l2_normalize" => {
                let norm = z.clone().square().sum_dim(1).sqrt().clamp_min(1e-12);
                z = z / norm;
            }
            other => panic!("unexpected op after pooling: {other}"),
        }
    }
    z
}

#[test]
fn model_json_alone_rebuilds_the_network() {
    // The operations list must name every exported tensor and give strides, paddings, pooling and
    // BatchNorm ε exactly: an interpreter of the JSON alone reproduces the network's output.
    let dir = tempfile::tempdir().expect("tempdir");
    let device = Device::flex();
    for (kind, px) in
        [(BackboneKind::SmallCnn, 48), (BackboneKind::Resnet18, 64), (BackboneKind::Resnet50, 64)]
    {
        let net = NetConfig::embedding(kind, 16, true).init(&device, 3).expect("init");
        let path = dir.path().join(format!("{kind}.safetensors"));
        export_safetensors(&net, &path).expect("export");
        let json: serde_json::Value = serde_json::from_slice(
            &std::fs::read(embcam_model::weights::architecture_path(&path)).expect("model.json"),
        )
        .expect("json");
        let ops = json["operations"].as_array().expect("operations").clone();
        let tensors = read_safetensors(&path);
        let w = Weights { w: &tensors, device: &device };
        let x = random4([2, 3, px, px], 9, &device);
        let rebuilt = host(rebuild_from_json(&ops, x.clone(), &w));
        let direct = host(net.forward(x));
        let diff = max_abs_diff(&rebuilt, &direct);
        assert!(diff < 1e-5, "{kind}: rebuilt from model.json differs by {diff}");
        // Every tensor the file holds is read by some operation (nothing the JSON leaves out).
        let text = serde_json::to_string(&ops).expect("json");
        for name in tensors.keys() {
            let prefix = name.rsplit_once('.').map_or(name.as_str(), |(p, _)| p);
            assert!(text.contains(&format!("\"{prefix}\"")), "{kind}: {name} has no operation");
        }
    }
}
