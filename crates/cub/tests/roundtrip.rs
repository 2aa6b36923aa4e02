//! Generate → read: every record consistent with the pixels.

use std::sync::Arc;

use embcam_cub::load::{BatchLoader, EvalTransform, TrainTransform, Transform, load_image};
use embcam_cub::{Dataset, SplitKind, Subset};

use crate::fixture::Fixture;

#[test]
fn every_record_matches_its_files() {
    let fx = Fixture::new(4, 6, 3);
    let ds = Dataset::open(&fx.root(), Some(&fx.seg())).unwrap();
    assert_eq!(ds.classes.len(), 4);
    assert_eq!(ds.images.len(), 24);
    assert!(ds.classes.iter().all(|c| c.name.starts_with(&format!("{:03}.", c.id))));
    assert_eq!(ds.parts.len(), 15);
    for rec in &ds.images {
        assert!(ds.image_path(rec).is_file());
        let mask = ds.read_mask(rec).unwrap().expect("segmentations given");
        assert!(rec.bbox.inside(mask.width, mask.height, 0.0), "box outside, id {}", rec.id);
        // The box is the tight box of the mask at CUB's threshold.
        assert_eq!(mask.foreground_box(128), Some(rec.bbox), "id {}", rec.id);
        // Every visible part lies in the image; invisible parts sit at (0, 0) as in CUB.
        assert_eq!(rec.parts.len(), 15);
        for p in &rec.parts {
            if p.visible {
                assert!(
                    p.x >= 0.0 && p.y >= 0.0 && p.x < mask.width as f32 && p.y < mask.height as f32
                );
            } else {
                assert_eq!((p.x, p.y), (0.0, 0.0));
            }
        }
        // Most visible parts lie on the bird (the eye ring, beak tip and legs can be thin).
        let on_bird = rec
            .parts
            .iter()
            .filter(|p| p.visible)
            .filter(|p| mask.soft[(p.y as u32 * mask.width + p.x as u32) as usize] > 0)
            .count();
        let visible = rec.parts.iter().filter(|p| p.visible).count();
        assert!(
            on_bird * 10 >= visible * 7,
            "id {}: {on_bird}/{visible} parts on the bird",
            rec.id
        );
    }
}

#[test]
fn splits_are_disjoint_and_deterministic() {
    let fx = Fixture::new(5, 4, 1);
    let ds = Dataset::open(&fx.root(), None).unwrap();
    let s = ds.split(SplitKind::ClassDisjoint, &Subset::default()).unwrap();
    // 5 classes: 2 train, 3 eval.
    assert_eq!(s.train_classes, vec![1, 2]);
    assert_eq!(s.eval_classes, vec![3, 4, 5]);
    assert_eq!((s.train.len(), s.eval.len()), (8, 12));
    let o = ds.split(SplitKind::Official, &Subset::default()).unwrap();
    assert_eq!(o.train.len() + o.eval.len(), 20);
    assert!(o.train.iter().all(|&k| ds.images[k].is_train));
    assert!(o.eval.iter().all(|&k| !ds.images[k].is_train));
    let sub = Subset { max_classes: Some(4), max_per_class: Some(3) };
    let s2 = ds.split(SplitKind::ClassDisjoint, &sub).unwrap();
    assert_eq!((s2.train_classes.clone(), s2.eval_classes.clone()), (vec![1, 2], vec![3, 4]));
    // The lowest ids of each class are kept.
    let ids: Vec<u32> = s2.train.iter().map(|&k| ds.images[k].id).collect();
    assert_eq!(ids, vec![1, 2, 3, 5, 6, 7]);
    assert_eq!(s2, ds.split(SplitKind::ClassDisjoint, &sub).unwrap());
    let empty = Subset { max_classes: Some(1), max_per_class: None };
    assert!(
        ds.split(SplitKind::ClassDisjoint, &empty).unwrap_err().to_string().contains("both need")
    );
}

