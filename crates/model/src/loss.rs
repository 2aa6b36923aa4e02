//! Triplet margin loss with online mining, following pytorch-metric-learning (PML) semantics,
//! and softmax cross-entropy for the classifier head.
//!
//! Distances are Euclidean, `d(i, j) = ‖x_i − x_j‖₂`, on the embeddings, L2-normalised first when
//! [`TripletLoss::normalize`] is set (PML's default `LpDistance(normalize_embeddings=True)`).
//! A triplet `(a, p, n)` has `label(a) = label(p)`, `a ≠ p`, `label(n) ≠ label(a)`; its loss is
//! `ℓ = max(0, d(a, p) − d(a, n) + m)`.
//!
//! Mining (which triplets enter the loss):
//! - [`Mining::All`]: every triplet in the batch (PML `TripletMarginLoss` without a miner).
//! - [`Mining::SemiHard`]: triplets with `0 < d(a, n) − d(a, p) ≤ m` (PML
//!   `TripletMarginMiner(type_of_triplets="semihard")`).
//! - [`Mining::BatchHard`]: per anchor, its farthest positive and nearest negative (PML
//!   `BatchHardMiner`; anchors without a positive or a negative are skipped).
//!
//! Reduction: the mean over the mined triplets whose loss is `> 0` (PML `AvgNonZeroReducer`), and
//! 0 when there is none. Mining runs on the host on detached distances; the loss is computed on the
//! device so that it is differentiable.

use std::fmt;
use std::str::FromStr;

use burn::tensor::activation::{log_softmax, relu};
use burn::tensor::{Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::ModelError;
use crate::nets::l2_normalize;

/// Which triplets of a batch enter the loss (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mining {
    /// Every valid triplet.
    All,
    /// `0 < d(a,n) − d(a,p) ≤ margin`.
    SemiHard,
    /// Hardest positive and hardest negative per anchor.
    BatchHard,
}

impl fmt::Display for Mining {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mining::All => "all",
            Mining::SemiHard => "semi-hard",
            Mining::BatchHard => "batch-hard",
        })
    }
}

impl FromStr for Mining {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "all" => Ok(Mining::All),
            "semi-hard" => Ok(Mining::SemiHard),
            "batch-hard" => Ok(Mining::BatchHard),
            other => Err(ModelError::InvalidConfig(format!(
                "unknown mining `{other}`; expected all, semi-hard or batch-hard"
            ))),
        }
    }
}

/// Triplet margin loss (see the module docs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TripletLoss {
    /// The margin `m` (PML's default is 0.05; 0.1–0.2 is common for normalised embeddings).
    pub margin: f32,
    /// Mining strategy.
    pub mining: Mining,
    /// L2-normalise the embeddings before taking distances.
    pub normalize: bool,
}

/// Counts from one loss evaluation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TripletStats {
    /// Valid triplets in the batch before mining (for batch-hard: anchors that have a positive
    /// and a negative).
    pub candidates: usize,
    /// Triplets kept by the miner.
    pub mined: usize,
    /// Mined triplets with loss `> 0` (the ones that are averaged).
    pub active: usize,
}

impl TripletStats {
    /// The share of active triplets, `active / candidates` (0 for an empty batch).
    pub fn active_share(&self) -> f64 {
        if self.candidates == 0 { 0.0 } else { self.active as f64 / self.candidates as f64 }
    }
}

/// The loss and its counts.
#[derive(Clone, Debug)]
pub struct TripletOutput {
    /// Scalar loss, shape `[1]`, differentiable w.r.t. the embeddings.
    pub loss: Tensor<1>,
    /// Counts of triplets.
    pub stats: TripletStats,
}

/// A triplet as batch indices `(anchor, positive, negative)`.
pub type Triplet = (usize, usize, usize);

impl TripletLoss {
    /// A loss with the given margin and mining on normalised embeddings.
    pub fn new(margin: f32, mining: Mining) -> Self {
        TripletLoss { margin, mining, normalize: true }
    }

