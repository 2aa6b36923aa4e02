//! Model-randomisation sanity checks (Adebayo et al., NeurIPS 2018) end to end: Grad-CAM's maps
//! change when the network's layers are re-drawn (`embcam_model::randomize`), and a method that
//! never looks at the network — a Sobel edge map of the input — fails the check
//! (`embcam_eval::sanity`).

use burn::tensor::{Device, Tensor};
use embcam_cam::{CamOptions, Embeddings, Method, ProxyBank, ProxySpec, Query, explain};
use embcam_cub::load::{EvalTransform, Transform, load_image};
use embcam_cub::synth::{SynthConfig, generate};
use embcam_cub::{Dataset, Silent};
use embcam_eval::Heatmap;
use embcam_eval::sanity::{MapSimilarity, RandomisationRow, compare_maps, summarize_randomisation};
use embcam_model::randomize::{cascading_steps, independent_steps, layers, randomize_layers};
use embcam_model::{BackboneKind, Net, NetConfig, Staged};

use crate::common::*;

const SIZE: usize = 64;

/// SynthCUB images at 64 px: `(ids, labels, [n, 3, 64, 64] pixels)`.
fn images(dir: &std::path::Path) -> (Vec<u32>, Vec<u32>, Vec<f32>) {
    let cfg = SynthConfig {
        classes: 4,
        images_per_class: 4,
        min_side: 64,
        max_side: 80,
        seed: 9,
        ..SynthConfig::default()
    };
    let s = generate(&dir.join("synth"), &cfg, &Silent).unwrap();
    let ds = Dataset::open(&s.root, Some(&s.segmentations)).unwrap();
    let tf = Transform::Eval(EvalTransform { size: SIZE as u32, resize: SIZE as u32, crop: false });
    let loaded: Vec<_> = ds.images.iter().map(|r| load_image(&ds, r, &tf, 0).unwrap()).collect();
    (
        loaded.iter().map(|l| l.id).collect(),
        loaded.iter().map(|l| l.class_id).collect(),
        loaded.iter().flat_map(|l| l.chw.iter().copied()).collect(),
    )
}

/// Grad-CAM at `block3` for the class-mean proxy of `trained`'s embeddings (the target stays the
/// original network's proxy under randomisation, as Adebayo et al. keep the class), upsampled to
/// the input.
fn gradcam(net: &Net, x: &Tensor<4>, ids: &[u32], labels: &[u32], proxy_net: &Net) -> Vec<Heatmap> {
    let n = ids.len();
    let z = to_vec(
        proxy_net
            .forward_from(proxy_net.forward_to(x.clone(), "block4").unwrap(), "block4")
            .unwrap(),
    );
    let d = z.len() / n;
    let bank = ProxyBank::new(
        Embeddings::new(ids.to_vec(), labels.to_vec(), d, z.clone(), "all").unwrap(),
    )
    .unwrap();
    let queries: Vec<Query> = (0..n)
        .map(|i| Query { id: ids[i], label: labels[i], embedding: &z[i * d..(i + 1) * d] })
        .collect();
    let proxies = bank.batch(&[ProxySpec::ClassMean { leave_query_out: false }], &queries).unwrap();
    let out =
        explain(net, x.clone(), &proxies, Method::GradCam, &CamOptions::new("block3"), &Silent)
            .unwrap();
    (0..n)
        .map(|b| Heatmap {
            width: SIZE as u32,
            height: SIZE as u32,
            values: out.maps.upsampled(b, 0),
        })
        .collect()
}

/// A model-independent "explanation": the Sobel gradient magnitude of the input's channel mean.
fn edges(pixels: &[f32], n: usize) -> Vec<Heatmap> {
    let plane = SIZE * SIZE;
    (0..n)
        .map(|b| {
            let grey: Vec<f32> = (0..plane)
                .map(|p| (0..3).map(|c| pixels[(b * 3 + c) * plane + p]).sum::<f32>() / 3.0)
                .collect();
            let at = |i: usize, j: usize| grey[j.min(SIZE - 1) * SIZE + i.min(SIZE - 1)];
            let values = (0..plane)
                .map(|p| {
                    let (i, j) = (p % SIZE, p / SIZE);
                    let (l, r, u, d) = (i.saturating_sub(1), i + 1, j.saturating_sub(1), j + 1);
                    let gx =
                        at(r, u) + 2.0 * at(r, j) + at(r, d) - at(l, u) - 2.0 * at(l, j) - at(l, d);
                    let gy =
                        at(l, d) + 2.0 * at(i, d) + at(r, d) - at(l, u) - 2.0 * at(i, u) - at(r, u);
                    gx.hypot(gy)
                })
                .collect();
            Heatmap { width: SIZE as u32, height: SIZE as u32, values }
        })
        .collect()
}

fn row(step: &str, original: &[Heatmap], randomised: &[Heatmap]) -> RandomisationRow {
    let sims: Vec<MapSimilarity> =
        original.iter().zip(randomised).map(|(a, b)| compare_maps(0, a, b).unwrap()).collect();
    summarize_randomisation(step, &sims).unwrap()
}

#[test]
fn randomising_every_layer_decorrelates_gradcam_and_an_edge_detector_fails() {
    let dir = tempfile::tempdir().unwrap();
    let (ids, labels, pixels) = images(dir.path());
    let n = ids.len();
    let model = NetConfig::embedding(BackboneKind::SmallCnn, 16, true)
        .with_small_cnn_widths([8, 16, 16, 32])
        .init(&Device::flex(), 1)
        .unwrap();
    let x = tensor(pixels.clone(), [n, 3, SIZE, SIZE], &device());
    let original = gradcam(&model, &x, &ids, &labels, &model);
    let edge = edges(&pixels, n);
    let names = layers(&model);
    let mut table = Vec::new();
    for step in cascading_steps(&names).into_iter().chain(independent_steps(&names)) {
        let randomised = randomize_layers(model.clone(), &step.layers, 1234).unwrap();
        let maps = gradcam(&randomised, &x, &ids, &labels, &model);
        let g = row(&step.label, &original, &maps);
        // The edge map is recomputed "for the randomised network": it does not use it.
        let e = row(&step.label, &edge, &edges(&pixels, n));
        eprintln!(
            "{:<34} grad-cam ρ {:+.3} ssim {:.3} | edges ρ {:+.3} ssim {:.3}",
            step.label, g.spearman.mean, g.ssim.mean, e.spearman.mean, e.ssim.mean
        );
        table.push((step, g, e));
    }
    // The full cascade (every layer randomised) is the last cascading step.
    let (full, g, e) = &table[names.len() - 1];
    assert_eq!(full.layers, names);
    assert!(g.passes(), "Grad-CAM's maps with every layer randomised: ρ = {}", g.spearman.mean);
    assert!(!e.passes() && e.spearman.mean == 1.0 && e.ssim.mean == 1.0);
}
