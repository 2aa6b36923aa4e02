//! Slow, obviously correct reference computations, written from the metric definitions without
//! the crate's union–find, level quantisation or histograms.

use embcam_cub::BBox;
use embcam_eval::{Heatmap, ImageTruth};

/// `v = H / max H`, or 1 everywhere for an all-zero map.
pub fn normalised(map: &Heatmap) -> Vec<f32> {
    let max = map.values.iter().copied().fold(0.0f32, f32::max);
    map.values.iter().map(|&h| if max > 0.0 { h / max } else { 1.0 }).collect()
}

/// wsolevaluation's `normalize_scoremap` (inference.py), step for step in `f32`: zeros when the
/// map holds a NaN or is constant, else `cam -= cam.min(); cam /= cam.max()`.
pub fn normalize_scoremap(map: &Heatmap) -> Vec<f32> {
    let cam = &map.values;
    if cam.iter().any(|v| v.is_nan()) {
        return vec![0.0; cam.len()];
    }
    let min = cam.iter().copied().fold(f32::INFINITY, f32::min);
    let max = cam.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if min == max {
        return vec![0.0; cam.len()];
    }
    let shifted: Vec<f32> = cam.iter().map(|&h| h - min).collect();
    let top = shifted.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    shifted.iter().map(|&h| h / top).collect()
}

/// The ground-truth box, clipped to the image when it reaches outside.
pub fn truth_box(truth: &ImageTruth) -> BBox {
    let b = truth.bbox;
    if b.inside(truth.width, truth.height, 0.0) { b } else { b.clip(truth.width, truth.height) }
}

/// `τ_k = k / S`.
pub fn tau(k: usize, steps: usize) -> f32 {
    k as f32 / steps as f32
}

/// 8-connected components by label propagation to a fixpoint (each pixel takes the smallest
/// label among itself and its foreground neighbours): `(box, size, first pixel)`.
pub fn components(fg: &[bool], w: usize, h: usize) -> Vec<(BBox, usize, usize)> {
    let mut label: Vec<usize> = (0..fg.len()).collect();
    loop {
        let mut changed = false;
        for p in 0..fg.len() {
            if !fg[p] {
                continue;
            }
            let (i, j) = ((p % w) as i64, (p / w) as i64);
            for dj in -1..=1 {
                for di in -1..=1 {
                    let (x, y) = (i + di, j + dj);
                    if x < 0 || y < 0 || x >= w as i64 || y >= h as i64 {
                        continue;
                    }
                    let q = y as usize * w + x as usize;
                    if fg[q] && label[q] < label[p] {
                        label[p] = label[q];
                        changed = true;
                    }
                }
            }
        }
        if !changed {
            break;
        }
    }
    let mut out = Vec::new();
    for first in 0..fg.len() {
        if !fg[first] || label[first] != first {
            continue;
        }
        let members: Vec<usize> = (0..fg.len()).filter(|&p| fg[p] && label[p] == first).collect();
        let x0 = members.iter().map(|p| p % w).min().unwrap_or(0) as f32;
        let x1 = members.iter().map(|p| p % w + 1).max().unwrap_or(0) as f32;
        let y0 = members.iter().map(|p| p / w).min().unwrap_or(0) as f32;
        let y1 = members.iter().map(|p| p / w + 1).max().unwrap_or(0) as f32;
        out.push((BBox::from_corners(x0, y0, x1, y1), members.len(), first));
    }
    out
}

/// Per τ_k: (IoU of the largest component's box on the max-normalised map — localisation —,
/// best IoU over all components' boxes on the `normalize_scoremap` map — MaxBoxAccV2).
pub fn sweep(map: &Heatmap, truth: &ImageTruth, steps: usize) -> Vec<(f32, f32)> {
    let (v, choe) = (normalised(map), normalize_scoremap(map));
    let gt = truth_box(truth);
    let (w, h) = (map.width as usize, map.height as usize);
    let above =
        |v: &[f32], k: usize| -> Vec<bool> { v.iter().map(|&x| x >= tau(k, steps)).collect() };
    (0..steps)
        .map(|k| {
            let cs = components(&above(&v, k), w, h);
            // Largest: most pixels, then smallest first pixel.
            let largest = cs.iter().min_by_key(|c| (std::cmp::Reverse(c.1), c.2)).unwrap();
            let cs = components(&above(&choe, k), w, h);
            let best = cs.iter().map(|c| c.0.iou(&gt)).fold(0.0f32, f32::max);
            (largest.0.iou(&gt), best)
        })
        .collect()
}

