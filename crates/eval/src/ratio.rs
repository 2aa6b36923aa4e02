//! Mean heatmap ratio: the share of the heatmap's mass inside the box or the mask, beside the
//! region's share of the image (what a uniform map scores).

use std::ops::Range;

use embcam_cub::BBox;

/// The heatmap ratio of one region and the area ratio a uniform map would score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ratio {
    /// `Σ_{p∈R} H(p) / Σ_p H(p)`; for an all-zero map, the area ratio (scored as uniform).
    pub ratio: f64,
    /// `|R| / (width · height)`.
    pub area_ratio: f64,
}

/// The columns and rows of the pixels whose centre lies inside `bbox` (as
/// [`BBox::contains_pixel`]); the box's pixels are exactly their product.
pub fn box_pixels(bbox: &BBox, width: u32, height: u32) -> (Range<u32>, Range<u32>) {
    let span = |n: u32, inside: &dyn Fn(u32) -> bool| {
        let start = (0..n).find(|&i| inside(i)).unwrap_or(n);
        let end = (start..n).find(|&i| !inside(i)).unwrap_or(n);
        start..end
    };
    let cols = span(width, &|i| {
        let c = i as f32 + 0.5;
        c >= bbox.x && c < bbox.x1()
    });
    let rows = span(height, &|j| {
        let c = j as f32 + 0.5;
        c >= bbox.y && c < bbox.y1()
    });
    (cols, rows)
}

/// Mean heatmap ratio against a box (the EmbeddingCAM paper's metric; a pixel is in the box when
/// its centre is):
/// `Σ_{p∈B} H(p) / Σ_p H(p)`. `values` is row-major `width × height`.
pub fn box_ratio(values: &[f32], width: u32, height: u32, bbox: &BBox) -> Ratio {
    let (cols, rows) = box_pixels(bbox, width, height);
    let total = sum(values);
    let w = width as usize;
    let inside: f64 = rows
        .clone()
        .map(|j| {
            sum(&values[j as usize * w + cols.start as usize..j as usize * w + cols.end as usize])
        })
        .sum();
    let area = cols.len() as f64 * rows.len() as f64;
    finish(inside, total, area, f64::from(width) * f64::from(height))
}

/// Mean heatmap ratio against a binary mask: `Σ_{p∈M} H(p) / Σ_p H(p)`.
pub fn mask_ratio(values: &[f32], foreground: &[bool]) -> Ratio {
    // Eight independent accumulators, as in `sum`.
    let (mut inside, mut area) = ([0.0f64; 8], [0usize; 8]);
    let (hs, fs) = (values.chunks_exact(8), foreground.chunks_exact(8));
    let (h_tail, f_tail) = (hs.remainder(), fs.remainder());
    for (h, f) in hs.zip(fs) {
        for k in 0..8 {
            inside[k] += if f[k] { f64::from(h[k]) } else { 0.0 };
            area[k] += usize::from(f[k]);
        }
    }
    let mut inside = inside.iter().sum::<f64>();
    let mut area = area.iter().sum::<usize>();
    for (&h, &f) in h_tail.iter().zip(f_tail) {
        inside += if f { f64::from(h) } else { 0.0 };
        area += usize::from(f);
    }
    finish(inside, sum(values), area as f64, values.len() as f64)
}

/// `Σ x` in `f64`, with eight independent accumulators (vectorises; deterministic).
fn sum(values: &[f32]) -> f64 {
    let mut acc = [0.0f64; 8];
    let chunks = values.chunks_exact(8);
    let tail: f64 = chunks.remainder().iter().map(|&x| f64::from(x)).sum();
    for c in chunks {
        for k in 0..8 {
            acc[k] += f64::from(c[k]);
        }
    }
    acc.iter().sum::<f64>() + tail
}

fn finish(inside: f64, total: f64, area: f64, pixels: f64) -> Ratio {
    let area_ratio = if pixels > 0.0 { area / pixels } else { 0.0 };
    let ratio = if total > 0.0 { inside / total } else { area_ratio };
    Ratio { ratio, area_ratio }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_worked_box_and_mask() {
        // 4×3 map:
        //   1 2 3 4
        //   0 5 6 0
        //   1 1 1 1        total = 10 + 11 + 4 = 25
        let h = [1.0, 2.0, 3.0, 4.0, 0.0, 5.0, 6.0, 0.0, 1.0, 1.0, 1.0, 1.0];
        // Box x 0.6..3.4, y 0..2: centres 1.5, 2.5 inside (0.5 < 0.6, 3.5 ≥ 3.4); rows 0, 1.
        let b = BBox { x: 0.6, y: 0.0, w: 2.8, h: 2.0 };
        assert_eq!(box_pixels(&b, 4, 3), (1..3, 0..2));
        // Inside: 2 + 3 + 5 + 6 = 16 → 16/25; area 4/12.
        let r = box_ratio(&h, 4, 3, &b);
        assert!((r.ratio - 16.0 / 25.0).abs() < 1e-12);
        assert!((r.area_ratio - 4.0 / 12.0).abs() < 1e-12);
        // Mask: the column x = 3 → 4 + 0 + 1 = 5 → 5/25; area 3/12.
        let fg: Vec<bool> = (0..12).map(|k| k % 4 == 3).collect();
        let r = mask_ratio(&h, &fg);
        assert!((r.ratio - 0.2).abs() < 1e-12);
        assert!((r.area_ratio - 0.25).abs() < 1e-12);
        // All-zero map: scored as uniform.
        assert_eq!(mask_ratio(&[0.0; 12], &fg).ratio, 0.25);
        assert!((box_ratio(&[0.0; 12], 4, 3, &b).ratio - 1.0 / 3.0).abs() < 1e-12);
        // Box outside the image: no pixels, ratio 0, never NaN.
        let out = BBox { x: 10.0, y: 10.0, w: 2.0, h: 2.0 };
        assert_eq!(box_ratio(&h, 4, 3, &out), Ratio { ratio: 0.0, area_ratio: 0.0 });
    }
}
