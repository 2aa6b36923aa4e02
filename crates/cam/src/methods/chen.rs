//! Chen et al. 2020, "Adapting Grad-CAM for Embedding Networks" (WACV 2020), as a baseline:
//! channel weights learnt from triplets on the training set, transferred at test time without
//! any backward pass.
//!
//! **Fit.** For each training image `a` (the anchor), draw `T` triplets `(a, p_t, n_t)` with `p_t`
//! of the same class and `n_t` of another (seeded). The score is the negated triplet loss,
//! `s = (1/T) Σ_t [ℓ_t > 0] (‖e_a − e_n‖² − ‖e_a − e_p‖²)`, `ℓ_t = ‖e_a − e_p‖² − ‖e_a − e_n‖² + m`
//! (without a margin every triplet counts), so that positive weights mark evidence that pulls the
//! anchor towards its class (Grad-CAM's sign convention; Chen et al. back-propagate the loss).
//! With `e_p, e_n` fixed, `∂s/∂e_a = (2/T) Σ_t [ℓ_t > 0] (e_p − e_n) =: q` and the hinge pattern is
//! piecewise constant, so `∂s/∂A = ∂(e_a·q)/∂A`: one backward (or the closed form) per batch of
//! anchors. The anchor's weights are `α_k = mean_ij ∂s/∂A^k_ij`.
//!
//! **Transfer.** At test time, `A` and `z` come from one forward pass; the weights of the nearest
//! training embedding (cosine) are reused: `H = ReLU(Σ_k α^{nn}_k A^k)`. Optionally the training
//! set is summarised by spherical k-means centres, each carrying the mean weights of its members.

use std::collections::HashMap;

use burn::tensor::Tensor;
use embcam_cub::Progress;
use embcam_model::Staged;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;

use crate::error::{CamError, Result};
use crate::gradcam::{CamOptions, CamOutput, ClosedForm, GradientPath, alphas, forward};
use crate::maps::CamMaps;
use crate::proxy::{Embeddings, ProxyBatch};
use crate::target::{Space, Target};
use crate::util;

/// Settings of the fit.
#[derive(Clone, Debug)]
pub struct ChenConfig {
    /// Triplets drawn per anchor (`T`).
    pub triplets_per_anchor: usize,
    /// Triplet margin `m`; `None` counts every triplet.
    pub margin: Option<f32>,
    /// Seed of the triplet draw (combined with the anchor's id).
    pub seed: u64,
    /// The embedding the triplet distances use.
    pub space: Space,
    /// Closed form where it applies.
    pub closed_form: ClosedForm,
}

impl Default for ChenConfig {
    /// 16 triplets per anchor, margin 0.2, seed 0, distances on the normalised embedding.
    fn default() -> Self {
        ChenConfig {
            triplets_per_anchor: 16,
            margin: Some(0.2),
            seed: 0,
            space: Space::Normalized,
            closed_form: ClosedForm::Auto,
        }
    }
}

/// Channel weights per training image (or per k-means centre), keyed by unit embeddings.
#[derive(Clone, Debug)]
pub struct ChenWeights {
    stage: String,
    k: usize,
    dim: usize,
    /// Training image ids (empty for centres).
    ids: Vec<u32>,
    /// Unit embeddings `[N, d]`.
    keys: Vec<f32>,
    /// Weights `[N, K]`.
    weights: Vec<f32>,
    /// Per entry, the triplets drawn: (positive id, negative id, counted).
    triplets: Vec<Vec<Triplet>>,
}

/// One drawn triplet of an anchor: where its weights came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Triplet {
    /// The positive's image id.
    pub positive: u32,
    /// The negative's image id.
    pub negative: u32,
    /// Whether it counted (hinge active, or no margin).
    pub active: bool,
}

fn unit(v: &[f32]) -> Vec<f32> {
    let n = v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt().max(1e-12);
    v.iter().map(|&x| (x as f64 / n) as f32).collect()
}

fn embed_host(space: Space, v: &[f32]) -> Vec<f32> {
    match space {
        Space::PreNorm => v.to_vec(),
        Space::Normalized => unit(v),
    }
}

fn sq_dist(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| (x as f64 - y as f64).powi(2)).sum()
}

