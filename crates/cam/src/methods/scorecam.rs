//! Score-CAM (Wang et al., CVPR-W 2020), as in pytorch-grad-cam's `ScoreCAM`, driven by the
//! embedding target.
//!
//! Each channel `A^k` is upsampled to the input size (bilinear, pixel-centre aligned), min–max
//! normalised to `M^k ∈ [0, 1]` (a constant channel gives `M^k = 0`), and the masked image
//! `x ⊙ M^k` is sent through the whole network. The channel weight is the softmax over channels
//! of the target score of the masked image, `w_k = softmax_k(s(x ⊙ M^k, p))`, raw map
//! `Σ_k w_k A^k`. The paper's "increase of confidence" `s(x ⊙ M^k) − s(x_b)` against a baseline
//! gives the same weights: the softmax is invariant to subtracting a constant.
//!
//! Cost: `K` forward passes per image (`score_cam_batch` at a time), shared by all proxies.
//! (pytorch-grad-cam upsamples with `align_corners=True`; here the harness's pixel-centre
//! convention is used throughout.)

use burn::tensor::Tensor;
use embcam_cub::resize_bilinear;
use embcam_model::Staged;
use rayon::prelude::*;

use crate::error::Result;
use crate::gradcam::{CamOptions, repeat_rows2};
use crate::proxy::ProxyBatch;
use crate::util;

/// The min–max normalised upsampled channel masks of one image, `[K, H·W]` row-major.
fn masks(a: &[f32], k: usize, (h, w): (usize, usize), (in_h, in_w): (usize, usize)) -> Vec<f32> {
    let per: Vec<Vec<f32>> = (0..k)
        .into_par_iter()
        .map(|c| {
            let mut up = resize_bilinear(
                &a[c * h * w..(c + 1) * h * w],
                w as u32,
                h as u32,
                in_w as u32,
                in_h as u32,
            );
            let (lo, hi) = up
                .iter()
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)));
            let range = hi - lo;
            up.iter_mut()
                .for_each(|v| *v = if range > 0.0 { (*v - lo) / (range + 1e-8) } else { 0.0 });
            up
        })
        .collect();
    per.concat()
}

/// Raw Score-CAM maps `[B, P, h·w]` row-major.
pub(crate) fn raw_maps<M: Staged>(
    model: &M,
    x: Tensor<4>,
    a: &Tensor<4>,
    proxies: &ProxyBatch,
    opts: &CamOptions,
) -> Result<Vec<f32>> {
    let [b, k, h, w] = a.dims();
    let [_, ch, in_h, in_w] = x.dims();
    let n_p = proxies.n_proxies();
    let device = a.device();
    let x = x.detach().to_device(&device);
    let a_host = util::to_vec(a.clone())?;
    let mut out = vec![0.0f32; b * n_p * h * w];
    for bi in 0..b {
        let a_b = &a_host[bi * k * h * w..(bi + 1) * k * h * w];
        let m = masks(a_b, k, (h, w), (in_h, in_w));
        let x_b = x.clone().narrow(0, bi, 1); // [1, C, H, W]
        let p_host: Vec<f32> =
            (0..n_p).flat_map(|p| proxies.vector(bi, p).iter().copied()).collect();
        let p_b = util::tensor(p_host, [n_p, proxies.dim()], &device);
        // scores[c · P + p] = s(x ⊙ M^c, p)
        let mut scores: Vec<f64> = Vec::with_capacity(k * n_p);
        let mut c0 = 0;
        while c0 < k {
            let c1 = (c0 + opts.score_cam_batch).min(k);
            let n = c1 - c0;
            let m_t = util::tensor(
                m[c0 * in_h * in_w..c1 * in_h * in_w].to_vec(),
                [n, 1, in_h, in_w],
                &device,
            );
            let masked = m_t.expand([n, ch, in_h, in_w]) * x_b.clone().expand([n, ch, in_h, in_w]);
            let act = model.forward_to(masked, &opts.stage)?.detach();
            let z = model.forward_from(act, &opts.stage)?.detach(); // [n, d]
            let z_rep = repeat_rows2(z, n_p); // [n·P, d]
            let [_, d] = p_b.dims();
            let p_rep = p_b.clone().unsqueeze_dim::<3>(0).expand([n, n_p, d]).reshape([n * n_p, d]);
            scores.extend(util::to_vec_f64(opts.target.score(z_rep, p_rep))?);
            c0 = c1;
        }
        for p in 0..n_p {
            let col: Vec<f64> = (0..k).map(|c| scores[c * n_p + p]).collect();
            let mx = col.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = col.iter().map(|s| (s - mx).exp()).collect();
            let total: f64 = e.iter().sum();
            let dst = &mut out[(bi * n_p + p) * h * w..(bi * n_p + p + 1) * h * w];
            for (c, wk) in e.iter().enumerate() {
                let wk = wk / total;
                for (o, &v) in dst.iter_mut().zip(&a_b[c * h * w..(c + 1) * h * w]) {
                    *o += (wk * v as f64) as f32;
                }
            }
        }
    }
    Ok(out)
}