    /// Evaluates the loss on a batch.
    ///
    /// # Shapes
    /// - `embeddings`: `[B, d]`, `labels`: `B` class ids → loss `[1]`
    ///
    /// # Errors
    /// [`ModelError::Shape`] when `labels.len() != B`; [`ModelError::TensorRead`] if the
    /// distances cannot be read back for mining.
    pub fn forward(
        &self,
        embeddings: Tensor<2>,
        labels: &[u32],
    ) -> Result<TripletOutput, ModelError> {
        let [b, _] = embeddings.dims();
        if labels.len() != b {
            return Err(ModelError::Shape(format!(
                "triplet loss: {b} embeddings but {} labels",
                labels.len()
            )));
        }
        let x = if self.normalize { l2_normalize(embeddings) } else { embeddings };
        let dist = pairwise_distances(x); // [B, B]
        let host: Vec<f64> = dist
            .clone()
            .detach()
            .try_into_vec_as::<f64>()
            .map_err(|e| ModelError::TensorRead(e.to_string()))?;
        let (triplets, candidates) = mine(&host, labels, self.margin as f64, self.mining);
        let m = self.margin as f64;
        let active = triplets
            .iter()
            .filter(|&&(a, p, n)| host[a * b + p] - host[a * b + n] + m > 0.0)
            .count();
        let stats = TripletStats { candidates, mined: triplets.len(), active };
        let device = dist.device();
        if triplets.is_empty() {
            // Keep the graph connected so that `backward` works and gives zero gradients.
            let loss = dist.sum().mul_scalar(0.0);
            return Ok(TripletOutput { loss, stats });
        }
        let index = |f: &dyn Fn(&Triplet) -> usize| -> Tensor<1, Int> {
            let v: Vec<i64> = triplets.iter().map(|t| f(t) as i64).collect();
            let n = v.len();
            Tensor::from_data(TensorData::new(v, [n]), &device)
        };
        let flat = dist.reshape([b * b]); // [B*B]
        let d_ap = flat.clone().select(0, index(&|&(a, p, _)| a * b + p)); // [T]
        let d_an = flat.select(0, index(&|&(a, _, n)| a * b + n)); // [T]
        let per_triplet = relu((d_ap - d_an).add_scalar(self.margin as f64)); // [T]
        let loss = per_triplet.sum().div_scalar(active.max(1) as f64); // [1]
        Ok(TripletOutput { loss, stats })
    }
}

/// Euclidean distances between all rows, computed from differences (exact at 0; the square root
/// is taken of `max(‖·‖², 1e-12)` so that its gradient stays finite on the diagonal).
///
/// # Shapes
/// - `x`: `[B, d]` → `[B, B]`
pub fn pairwise_distances(x: Tensor<2>) -> Tensor<2> {
    let [b, d] = x.dims();
    let xi = x.clone().reshape([b, 1, d]); // [B, 1, d]
    let xj = x.reshape([1, b, d]); // [1, B, d]
    let diff = xi - xj; // [B, B, d]
    diff.square().sum_dim(2).reshape([b, b]).clamp_min(1e-12).sqrt() // [B, B]
}

/// Mines triplets from a row-major `[B, B]` distance matrix. Returns the triplets and the number
/// of candidates (see [`TripletStats::candidates`]).
pub fn mine(dist: &[f64], labels: &[u32], margin: f64, mining: Mining) -> (Vec<Triplet>, usize) {
    let b = labels.len();
    let d = |i: usize, j: usize| dist[i * b + j];
    let mut out = Vec::new();
    let mut candidates = 0;
    for a in 0..b {
        let positives = (0..b).filter(|&p| p != a && labels[p] == labels[a]);
        let negatives: Vec<usize> = (0..b).filter(|&n| labels[n] != labels[a]).collect();
        match mining {
            Mining::All | Mining::SemiHard => {
                for p in positives {
                    for &n in &negatives {
                        candidates += 1;
                        let gap = d(a, n) - d(a, p); // PML's triplet_margin
                        if mining == Mining::All || (gap > 0.0 && gap <= margin) {
                            out.push((a, p, n));
                        }
                    }
                }
            }
            Mining::BatchHard => {
                // First index wins ties (as torch.max / torch.min).
                let hardest_p = positives.fold(None, |best: Option<usize>, p| match best {
                    Some(q) if d(a, q) >= d(a, p) => Some(q),
                    _ => Some(p),
                });
                let hardest_n =
                    negatives.iter().copied().fold(None, |best: Option<usize>, n| match best {
                        Some(q) if d(a, q) <= d(a, n) => Some(q),
                        _ => Some(n),
                    });
                if let (Some(p), Some(n)) = (hardest_p, hardest_n) {
                    candidates += 1;
                    out.push((a, p, n));
                }
            }
        }
    }
    (out, candidates)
}

/// Softmax cross-entropy, mean over the batch: `−(1/B) Σ_i log softmax(logits_i)[y_i]`.
///
/// # Shapes
/// - `logits`: `[B, C]`, `labels`: `B` class indices in `0..C` → `[1]`
///
/// # Errors
/// [`ModelError::Shape`] when sizes disagree or a label is `≥ C`.
pub fn cross_entropy(logits: Tensor<2>, labels: &[u32]) -> Result<Tensor<1>, ModelError> {
    let [b, c] = logits.dims();
    if labels.len() != b {
        return Err(ModelError::Shape(format!(
            "cross-entropy: {b} rows but {} labels",
            labels.len()
        )));
    }
    if let Some(bad) = labels.iter().find(|&&y| y as usize >= c) {
        return Err(ModelError::Shape(format!(
            "cross-entropy: label {bad} ≥ number of classes {c}"
        )));
    }
    let device = logits.device();
    let idx: Vec<i64> = labels.iter().map(|&y| y as i64).collect();
    let idx = Tensor::<2, Int>::from_data(TensorData::new(idx, [b, 1]), &device); // [B, 1]
    let logp = log_softmax(logits, 1); // [B, C]
    Ok(logp.gather(1, idx).mean().neg()) // [1]
}
