//! Faithfulness in embedding space: deletion and insertion curves (Petsiuk, Das, Saenko, "RISE:
//! Randomized Input Sampling for Explanation of Black-box Models", BMVC 2018), with the proxy
//! similarity in place of a class probability.
//!
//! Pixels are taken in decreasing heatmap order (ties: row-major order). At step `s = 0..=T` the
//! fraction `f_s = s/T` of pixels, `m_s = round(f_s · N)`, is
//! - **deletion**: replaced by the baseline image (the other pixels keep the original), or
//! - **insertion**: revealed from the original on top of the baseline image;
//!
//! all channels of a pixel at once. Each perturbed image `x'` is embedded by the caller's model;
//! the curves track the proxy similarity `y(x') · p_c` with `y = z/‖z‖` (0 for a zero embedding)
//! and the true class's rank `1 + #{c' ≠ c : y·p_{c'} > y·p_c}` (ties favour the true class).
//! AUCs are trapezoids over `f ∈ [0, 1]`. A faithful map gives a low deletion AUC and a high
//! insertion AUC of the similarity.
//!
//! Images are in the model's input space (CHW, after its normalisation), and so is the heatmap
//! (before any resampling to the original image).

use std::error::Error as StdError;

use crate::EvalError;

/// What replaces deleted pixels, and what insertion starts from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PerturbBaseline {
    /// Zeros in the model's input space: after mean/std normalisation, the dataset mean colour.
    Zeros,
    /// Each channel's mean over the image.
    ChannelMean,
    /// The image blurred by a Gaussian of this standard deviation in pixels (RISE's insertion
    /// baseline); borders replicate the edge pixel.
    Blur {
        /// Standard deviation, pixels.
        sigma: f32,
    },
}

/// Settings of the deletion and insertion curves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaithfulnessConfig {
    /// Number of steps `T` (the curve has `T + 1` points); default 20.
    pub steps: usize,
    /// Perturbed images per model call; default 16.
    pub batch_size: usize,
    /// The baseline; default `Blur { sigma: 5.0 }`, used for both curves.
    pub baseline: PerturbBaseline,
}

impl Default for FaithfulnessConfig {
    fn default() -> Self {
        FaithfulnessConfig {
            steps: 20,
            batch_size: 16,
            baseline: PerturbBaseline::Blur { sigma: 5.0 },
        }
    }
}

/// One image's inputs: the image and its heatmap in input space, and the class proxies.
#[derive(Debug, Clone, Copy)]
pub struct FaithfulnessInput<'a> {
    /// Image id (for errors).
    pub id: u32,
    /// The model input, CHW row-major, `channels · height · width` values.
    pub image: &'a [f32],
    /// Channels.
    pub channels: usize,
    /// Height.
    pub height: usize,
    /// Width.
    pub width: usize,
    /// Heatmap over the input, `height · width` values (any finite values; only the order counts).
    pub heatmap: &'a [f32],
    /// Class proxies, row-major `classes × dim`.
    pub proxies: &'a [f32],
    /// Embedding dimension.
    pub dim: usize,
    /// Row of `proxies` of the image's true class.
    pub class: usize,
}

/// One curve.
#[derive(Debug, Clone, PartialEq)]
pub struct Curve {
    /// `f_s = s/T`, `s = 0..=T`.
    pub fractions: Vec<f64>,
    /// `y(x'_s) · p_c`.
    pub similarity: Vec<f64>,
    /// Rank of the true class's proxy (1 = nearest).
    pub rank: Vec<usize>,
    /// Trapezoid area under `similarity` over `f ∈ [0, 1]`.
    pub similarity_auc: f64,
    /// Trapezoid area under `rank` over `f ∈ [0, 1]`.
    pub rank_auc: f64,
}

/// Deletion and insertion curves of one image.
#[derive(Debug, Clone, PartialEq)]
pub struct FaithfulnessScores {
    /// Image id.
    pub id: u32,
    /// Deletion curve.
    pub deletion: Curve,
    /// Insertion curve.
    pub insertion: Curve,
}