impl ChenWeights {
    /// Fit the weights at `stage` from training batches `(x [B, 3, H, W], image ids)` whose
    /// embeddings (with labels) are in `train`. Advances `progress` by the images seen.
    pub fn fit<M: Staged, I>(
        model: &M,
        stage: &str,
        train: &Embeddings,
        batches: I,
        cfg: &ChenConfig,
        progress: &dyn Progress,
    ) -> Result<Self>
    where
        I: IntoIterator<Item = Result<(Tensor<4>, Vec<u32>)>>,
    {
        if cfg.triplets_per_anchor == 0 {
            return Err(CamError::Invalid("triplets_per_anchor must be at least 1".into()));
        }
        let mut by_class: HashMap<u32, Vec<usize>> = HashMap::new();
        for (r, &l) in train.labels().iter().enumerate() {
            by_class.entry(l).or_default().push(r);
        }
        let mut opts = CamOptions::new(stage);
        opts.target = Target::dot().on(cfg.space);
        opts.closed_form = cfg.closed_form;
        let (mut ids, mut keys, mut weights, mut triplets) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut k_ch = 0;
        for batch in batches {
            let (x, batch_ids) = batch?;
            let fwd = forward(model, x, &batch_ids, None, stage)?;
            let [_, k, _, _] = fwd.a.dims();
            let [_, d] = fwd.z.dims();
            if d != train.dim() {
                return Err(CamError::ProxyDim {
                    what: "training embeddings".into(),
                    expected: d,
                    got: train.dim(),
                });
            }
            k_ch = k;
            let z = util::to_vec(fwd.z.clone())?;
            let mut qs = Vec::with_capacity(batch_ids.len());
            for (i, &id) in batch_ids.iter().enumerate() {
                let row = train.row_of(id).ok_or_else(|| {
                    CamError::Invalid(format!("image {id} is not in the training embeddings"))
                })?;
                let label = train.labels()[row];
                let pos: Vec<usize> =
                    by_class[&label].iter().copied().filter(|&r| r != row).collect();
                let neg: Vec<usize> =
                    (0..train.len()).filter(|&r| train.labels()[r] != label).collect();
                if pos.is_empty() {
                    return Err(CamError::EmptyClass {
                        class: label,
                        detail: format!("no positive for anchor image {id}"),
                    });
                }
                if neg.is_empty() {
                    return Err(CamError::Invalid(format!(
                        "image {id}: no training image of another class"
                    )));
                }
                let e_a = embed_host(cfg.space, &z[i * d..(i + 1) * d]);
                let mut rng = StdRng::seed_from_u64(
                    cfg.seed ^ (id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                );
                let mut q = vec![0.0f64; d];
                let mut drawn = Vec::with_capacity(cfg.triplets_per_anchor);
                for _ in 0..cfg.triplets_per_anchor {
                    let rp = pos[rng.random_range(0..pos.len())];
                    let rn = neg[rng.random_range(0..neg.len())];
                    let e_p = embed_host(cfg.space, train.row(rp));
                    let e_n = embed_host(cfg.space, train.row(rn));
                    let active = cfg
                        .margin
                        .is_none_or(|m| sq_dist(&e_a, &e_p) - sq_dist(&e_a, &e_n) + m as f64 > 0.0);
                    drawn.push(Triplet {
                        positive: train.ids()[rp],
                        negative: train.ids()[rn],
                        active,
                    });
                    if active {
                        for j in 0..d {
                            q[j] += 2.0 * (e_p[j] as f64 - e_n[j] as f64)
                                / cfg.triplets_per_anchor as f64;
                        }
                    }
                }
                qs.push(vec![q.iter().map(|&v| v as f32).collect::<Vec<f32>>()]);
                triplets.push(drawn);
                keys.extend(unit(&z[i * d..(i + 1) * d]));
            }
            let proxies = ProxyBatch::from_vectors(batch_ids.clone(), vec!["triplet".into()], qs)?;
            weights.extend(alphas(model, &fwd, &proxies, &opts)?);
            progress.advance(batch_ids.len() as u64);
            ids.extend(batch_ids);
        }
        if ids.is_empty() {
            return Err(CamError::Invalid(
                "no training batch to fit Chen et al.'s weights on".into(),
            ));
        }
        Ok(ChenWeights {
            stage: stage.to_string(),
            k: k_ch,
            dim: train.dim(),
            ids,
            keys,
            weights,
            triplets,
        })
    }

    /// Number of stored weight vectors.
    pub fn len(&self) -> usize {
        self.keys.len() / self.dim.max(1)
    }
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The training image ids (empty after [`ChenWeights::kmeans`]).
    pub fn ids(&self) -> &[u32] {
        &self.ids
    }
    /// The triplets behind entry `i` (empty after [`ChenWeights::kmeans`]).
    pub fn triplets(&self, i: usize) -> &[Triplet] {
        self.triplets.get(i).map_or(&[], |t| t.as_slice())
    }
    /// The weights of entry `i`, `K` values.
    pub fn weights(&self, i: usize) -> &[f32] {
        &self.weights[i * self.k..(i + 1) * self.k]
    }

    /// Summarise by `n` spherical k-means centres (seeded; `iters` Lloyd steps): each centre's
    /// key is the normalised mean of its members' keys, its weights their mean weights.
    pub fn kmeans(&self, n: usize, iters: usize, seed: u64) -> Result<ChenWeights> {
        let len = self.len();
        if n == 0 || n > len {
            return Err(CamError::Invalid(format!(
                "k-means with {n} centres on {len} training images"
            )));
        }
        let d = self.dim;
        let mut order: Vec<usize> = (0..len).collect();
        order.shuffle(&mut StdRng::seed_from_u64(seed));
        let mut centres: Vec<Vec<f32>> =
            order[..n].iter().map(|&i| self.keys[i * d..(i + 1) * d].to_vec()).collect();
        let mut assign = vec![0usize; len];
        for _ in 0..iters.max(1) {
            assign = (0..len)
                .into_par_iter()
                .map(|i| nearest(&centres, &self.keys[i * d..(i + 1) * d]))
                .collect();
            for (c, centre) in centres.iter_mut().enumerate() {
                let mut sum = vec![0.0f32; d];
                let mut count = 0;
                for i in (0..len).filter(|&i| assign[i] == c) {
                    sum.iter_mut().zip(&self.keys[i * d..(i + 1) * d]).for_each(|(s, x)| *s += x);
                    count += 1;
                }
                if count > 0 {
                    *centre = unit(&sum);
                }
            }
        }
        let mut weights = vec![0.0f32; n * self.k];
        let mut counts = vec![0usize; n];
        for i in 0..len {
            counts[assign[i]] += 1;
            weights[assign[i] * self.k..(assign[i] + 1) * self.k]
                .iter_mut()
                .zip(self.weights(i))
                .for_each(|(w, x)| *w += x);
        }
        for c in 0..n {
            let cnt = counts[c].max(1) as f32;
            weights[c * self.k..(c + 1) * self.k].iter_mut().for_each(|w| *w /= cnt);
        }
        Ok(ChenWeights {
            stage: self.stage.clone(),
            k: self.k,
            dim: d,
            ids: vec![],
            keys: centres.concat(),
            weights,
            triplets: vec![],
        })
    }

    /// Transfer: maps for a batch (`ids` name its images) from the weights of each image's nearest
    /// stored key. One forward pass, no backward. One proxy column, `chen-transfer`.
    pub fn explain<M: Staged>(
        &self,
        model: &M,
        x: Tensor<4>,
        ids: &[u32],
        progress: &dyn Progress,
    ) -> Result<CamOutput> {
        let [_, _, in_h, in_w] = x.dims();
        let fwd = forward(model, x, ids, None, &self.stage)?;
        let [b, k, h, w] = fwd.a.dims();
        let [_, d] = fwd.z.dims();
        if k != self.k || d != self.dim {
            return Err(CamError::Shape(format!(
                "weights were fitted for K = {}, d = {} but the network gives K = {k}, d = {d}",
                self.k, self.dim
            )));
        }
        let z = util::to_vec(fwd.z.clone())?;
        let keys: Vec<Vec<f32>> = self.keys.chunks_exact(d).map(|c| c.to_vec()).collect();
        let mut alpha = Vec::with_capacity(b * k);
        for i in 0..b {
            let nn = nearest(&keys, &unit(&z[i * d..(i + 1) * d]));
            alpha.extend_from_slice(self.weights(nn));
        }
        let alpha_t = util::tensor(alpha, [b, 1, k], &fwd.a.device());
        let raw = util::to_vec(crate::closed_form::gradcam_maps(alpha_t, fwd.a))?;
        let maps = CamMaps::new(
            "chen".into(),
            self.stage.clone(),
            "triplet-transfer".into(),
            ids.to_vec(),
            vec!["chen-transfer".into()],
            (h, w),
            (in_h, in_w),
            raw,
        );
        if let Some(bi) = maps.first_non_finite() {
            return Err(CamError::NonFinite { what: format!("image {}: chen map", ids[bi]) });
        }
        progress.advance(b as u64);
        Ok(CamOutput { maps, path: GradientPath::None, warnings: vec![] })
    }
}

/// Index of the key with the largest dot product (ties: the lowest index).
fn nearest(keys: &[Vec<f32>], q: &[f32]) -> usize {
    let mut best = (0, f64::NEG_INFINITY);
    for (i, key) in keys.iter().enumerate() {
        let s: f64 = key.iter().zip(q).map(|(&a, &b)| a as f64 * b as f64).sum();
        if s > best.1 {
            best = (i, s);
        }
    }
    best.0
}
