//! On a small CNN trained here (triplet loss, a few Adam steps) on a generated SynthCUB, the
//! wrong-class proxy changes the map, by more than a same-class change of the proxy does.

use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::Device;
use embcam_cam::{
    CamOptions, Embeddings, Method, ProxyBank, ProxySpec, Query, Staged, WrongClassPick, explain,
    max_normalize,
};
use embcam_cub::load::{EvalTransform, Transform, load_image};
use embcam_cub::synth::{SynthConfig, generate};
use embcam_cub::{Dataset, Silent};
use embcam_model::loss::{Mining, TripletLoss};
use embcam_model::{BackboneKind, NetConfig};

use crate::common::*;

/// Mean over pixels of |a − b| between max-normalised ReLU maps.
fn map_distance(a: &[f32], b: &[f32]) -> f32 {
    let (a, b) = (max_normalize(a), max_normalize(b));
    a.iter().zip(&b).map(|(x, y)| (x - y).abs()).sum::<f32>() / a.len() as f32
}

#[test]
fn wrong_class_proxy_changes_the_map_of_a_trained_model() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = SynthConfig {
        classes: 4,
        images_per_class: 8,
        min_side: 48,
        max_side: 64,
        seed: 5,
        ..SynthConfig::default()
    };
    let summary = generate(&dir.path().join("synth"), &cfg, &Silent).unwrap();
    let ds = Dataset::open(&summary.root, Some(&summary.segmentations)).unwrap();
    let size = 64usize;
    let tf = Transform::Eval(EvalTransform { size: size as u32, resize: size as u32, crop: false });
    let loaded: Vec<_> = ds.images.iter().map(|r| load_image(&ds, r, &tf, 0).unwrap()).collect();
    let n = loaded.len();
    let ids: Vec<u32> = loaded.iter().map(|l| l.id).collect();
    let labels: Vec<u32> = loaded.iter().map(|l| l.class_id).collect();
    let pixels: Vec<f32> = loaded.iter().flat_map(|l| l.chw.iter().copied()).collect();

    // Train: full batch, triplet loss on normalised embeddings, Adam.
    let train_dev = Device::flex().autodiff();
    let net_cfg = NetConfig::embedding(BackboneKind::SmallCnn, 16, true)
        .with_small_cnn_widths([8, 16, 16, 32]);
    let mut model = net_cfg.init(&train_dev, 1).unwrap();
    let mut optim = AdamConfig::new().init();
    let loss_fn = TripletLoss::new(0.2, Mining::All);
    let x_train = tensor(pixels.clone(), [n, 3, size, size], &train_dev);
    let mut losses = Vec::new();
    for _ in 0..30 {
        let out = loss_fn.forward(model.forward(x_train.clone()), &labels).unwrap();
        losses.push(to_vec(out.loss.clone())[0]);
        let grads = GradientsParams::from_grads(out.loss.backward(), &model);
        model = optim.step(3e-3, model, grads);
    }
    assert!(losses[losses.len() - 1] < 0.7 * losses[0], "the net trained: {losses:?}");
    let model = model.valid();

    // Embeddings, proxies, maps at the last stage (closed form) and the one before (autodiff).
    let x = tensor(pixels, [n, 3, size, size], &device());
    let last = "block4";
    let z = to_vec(model.forward_from(model.forward_to(x.clone(), last).unwrap(), last).unwrap());
    let d = z.len() / n;
    let bank =
        ProxyBank::new(Embeddings::new(ids.clone(), labels.clone(), d, z.clone(), "all").unwrap())
            .unwrap();
    let queries: Vec<Query> = (0..n)
        .map(|i| Query { id: ids[i], label: labels[i], embedding: &z[i * d..(i + 1) * d] })
        .collect();
    let specs = [
        ProxySpec::ClassMean { leave_query_out: false },
        ProxySpec::ClassMean { leave_query_out: true },
        ProxySpec::WrongClass { pick: WrongClassPick::Farthest },
    ];
    let proxies = bank.batch(&specs, &queries).unwrap();
    for stage in ["block4", "block3"] {
        let out =
            explain(&model, x.clone(), &proxies, Method::GradCam, &CamOptions::new(stage), &Silent)
                .unwrap();
        let (mut same, mut wrong) = (0.0, 0.0);
        for b in 0..n {
            same += map_distance(&out.maps.relu(b, 0), &out.maps.relu(b, 1)) / n as f32;
            wrong += map_distance(&out.maps.relu(b, 0), &out.maps.relu(b, 2)) / n as f32;
        }
        eprintln!(
            "{stage}: mean |Δ| wrong class {wrong:.4}, same class (leave-one-out) {same:.4}; loss {:.3} → {:.3}",
            losses[0],
            losses[losses.len() - 1]
        );
        assert!(
            wrong > 0.05,
            "{stage}: the wrong-class map differs from the class map (mean |Δ| = {wrong})"
        );
        assert!(
            wrong > 3.0 * same,
            "{stage}: wrong class Δ = {wrong}, same class (leave-one-out) Δ = {same}"
        );
    }
}