#[test]
fn loaded_images_carry_exact_geometry() {
    let fx = Fixture::new(2, 4, 9);
    let ds = Dataset::open(&fx.root(), Some(&fx.seg())).unwrap();
    let transforms = [
        Transform::Eval(EvalTransform::center_crop(48)),
        Transform::Eval(EvalTransform::squash(48)),
        Transform::Train(TrainTransform::new(48, 5)),
    ];
    for t in &transforms {
        for rec in &ds.images {
            let img = load_image(&ds, rec, t, 2).unwrap();
            assert_eq!(img.chw.len(), 3 * 48 * 48);
            let g = img.geometry;
            let mask = ds.read_mask(rec).unwrap().unwrap();
            assert_eq!((g.orig_w, g.orig_h), (mask.width, mask.height));
            // input → original → input for the input's corners and centre.
            for (u, v) in [(0.0, 0.0), (48.0, 48.0), (24.0, 11.5)] {
                let (x, y) = g.to_original(u, v);
                let (u2, v2) = g.to_input(x, y);
                assert!((u - u2).abs() < 1e-3 && (v - v2).abs() < 1e-3);
            }
            // The mask pushed through the same crop/flip/resize as the image has its foreground
            // centroid where the geometry sends the original centroid (a wrong offset, scale or
            // flip moves it by many pixels).
            let (region, flip) = t.plan(mask.width, mask.height, rec.id, 2);
            let rgb = image::DynamicImage::ImageLuma8(
                image::GrayImage::from_raw(mask.width, mask.height, mask.soft.clone()).unwrap(),
            )
            .into_rgb8();
            let (moved, g2) = embcam_cub::load::apply(&rgb, region, flip, 48);
            assert_eq!(g2, g);
            let mut inside = (0.0f64, 0.0f64, 0.0f64);
            for (k, &v) in mask.soft.iter().enumerate() {
                let (x, y) =
                    ((k as u32 % mask.width) as f32 + 0.5, (k as u32 / mask.width) as f32 + 0.5);
                let (u, v2) = g.to_input(x, y);
                if (0.0..48.0).contains(&u) && (0.0..48.0).contains(&v2) {
                    inside.0 += v as f64;
                    inside.1 += v as f64 * u as f64;
                    inside.2 += v as f64 * v2 as f64;
                }
            }
            let mut there = (0.0f64, 0.0f64, 0.0f64);
            for (u, v, p) in moved.enumerate_pixels() {
                let w = p[0] as f64;
                there.0 += w;
                there.1 += w * (u as f64 + 0.5);
                there.2 += w * (v as f64 + 0.5);
            }
            if inside.0 > 255.0 * 20.0 * (mask.width * mask.height) as f64 / (48.0 * 48.0) {
                let a = (inside.1 / inside.0, inside.2 / inside.0);
                let b = (there.1 / there.0, there.2 / there.0);
                assert!(
                    (a.0 - b.0).abs() < 1.5 && (a.1 - b.1).abs() < 1.5,
                    "id {} {t:?}: centroid {a:?} vs {b:?}",
                    rec.id
                );
            }
        }
    }
}

#[test]
fn batches_come_in_order_with_prefetch() {
    let fx = Fixture::new(2, 5, 4);
    let ds = Arc::new(Dataset::open(&fx.root(), None).unwrap());
    let idx: Vec<usize> = (0..ds.images.len()).collect();
    let t = Transform::Eval(EvalTransform::squash(32));
    let batches: Vec<_> =
        BatchLoader::sequential(ds.clone(), &idx, 4, t).map(Result::unwrap).collect();
    assert_eq!(batches.iter().map(|b| b.len()).collect::<Vec<_>>(), vec![4, 4, 2]);
    let ids: Vec<u32> = batches.iter().flat_map(|b| b.ids.clone()).collect();
    assert_eq!(ids, (1..=10).collect::<Vec<_>>());
    assert_eq!(batches[0].pixels.len(), 4 * 3 * 32 * 32);
    // Same pixels as loading one by one.
    let single = load_image(&ds, &ds.images[5], &t, 0).unwrap();
    assert_eq!(&batches[1].pixels[3 * 32 * 32..2 * 3 * 32 * 32], &single.chw[..]);
}