/// Trapezoid rule `Σ (x_{s+1} − x_s)(y_s + y_{s+1})/2`.
pub fn trapezoid(x: &[f64], y: &[f64]) -> f64 {
    x.windows(2).zip(y.windows(2)).map(|(x, y)| (x[1] - x[0]) * (y[0] + y[1]) / 2.0).sum()
}

/// Deletion and insertion curves of one image (module header for the definitions).
///
/// `embed` receives batches of perturbed images (each CHW like `input.image`) and returns one
/// embedding (`dim` values) per image, in order. The `2(T + 1)` images are built and embedded
/// `batch_size` at a time.
///
/// # Errors
/// Inconsistent sizes, a class out of range, a non-finite heatmap value or proxy, an error from
/// `embed` (wrapped with the image id), or a wrong-sized or non-finite embedding.
pub fn deletion_insertion<F, E>(
    input: &FaithfulnessInput<'_>,
    cfg: &FaithfulnessConfig,
    mut embed: F,
) -> Result<FaithfulnessScores, EvalError>
where
    F: FnMut(&[Vec<f32>]) -> Result<Vec<Vec<f32>>, E>,
    E: Into<Box<dyn StdError + Send + Sync + 'static>>,
{
    let id = input.id;
    let (c, h, w) = (input.channels, input.height, input.width);
    let n = h * w;
    if input.image.len() != c * n || c == 0 || n == 0 {
        return Err(EvalError::LengthMismatch {
            what: "image tensor length vs channels · height · width",
            left: input.image.len(),
            right: c * n,
        });
    }
    if input.heatmap.len() != n {
        return Err(EvalError::SizeMismatch {
            id,
            what: "heatmap",
            got_w: input.heatmap.len() as u32,
            got_h: 1,
            width: w as u32,
            height: h as u32,
        });
    }
    if input.dim == 0 || !input.proxies.len().is_multiple_of(input.dim) {
        return Err(EvalError::EmbeddingShape { len: input.proxies.len(), dim: input.dim });
    }
    let classes = input.proxies.len() / input.dim;
    if input.class >= classes {
        return Err(EvalError::Config(format!(
            "image {id}: true class row {} but only {classes} proxies",
            input.class
        )));
    }
    if let Some(p) = input.heatmap.iter().position(|v| !v.is_finite()) {
        let value = input.heatmap[p];
        return Err(EvalError::NonFiniteMap { id, x: (p % w) as u32, y: (p / w) as u32, value });
    }
    if let Some(k) = input.proxies.iter().position(|v| !v.is_finite()) {
        return Err(EvalError::NonFiniteEmbedding {
            row: k / input.dim,
            col: k % input.dim,
            value: input.proxies[k],
        });
    }
    if cfg.steps == 0 || cfg.batch_size == 0 {
        return Err(EvalError::Config("faithfulness needs steps ≥ 1 and batch_size ≥ 1".into()));
    }

    // Pixel order: heatmap descending, row-major among ties (a stable sort).
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| input.heatmap[b].total_cmp(&input.heatmap[a]));
    let baseline = baseline_image(input, cfg.baseline);
    let t = cfg.steps;
    let count = |s: usize| (s * n + t / 2) / t; // round(s·N/T), exact in integers

    // Image `q` of the 2(T+1): deletion steps first, then insertion steps.
    let make = |q: usize| -> Vec<f32> {
        let (deleting, s) = if q <= t { (true, q) } else { (false, q - t - 1) };
        let (mut img, src): (Vec<f32>, &[f32]) = if deleting {
            (input.image.to_vec(), &baseline)
        } else {
            (baseline.clone(), input.image)
        };
        for &p in &order[..count(s)] {
            for ch in 0..c {
                img[ch * n + p] = src[ch * n + p];
            }
        }
        img
    };
    let total = 2 * (t + 1);
    let mut sims = Vec::with_capacity(total);
    let mut ranks = Vec::with_capacity(total);
    let mut q = 0;
    while q < total {
        let batch: Vec<Vec<f32>> = (q..(q + cfg.batch_size).min(total)).map(make).collect();
        let out = embed(&batch).map_err(|e| EvalError::Model { id, source: e.into() })?;
        if out.len() != batch.len() {
            return Err(EvalError::ModelOutput {
                id,
                what: format!("{} embeddings for a batch of {}", out.len(), batch.len()),
            });
        }
        for z in &out {
            let (sim, rank) = similarity_and_rank(id, z, input)?;
            sims.push(sim);
            ranks.push(rank);
        }
        q += batch.len();
    }
    let fractions: Vec<f64> = (0..=t).map(|s| s as f64 / t as f64).collect();
    let curve = |range: std::ops::Range<usize>| {
        let similarity = sims[range.clone()].to_vec();
        let rank = ranks[range].to_vec();
        let rank_f: Vec<f64> = rank.iter().map(|&r| r as f64).collect();
        Curve {
            similarity_auc: trapezoid(&fractions, &similarity),
            rank_auc: trapezoid(&fractions, &rank_f),
            fractions: fractions.clone(),
            similarity,
            rank,
        }
    };
    Ok(FaithfulnessScores { id, deletion: curve(0..t + 1), insertion: curve(t + 1..total) })
}

