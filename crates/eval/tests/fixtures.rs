//! Seeded synthetic images: smooth, plateau and noise maps; elliptical objects with soft masks,
//! boxes and parts.

use embcam_cub::{BBox, Mask, PartLoc, resize_bilinear};
use embcam_eval::{Heatmap, ImageTruth};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// A CAM-like map: a coarse `c × c` grid of `max(U[0,1) − floor, 0)`, bilinearly upsampled.
pub fn smooth_map(rng: &mut StdRng, w: u32, h: u32, c: u32, floor: f32) -> Heatmap {
    let coarse: Vec<f32> = (0..c * c).map(|_| (rng.random::<f32>() - floor).max(0.0)).collect();
    Heatmap { width: w, height: h, values: resize_bilinear(&coarse, c, c, w, h) }
}

/// A map with large plateaus and exact ties: values in {0, 1, 2, 3}.
pub fn plateau_map(rng: &mut StdRng, w: u32, h: u32) -> Heatmap {
    let m = smooth_map(rng, w, h, 4, 0.0);
    let values = m.values.iter().map(|v| (v * 4.0).floor().min(3.0)).collect();
    Heatmap { values, ..m }
}

/// I.i.d. noise: many small components.
pub fn noise_map(rng: &mut StdRng, w: u32, h: u32) -> Heatmap {
    Heatmap { width: w, height: h, values: (0..w * h).map(|_| rng.random::<f32>()).collect() }
}

/// An elliptical object: soft mask 255 inside, 100 on a one-pixel rim (background at the default
/// threshold); the box is the mask's box, jittered by up to a pixel; three visible parts and one
/// invisible.
pub fn ellipse_truth(rng: &mut StdRng, id: u32, w: u32, h: u32) -> ImageTruth {
    let (fw, fh) = (w as f32, h as f32);
    let rx = rng.random_range(0.1 * fw..0.35 * fw);
    let ry = rng.random_range(0.1 * fh..0.35 * fh);
    let cx = rng.random_range(rx..fw - rx);
    let cy = rng.random_range(ry..fh - ry);
    ellipse(id, w, h, (cx, cy), (rx, ry), rng.random_range(-1.0..1.0))
}

/// The object of [`ellipse_truth`] at a given centre and radii.
pub fn ellipse(id: u32, w: u32, h: u32, c: (f32, f32), r: (f32, f32), jitter: f32) -> ImageTruth {
    let mut soft = vec![0u8; (w * h) as usize];
    for j in 0..h {
        for i in 0..w {
            let dx = (i as f32 + 0.5 - c.0) / r.0;
            let dy = (j as f32 + 0.5 - c.1) / r.1;
            let d = (dx * dx + dy * dy).sqrt();
            soft[(j * w + i) as usize] = if d <= 1.0 {
                255
            } else if d <= 1.0 + 1.5 / r.0.min(r.1) {
                100
            } else {
                0
            };
        }
    }
    let mask = Mask { width: w, height: h, soft };
    let b = mask.foreground_box(128).unwrap_or(BBox { x: 0.0, y: 0.0, w: 1.0, h: 1.0 });
    let bbox = BBox { x: b.x + jitter, y: b.y - jitter, w: b.w, h: b.h };
    let part = |part_id, x, y, visible| PartLoc { part_id, x, y, visible };
    let parts = vec![
        part(2, c.0 + 0.8 * r.0, c.1, true),
        part(14, c.0 - 0.8 * r.0, c.1, true),
        part(5, c.0, c.1 - 0.6 * r.1, true),
        part(9, 0.0, 0.0, false),
    ];
    ImageTruth {
        id,
        width: w,
        height: h,
        bbox,
        mask: Some(mask),
        parts,
        discriminative_part: Some(2),
    }
}
