//! Pointing game (Zhang et al., "Top-down Neural Attention by Excitation Backprop", ECCV 2016)
//! against the box and the mask, with an optional tolerance. Part-level pointing on SynthCUB's
//! exact part regions is [`crate::parts`].
//!
//! **The rule (docs/metrics.md, "Pointing game").** An image scores whether `argmax H` hits, and tied
//! maxima count fractionally: with `P = {p : H(p) = max H}` (exact equality) the score is
//! `|{p ∈ P : p hits}| / |P|`. A unique maximum scores 0 or 1, as in Zhang et al.; with ties the
//! score is the expected hit of an argmax drawn uniformly among them, so no tie-breaking order
//! (row-major first, say) favours a region. An all-zero map (scored as uniform, every pixel a peak)
//! scores the fraction of pixels that hit — at zero tolerance exactly the region's area ratio, what
//! a uniformly random guess scores.
//!
//! **Tolerance** `r` (pixels, default 0): a peak `p` hits the mask when some foreground pixel `q`
//! has `‖p − q‖ ≤ r` (pixel centres, Euclidean); it hits the box when its centre lies in the box
//! ([`BBox::contains_pixel`]) or within distance `r` of it.

use embcam_cub::BBox;

/// All indices where `values` equals `max`, row-major.
pub fn peaks(values: &[f32], max: f32) -> Vec<usize> {
    values.iter().enumerate().filter(|&(_, &h)| h == max).map(|(p, _)| p).collect()
}

/// Pointing score against a box: the fraction of `peaks` (the tied maxima) whose centre lies in
/// `bbox` or within `tolerance` pixels of it — 0 or 1 for a unique maximum. 0 when there are no
/// peaks.
pub fn pointing_box(peaks: &[usize], width: u32, bbox: &BBox, tolerance: f32) -> f64 {
    let hit = |&p: &usize| {
        let (i, j) = ((p % width as usize) as u32, (p / width as usize) as u32);
        if bbox.contains_pixel(i, j) {
            return true;
        }
        let (cx, cy) = (i as f32 + 0.5, j as f32 + 0.5);
        let dx = (bbox.x - cx).max(cx - bbox.x1()).max(0.0);
        let dy = (bbox.y - cy).max(cy - bbox.y1()).max(0.0);
        tolerance > 0.0 && dx * dx + dy * dy <= tolerance * tolerance
    };
    fraction(peaks, hit)
}

/// Pointing score against a binary mask: the fraction of `peaks` (the tied maxima) within
/// `tolerance` pixels of a foreground pixel — 0 or 1 for a unique maximum. 0 when there are no
/// peaks. With many peaks (an all-zero map) it computes one
/// exact Euclidean distance transform instead of scanning a disk around each peak.
pub fn pointing_mask(peaks: &[usize], fg: &[bool], width: u32, height: u32, tolerance: f32) -> f64 {
    if tolerance <= 0.0 {
        return fraction(peaks, |&p| fg[p]);
    }
    let r2 = f64::from(tolerance) * f64::from(tolerance);
    let r = tolerance.floor() as i64;
    let disk: Vec<(i64, i64)> = (-r..=r)
        .flat_map(|dj| (-r..=r).map(move |di| (di, dj)))
        .filter(|&(di, dj)| (di * di + dj * dj) as f64 <= r2)
        .collect();
    if peaks.len().saturating_mul(disk.len()) > fg.len() {
        let d2 = squared_distance_to_foreground(fg, width, height);
        return fraction(peaks, |&p| d2[p] <= r2);
    }
    let (w, h) = (i64::from(width), i64::from(height));
    fraction(peaks, |&p| {
        let (i, j) = (p as i64 % w, p as i64 / w);
        disk.iter().any(|&(di, dj)| {
            let (x, y) = (i + di, j + dj);
            x >= 0 && y >= 0 && x < w && y < h && fg[(y * w + x) as usize]
        })
    })
}

fn fraction(peaks: &[usize], hit: impl Fn(&usize) -> bool) -> f64 {
    if peaks.is_empty() {
        return 0.0;
    }
    peaks.iter().filter(|p| hit(p)).count() as f64 / peaks.len() as f64
}

/// Exact squared Euclidean distance from each pixel centre to the nearest foreground pixel centre
/// (Felzenszwalb & Huttenlocher, "Distance Transforms of Sampled Functions", 2012: the lower
/// envelope of parabolas, rows then columns). Pixels of a mask with no foreground get a value
/// above `1e19`.
pub fn squared_distance_to_foreground(fg: &[bool], width: u32, height: u32) -> Vec<f64> {
    const FAR: f64 = 1e20;
    let (w, h) = (width as usize, height as usize);
    let mut grid: Vec<f64> = fg.iter().map(|&f| if f { 0.0 } else { FAR }).collect();
    let n = w.max(h);
    let (mut f, mut d, mut v, mut z) =
        (vec![0.0; n], vec![0.0; n], vec![0usize; n], vec![0.0; n + 1]);
    for j in 0..h {
        f[..w].copy_from_slice(&grid[j * w..(j + 1) * w]);
        envelope(&f[..w], &mut d[..w], &mut v, &mut z);
        grid[j * w..(j + 1) * w].copy_from_slice(&d[..w]);
    }
    for i in 0..w {
        for j in 0..h {
            f[j] = grid[j * w + i];
        }
        envelope(&f[..h], &mut d[..h], &mut v, &mut z);
        for j in 0..h {
            grid[j * w + i] = d[j];
        }
    }
    grid
}