fn similarity_and_rank(
    id: u32,
    z: &[f32],
    input: &FaithfulnessInput<'_>,
) -> Result<(f64, usize), EvalError> {
    let dim = input.dim;
    if z.len() != dim {
        return Err(EvalError::ModelOutput {
            id,
            what: format!("an embedding of {} values, expected dim = {dim}", z.len()),
        });
    }
    if let Some(v) = z.iter().find(|v| !v.is_finite()) {
        return Err(EvalError::ModelOutput {
            id,
            what: format!("a non-finite embedding value {v}"),
        });
    }
    let norm = z.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>().sqrt();
    let scale = if norm > 0.0 { 1.0 / norm } else { 0.0 };
    let score = |row: usize| -> f64 {
        let p = &input.proxies[row * dim..(row + 1) * dim];
        z.iter().zip(p).map(|(&a, &b)| f64::from(a) * f64::from(b)).sum::<f64>() * scale
    };
    let own = score(input.class);
    let classes = input.proxies.len() / dim;
    let above = (0..classes).filter(|&r| r != input.class && score(r) > own).count();
    Ok((own, above + 1))
}

/// The baseline image for `input` (CHW).
fn baseline_image(input: &FaithfulnessInput<'_>, baseline: PerturbBaseline) -> Vec<f32> {
    let n = input.height * input.width;
    match baseline {
        PerturbBaseline::Zeros => vec![0.0; input.image.len()],
        PerturbBaseline::ChannelMean => input
            .image
            .chunks_exact(n)
            .flat_map(|ch| {
                let mean = ch.iter().map(|&v| f64::from(v)).sum::<f64>() / n as f64;
                std::iter::repeat_n(mean as f32, n)
            })
            .collect(),
        PerturbBaseline::Blur { sigma } => input
            .image
            .chunks_exact(n)
            .flat_map(|ch| gaussian_blur(ch, input.width, input.height, sigma))
            .collect(),
    }
}

/// Separable Gaussian blur of one `width × height` channel; radius `⌈3σ⌉`, edge pixels replicated.
/// `sigma ≤ 0` returns the channel unchanged.
pub fn gaussian_blur(channel: &[f32], width: usize, height: usize, sigma: f32) -> Vec<f32> {
    if sigma <= 0.0 || !sigma.is_finite() {
        return channel.to_vec();
    }
    let r = (3.0 * sigma).ceil() as isize;
    let kernel: Vec<f32> =
        (-r..=r).map(|d| (-(d * d) as f32 / (2.0 * sigma * sigma)).exp()).collect();
    let total: f32 = kernel.iter().sum();
    let kernel: Vec<f32> = kernel.iter().map(|k| k / total).collect();
    let pass = |src: &[f32], len: usize, lines: usize, at: &dyn Fn(usize, usize) -> usize| {
        let mut out = vec![0.0f32; src.len()];
        for line in 0..lines {
            for x in 0..len {
                let mut acc = 0.0;
                for (k, &wk) in kernel.iter().enumerate() {
                    let xx = (x as isize + k as isize - r).clamp(0, len as isize - 1) as usize;
                    acc += wk * src[at(line, xx)];
                }
                out[at(line, x)] = acc;
            }
        }
        out
    };
    let rows = pass(channel, width, height, &|j, i| j * width + i);
    pass(&rows, height, width, &|i, j| j * width + i)
}

