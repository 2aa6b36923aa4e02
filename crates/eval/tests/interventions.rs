//! The part-level metrics on SynthCUB's rendered interventions, with hand-built "networks" whose
//! answers are known.

use embcam_cub::load::decode_rgb;
use embcam_cub::synth::{
    Difficulty, PartLabels, SynthConfig, generate, read_interventions, render_interventions,
};
use embcam_cub::{Dataset, Silent};
use embcam_eval::{BackgroundScores, Heatmap, background_independence};

/// Labelled pixels at least 16 px (Chebyshev) from every unlabelled one: the 16 × 16 JPEG blocks
/// (8 × 8 with 2 × 2 chroma subsampling) that hold them hold bird only, so a change of
/// background cannot reach their decoded values.
fn interior(labels: &PartLabels) -> Vec<bool> {
    let (w, h) = (labels.width as i64, labels.height as i64);
    let bird = labels.bird();
    (0..w * h)
        .map(|p| {
            let (i, j) = (p % w, p / w);
            (-16..=16).all(|dj| {
                (-16..=16).all(|di| {
                    let (x, y) = (i + di, j + dj);
                    x >= 0 && y >= 0 && x < w && y < h && bird[(y * w + x) as usize]
                })
            })
        })
        .collect()
}

#[test]
fn a_network_that_ignores_the_background_has_background_independence_1() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("s");
    let cfg = SynthConfig {
        classes: 4,
        images_per_class: 3,
        min_side: 300,
        max_side: 340,
        seed: 4,
        difficulty: Difficulty::easy(),
    };
    let s = generate(&out, &cfg, &Silent).unwrap();
    render_interventions(&out, &cfg, None, &Silent).unwrap();
    let ds = Dataset::open(&s.root, None).unwrap();
    let mut scored = 0;
    for e in read_interventions(&out).unwrap() {
        let labels = PartLabels::read(&e.part_labels, e.image_id).unwrap();
        let weights = interior(&labels);
        if !weights.contains(&true) {
            continue; // a small bird: no pixel 16 px inside it
        }
        // The network: mean brightness over the bird's interior; weight 0 on the background.
        let network = |path: &std::path::Path| -> f64 {
            let img = decode_rgb(path, e.image_id).unwrap();
            let (sum, n) = img
                .pixels()
                .zip(&weights)
                .filter(|(_, w)| **w)
                .fold((0.0, 0.0), |(s, n), (p, _)| {
                    (s + p.0.iter().map(|&c| f64::from(c)).sum::<f64>(), n + 1.0)
                });
            sum / n
        };
        let original = ds.image_path(ds.image(e.image_id).unwrap());
        let scores = BackgroundScores {
            original: network(&original),
            background_swapped: network(&e.background),
            bird_removed: network(&e.no_bird),
        };
        // Its exact explanation: the weights. A uniform map puts only the bird's area share on it.
        let (w, h) = (labels.width, labels.height);
        let exact = Heatmap {
            width: w,
            height: h,
            values: weights.iter().map(|&b| f32::from(u8::from(b))).collect(),
        };
        let b = background_independence(e.image_id, &exact, &labels, scores).unwrap().unwrap();
        assert_eq!(scores.original, scores.background_swapped, "image {}", e.image_id);
        assert_ne!(scores.original, scores.bird_removed, "image {}", e.image_id);
        assert_eq!((b.model, b.map, b.gap), (1.0, 1.0, 0.0), "image {}", e.image_id);
        let uniform = Heatmap { width: w, height: h, values: vec![1.0; (w * h) as usize] };
        let u = background_independence(e.image_id, &uniform, &labels, scores).unwrap().unwrap();
        assert_eq!(u.map, u.map_chance);
        assert!(
            u.gap < -0.5,
            "image {}: the uniform map hides the bird: gap {}",
            e.image_id,
            u.gap
        );
        scored += 1;
    }
    assert!(scored >= 6, "only {scored} of 12 birds have an interior");
}