/// 1-D squared distance transform `d(q) = min_p (q − p)² + f(p)`.
fn envelope(f: &[f64], d: &mut [f64], v: &mut [usize], z: &mut [f64]) {
    let n = f.len();
    let mut k = 0usize;
    v[0] = 0;
    z[0] = f64::NEG_INFINITY;
    z[1] = f64::INFINITY;
    let sq = |x: usize| (x * x) as f64;
    for q in 1..n {
        // Intersection of the parabolas rooted at q and v[k]; z[0] = −∞ stops the loop.
        let cut = |p: usize| ((f[q] + sq(q)) - (f[p] + sq(p))) / (2.0 * (q as f64 - p as f64));
        let mut s = cut(v[k]);
        while s <= z[k] {
            k -= 1;
            s = cut(v[k]);
        }
        k += 1;
        v[k] = q;
        z[k] = s;
        z[k + 1] = f64::INFINITY;
    }
    let mut k = 0;
    for (q, out) in d.iter_mut().enumerate() {
        while z[k + 1] < q as f64 {
            k += 1;
        }
        let p = v[k];
        *out = (q as f64 - p as f64).powi(2) + f[p];
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn box_pointing_with_tolerance() {
        // 6×1 strip, box x 2..4 (pixels 2, 3). Peak at pixel 5: centre 5.5, distance 1.5 to the
        // box's right edge x = 4.
        let b = BBox { x: 2.0, y: 0.0, w: 2.0, h: 1.0 };
        assert_eq!(pointing_box(&[3], 6, &b, 0.0), 1.0);
        assert_eq!(pointing_box(&[5], 6, &b, 0.0), 0.0);
        assert_eq!(pointing_box(&[5], 6, &b, 1.4), 0.0);
        assert_eq!(pointing_box(&[5], 6, &b, 1.5), 1.0);
        // Ties: peaks at 0, 2, 3, 5 → hits 2, 3 → 1/2.
        assert_eq!(pointing_box(&[0, 2, 3, 5], 6, &b, 0.0), 0.5);
        assert_eq!(pointing_box(&[], 6, &b, 0.0), 0.0);
    }

    #[test]
    fn mask_pointing_with_tolerance() {
        // 5×5 mask with one foreground pixel at (1, 1). Peak (4, 4): distance √18 ≈ 4.243.
        let mut fg = vec![false; 25];
        fg[6] = true;
        assert_eq!(pointing_mask(&[6], &fg, 5, 5, 0.0), 1.0);
        assert_eq!(pointing_mask(&[24], &fg, 5, 5, 4.2), 0.0);
        assert_eq!(pointing_mask(&[24], &fg, 5, 5, 4.25), 1.0);
        // Peak (3, 1): distance 2.
        assert_eq!(pointing_mask(&[8], &fg, 5, 5, 1.99), 0.0);
        assert_eq!(pointing_mask(&[8], &fg, 5, 5, 2.0), 1.0);
        // Every pixel a peak (uniform map), r = 1: the pixels within 1 of (1, 1) are (1, 1) and its
        // 4 edge neighbours → 5/25 (diagonals are √2 away). Uses the distance-transform path.
        let all: Vec<usize> = (0..25).collect();
        assert_eq!(pointing_mask(&all, &fg, 5, 5, 1.0), 0.2);
        // r = 1.5 adds the 4 diagonals → 9/25.
        assert_eq!(pointing_mask(&all, &fg, 5, 5, 1.5), 9.0 / 25.0);
    }

    #[test]
    fn distance_transform_matches_brute_force() {
        // A fixed irregular mask on 7×5, compared with the brute-force minimum.
        let (w, h) = (7usize, 5usize);
        let fg: Vec<bool> = (0..w * h).map(|p| (p * 37 + 11) % 13 == 0).collect();
        let d2 = squared_distance_to_foreground(&fg, w as u32, h as u32);
        for (p, &got) in d2.iter().enumerate() {
            let brute = (0..w * h)
                .filter(|&q| fg[q])
                .map(|q| {
                    let dx = (p % w) as f64 - (q % w) as f64;
                    let dy = (p / w) as f64 - (q / w) as f64;
                    dx * dx + dy * dy
                })
                .fold(f64::INFINITY, f64::min);
            assert_eq!(got, brute, "pixel {p}");
        }
        assert!(squared_distance_to_foreground(&[false; 6], 3, 2).iter().all(|&d| d > 1e19));
    }
}