/// Unit class proxies the curves measure against, row-major `classes × d`, with the row of each
/// class id: [`FaithfulnessInput::proxies`] and [`FaithfulnessInput::class`] for a dataset.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClassProxies {
    /// Row-major `classes × d`.
    pub proxies: Vec<f32>,
    /// Embedding dimension `d`.
    pub dim: usize,
    rows: std::collections::BTreeMap<u32, usize>,
}

impl ClassProxies {
    /// From `(class id, unit vector)` pairs, all of one length.
    pub fn new(class_proxies: &[(u32, Vec<f32>)]) -> Self {
        ClassProxies {
            proxies: class_proxies.iter().flat_map(|(_, v)| v.iter().copied()).collect(),
            dim: class_proxies.first().map_or(0, |(_, v)| v.len()),
            rows: class_proxies.iter().enumerate().map(|(i, (c, _))| (*c, i)).collect(),
        }
    }

    /// The row of class `class`, `None` when it has no proxy.
    pub fn row(&self, class: u32) -> Option<usize> {
        self.rows.get(&class).copied()
    }
}

/// The mean deletion and insertion curves of several images, point by point (all measured with
/// one [`FaithfulnessConfig`]): `(fraction of pixels, mean deletion similarity, mean insertion
/// similarity)`; empty without images.
pub fn mean_curves(scores: &[&FaithfulnessScores]) -> Vec<(f64, f64, f64)> {
    let Some(first) = scores.first() else { return Vec::new() };
    let n = scores.len() as f64;
    let mean = |pick: fn(&FaithfulnessScores) -> &[f64], i: usize| {
        scores.iter().map(|f| pick(f)[i]).sum::<f64>() / n
    };
    (0..first.deletion.fractions.len())
        .map(|i| {
            (
                first.deletion.fractions[i],
                mean(|f| &f.deletion.similarity, i),
                mean(|f| &f.insertion.similarity, i),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Model: z = (x0 + x1, 1) on a 1×2×2 image.
    fn toy_model(batch: &[Vec<f32>]) -> Result<Vec<Vec<f32>>, std::io::Error> {
        Ok(batch.iter().map(|x| vec![x[0] + x[1], 1.0]).collect())
    }

    fn input<'a>(
        image: &'a [f32],
        heatmap: &'a [f32],
        proxies: &'a [f32],
    ) -> FaithfulnessInput<'a> {
        FaithfulnessInput {
            id: 7,
            image,
            channels: 1,
            height: 2,
            width: 2,
            heatmap,
            proxies,
            dim: 2,
            class: 0,
        }
    }

    #[test]
    fn hand_worked_curves() {
        // Image of ones, heatmap [4, 3, 2, 1] → order 0, 1, 2, 3; T = 4 (one pixel per step);
        // zero baseline; proxies p0 = (1, 0) (true), p1 = (0, 1).
        // Deletion: x = 1111 → z (2,1) → sim 2/√5, rank 1; 0111 → (1,1) → 1/√2, tie → rank 1;
        //   0011, 0001, 0000 → (0,1) → 0, rank 2.
        //   AUC = ¼[(2/√5 + 1/√2)/2 + (1/√2 + 0)/2] = 0.288580094; rank AUC ¼[1 + 1.5 + 2 + 2] = 1.625.
        // Insertion: 0000 → 0, rank 2; 1000 → 1/√2, rank 1; then 2/√5, rank 1.
        //   AUC = ¼[(0 + 1/√2)/2 + (1/√2 + 2/√5)/2 + 2/√5 + 2/√5] = 0.735793690;
        //   rank AUC ¼[1.5 + 1 + 1 + 1] = 1.125.
        let (image, heat, proxies) = ([1.0; 4], [4.0, 3.0, 2.0, 1.0], [1.0, 0.0, 0.0, 1.0]);
        let cfg = FaithfulnessConfig { steps: 4, batch_size: 3, baseline: PerturbBaseline::Zeros };
        let mut calls = Vec::new();
        let s = deletion_insertion(&input(&image, &heat, &proxies), &cfg, |b: &[Vec<f32>]| {
            calls.push(b.len());
            toy_model(b)
        })
        .unwrap();
        // 10 images in batches of 3.
        assert_eq!(calls, vec![3, 3, 3, 1]);
        let (a, b) = (2.0 / 5f64.sqrt(), 1.0 / 2f64.sqrt());
        let close = |x: &[f64], y: &[f64]| x.iter().zip(y).all(|(x, y)| (x - y).abs() < 1e-6);
        assert!(close(&s.deletion.similarity, &[a, b, 0.0, 0.0, 0.0]));
        assert_eq!(s.deletion.rank, vec![1, 1, 2, 2, 2]);
        assert!((s.deletion.similarity_auc - 0.288_580_094).abs() < 1e-6);
        assert!((s.deletion.rank_auc - 1.625).abs() < 1e-12);
        assert!(close(&s.insertion.similarity, &[0.0, b, a, a, a]));
        assert_eq!(s.insertion.rank, vec![2, 1, 1, 1, 1]);
        assert!((s.insertion.similarity_auc - 0.735_793_690).abs() < 1e-6);
        assert!((s.insertion.rank_auc - 1.125).abs() < 1e-12);
        assert_eq!(s.deletion.fractions, vec![0.0, 0.25, 0.5, 0.75, 1.0]);
    }

    #[test]
    fn baselines() {
        // Channel mean of [1, 2, 3, 6] is 3; a blur keeps a constant image constant and keeps
        // the mass of an impulse far from the border.
        let img = [1.0, 2.0, 3.0, 6.0];
        let p = [1.0, 0.0];
        let inp = FaithfulnessInput { proxies: &p, dim: 1, ..input(&img, &img, &p) };
        assert_eq!(baseline_image(&inp, PerturbBaseline::ChannelMean), vec![3.0; 4]);
        assert!(gaussian_blur(&[2.0; 30], 6, 5, 1.3).iter().all(|v| (v - 2.0).abs() < 1e-5));
        let mut impulse = vec![0.0; 21 * 21];
        impulse[10 * 21 + 10] = 1.0;
        let b = gaussian_blur(&impulse, 21, 21, 1.5);
        assert!((b.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        assert!(b[10 * 21 + 10] > b[10 * 21 + 11] && b[10 * 21 + 11] > b[10 * 21 + 12]);
    }

    #[test]
    fn errors_name_the_image() {
        let (image, proxies) = ([1.0; 4], [1.0, 0.0, 0.0, 1.0]);
        let cfg = FaithfulnessConfig::default();
        let heat = [0.0, f32::NAN, 0.0, 0.0];
        let e = deletion_insertion(&input(&image, &heat, &proxies), &cfg, toy_model).unwrap_err();
        assert!(e.to_string().contains("image 7"), "{e}");
        let heat = [0.0; 4];
        let failing = |_: &[Vec<f32>]| -> Result<Vec<Vec<f32>>, std::io::Error> {
            Err(std::io::Error::other("out of memory"))
        };
        let e = deletion_insertion(&input(&image, &heat, &proxies), &cfg, failing).unwrap_err();
        assert!(matches!(e, EvalError::Model { id: 7, .. }));
        let short = |b: &[Vec<f32>]| -> Result<Vec<Vec<f32>>, std::io::Error> {
            Ok(b.iter().map(|_| vec![1.0]).collect())
        };
        let e = deletion_insertion(&input(&image, &heat, &proxies), &cfg, short).unwrap_err();
        assert!(matches!(e, EvalError::ModelOutput { id: 7, .. }));
    }
}