/// MaxBoxAccV2 straight from Choe et al.: per δ, `max_τ (1/n) Σ_images [best IoU ≥ δ]`, averaged.
pub fn maxboxacc_v2(items: &[(Heatmap, ImageTruth)], steps: usize, ious: [f32; 3]) -> f64 {
    let sweeps: Vec<Vec<(f32, f32)>> = items.iter().map(|(m, t)| sweep(m, t, steps)).collect();
    let n = items.len() as f64;
    let mut total = 0.0;
    for delta in ious {
        let best_over_tau = (0..steps)
            .map(|k| sweeps.iter().filter(|s| s[k].1 >= delta).count() as f64 / n)
            .fold(0.0, f64::max);
        total += best_over_tau;
    }
    total / 3.0
}

/// PxAP from the definition: pool every (v, foreground) pixel of images with a non-empty mask
/// (`v` from `normalize_scoremap`), count TP and FP at each threshold t ∈ {1, (S−1)/S, …, 0} from
/// the top, and sum P · ΔR.
pub fn pxap(items: &[(Heatmap, ImageTruth)], steps: usize, threshold: u8) -> f64 {
    let mut pixels = Vec::new();
    for (m, t) in items {
        let Some(mask) = &t.mask else { continue };
        if mask.area(threshold) == 0 {
            continue;
        }
        let v = normalize_scoremap(m);
        pixels.extend(v.iter().zip(&mask.soft).map(|(&x, &s)| (x, s >= threshold)));
    }
    let positives = pixels.iter().filter(|p| p.1).count() as f64;
    let mut thresholds = vec![1.0f32];
    thresholds.extend((0..steps).rev().map(|k| tau(k, steps)));
    let (mut ap, mut prev_recall) = (0.0, 0.0);
    for t in thresholds {
        let tp = pixels.iter().filter(|p| p.1 && p.0 >= t).count() as f64;
        let fp = pixels.iter().filter(|p| !p.1 && p.0 >= t).count() as f64;
        let recall = tp / positives;
        if tp + fp > 0.0 {
            ap += tp / (tp + fp) * (recall - prev_recall);
        }
        prev_recall = recall;
    }
    ap
}

/// Brute-force pointing against a mask: fraction of maxima with a foreground pixel within `r`.
pub fn pointing_mask(map: &Heatmap, fg: &[bool], r: f32) -> f64 {
    let w = map.width as i64;
    let max = map.values.iter().copied().fold(0.0f32, f32::max);
    let peaks: Vec<usize> = (0..map.values.len()).filter(|&p| map.values[p] == max).collect();
    let hit = |p: usize| {
        (0..fg.len()).any(|q| {
            let dx = (p as i64 % w - q as i64 % w) as f64;
            let dy = (p as i64 / w - q as i64 / w) as f64;
            fg[q] && dx * dx + dy * dy <= f64::from(r) * f64::from(r)
        })
    };
    peaks.iter().filter(|&&p| hit(p)).count() as f64 / peaks.len() as f64
}

/// Brute-force Recall@K and MAP@R in f64: cosine on the raw rows, full sort.
pub fn retrieval(emb: &[f32], dim: usize, labels: &[u32], ks: &[usize]) -> (Vec<f64>, f64) {
    let n = labels.len();
    let row = |i: usize| &emb[i * dim..(i + 1) * dim];
    let cos = |a: &[f32], b: &[f32]| {
        let dot: f64 = a.iter().zip(b).map(|(&x, &y)| f64::from(x) * f64::from(y)).sum();
        let na: f64 = a.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt();
        let nb: f64 = b.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt();
        dot / (na * nb)
    };
    let mut recall = vec![0.0; ks.len()];
    let (mut map_sum, mut map_n) = (0.0, 0);
    for q in 0..n {
        let mut others: Vec<(f64, usize)> =
            (0..n).filter(|&j| j != q).map(|j| (cos(row(q), row(j)), j)).collect();
        others.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let rel: Vec<bool> = others.iter().map(|&(_, j)| labels[j] == labels[q]).collect();
        for (slot, &k) in recall.iter_mut().zip(ks) {
            if rel.iter().take(k).any(|&r| r) {
                *slot += 1.0 / n as f64;
            }
        }
        let r = rel.iter().filter(|&&x| x).count();
        if r > 0 {
            let mut ap = 0.0;
            for i in 0..r {
                if rel[i] {
                    let precision =
                        rel[..=i].iter().filter(|&&x| x).count() as f64 / (i + 1) as f64;
                    ap += precision;
                }
            }
            map_sum += ap / r as f64;
            map_n += 1;
        }
    }
    (recall, if map_n > 0 { map_sum / map_n as f64 } else { 0.0 })
}
