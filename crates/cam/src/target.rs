//! Targets: what EmbeddingCAM differentiates. A target turns a batch of embeddings and one proxy
//! per row into one score per row (docs/method.md, "The target score").
//!
//! The embedding `e` is either the network's output before L2 normalisation (`z`, the default:
//! the paper differentiates the network's output) or after it (`y = z/‖z‖`). The similarity is
//! the dot product `e·p` (the paper), cosine, negative squared distance, or any closure.
//!
//! Besides the score itself (used through autodiff), [`Target::grad_z`] gives `∂s/∂z`
//! analytically for the built-in similarities: that is what the closed form needs.

use std::fmt;
use std::sync::Arc;

use burn::tensor::Tensor;

/// Which embedding the score is computed on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Space {
    /// `e = z`, the head's output before L2 normalisation (the default).
    #[default]
    PreNorm,
    /// `e = y = z / max(‖z‖, 1e-12)`, normalised here whether or not the network normalises.
    Normalized,
}

impl Space {
    /// `pre-norm` or `normalized`.
    pub fn name(self) -> &'static str {
        match self {
            Space::PreNorm => "pre-norm",
            Space::Normalized => "normalized",
        }
    }
}

/// A user score: `f(e [N, d], p [N, d]) -> s [N]`, one score per row. It must be built from
/// tensor operations on `e` so that autodiff can differentiate it.
pub type ScoreFn = dyn Fn(Tensor<2>, Tensor<2>) -> Tensor<1> + Send + Sync;

/// How an embedding and a proxy make a score.
#[derive(Clone)]
pub enum Similarity {
    /// `s = e·p` (the paper).
    Dot,
    /// `s = e·p / (‖e‖ ‖p‖)`.
    Cosine,
    /// `s = −‖e − p‖²`.
    NegSqDist,
    /// Any closure, with a name for the outputs.
    Custom {
        /// The name written to indexes and galleries.
        name: String,
        /// The score.
        f: Arc<ScoreFn>,
    },
}

impl fmt::Debug for Similarity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl Similarity {
    /// `dot`, `cosine`, `neg-sq-dist` or the custom name.
    pub fn name(&self) -> String {
        match self {
            Similarity::Dot => "dot".into(),
            Similarity::Cosine => "cosine".into(),
            Similarity::NegSqDist => "neg-sq-dist".into(),
            Similarity::Custom { name, .. } => name.clone(),
        }
    }
}

/// A target: a similarity on a chosen embedding space.
#[derive(Clone, Debug)]
pub struct Target {
    /// The similarity.
    pub similarity: Similarity,
    /// The embedding it is computed on.
    pub space: Space,
}

impl Default for Target {
    fn default() -> Self {
        Target::dot()
    }
}

/// Row-wise squared norm, `[N, d] -> [N, 1]`.
fn sq_norm(t: Tensor<2>) -> Tensor<2> {
    t.square().sum_dim(1)
}

/// Row-wise norm clamped at `1e-12`, `[N, d] -> [N, 1]`.
fn norm(t: Tensor<2>) -> Tensor<2> {
    sq_norm(t).sqrt().clamp_min(1e-12)
}

/// Row-wise dot product, `[N, d] × [N, d] -> [N, 1]`.
fn dot(a: Tensor<2>, b: Tensor<2>) -> Tensor<2> {
    (a * b).sum_dim(1)
}

/// Project `h` onto the tangent space of the unit sphere at `y` and divide by `‖z‖`:
/// `(h − (y·h) y) / ‖z‖`, the chain rule through `y = z/‖z‖`.
fn through_normalization(h: Tensor<2>, y: Tensor<2>, z_norm: Tensor<2>) -> Tensor<2> {
    let yh = dot(y.clone(), h.clone());
    (h - y * yh) / z_norm
}

impl Target {
    /// `s = z·p` on the pre-normalisation embedding: the paper's target and the default.
    pub fn dot() -> Self {
        Target { similarity: Similarity::Dot, space: Space::PreNorm }
    }

    /// `s = cos(z, p)`.
    pub fn cosine() -> Self {
        Target { similarity: Similarity::Cosine, space: Space::PreNorm }
    }

    /// `s = −‖z − p‖²`.
    pub fn neg_sq_dist() -> Self {
        Target { similarity: Similarity::NegSqDist, space: Space::PreNorm }
    }

    /// A user closure `f(e, p) -> s` (one score per row).
    pub fn custom(
        name: impl Into<String>,
        f: impl Fn(Tensor<2>, Tensor<2>) -> Tensor<1> + Send + Sync + 'static,
    ) -> Self {
        Target {
            similarity: Similarity::Custom { name: name.into(), f: Arc::new(f) },
            space: Space::PreNorm,
        }
    }

    /// The same similarity on another embedding space.
    pub fn on(mut self, space: Space) -> Self {
        self.space = space;
        self
    }

    /// A short name, `dot@pre-norm`, for indexes.
    pub fn name(&self) -> String {
        format!("{}@{}", self.similarity.name(), self.space.name())
    }

    /// The embedding the score sees: `z` or `z/‖z‖`.
    ///
    /// # Shapes
    /// - `z`: `[N, d]` → `[N, d]`
    pub fn embed(&self, z: Tensor<2>) -> Tensor<2> {
        match self.space {
            Space::PreNorm => z,
            Space::Normalized => z.clone() / norm(z),
        }
    }

    /// The score of each row, differentiable: `s_n = sim(e_n, p_n)` with `e = embed(z)`.
    ///
    /// # Shapes
    /// - `z`, `p`: `[N, d]` → `[N]`
    pub fn score(&self, z: Tensor<2>, p: Tensor<2>) -> Tensor<1> {
        let n = z.dims()[0];
        let e = self.embed(z);
        match &self.similarity {
            Similarity::Dot => dot(e, p).reshape([n]),
            Similarity::Cosine => (dot(e.clone(), p.clone()) / (norm(e) * norm(p))).reshape([n]),
            Similarity::NegSqDist => sq_norm(e - p).neg().reshape([n]),
            Similarity::Custom { f, .. } => f(e, p),
        }
    }

    /// `∂s/∂e` at `e` for the built-in similarities; `None` for a closure.
    ///
    /// - dot: `p`
    /// - cosine: `(p̂ − (ê·p̂) ê) / ‖e‖`
    /// - negative squared distance: `−2 (e − p)`
    fn grad_e(&self, e: Tensor<2>, p: Tensor<2>) -> Option<Tensor<2>> {
        match &self.similarity {
            Similarity::Dot => Some(p),
            Similarity::Cosine => {
                let e_norm = norm(e.clone());
                let e_hat = e / e_norm.clone();
                let p_hat = p.clone() / norm(p);
                Some(through_normalization(p_hat, e_hat, e_norm))
            }
            Similarity::NegSqDist => Some((e - p).mul_scalar(-2.0)),
            Similarity::Custom { .. } => None,
        }
    }

    /// `g = ∂s/∂z` without a backward pass through the network (docs/method.md, the closed form):
    /// on `z`, `g = ∂s/∂e`; on `y = z/‖z‖`, `g = (h − (y·h) y)/‖z‖` with `h = ∂s/∂y` (for the
    /// dot product, `g = (p − (y·p) y)/‖z‖`). A closure is differentiated by autodiff on `e`
    /// alone (a graph of two `[N, d]` tensors, no network); a closure that ignores `e` has a zero
    /// gradient.
    ///
    /// # Shapes
    /// - `z`, `p`: `[N, d]` → `[N, d]`
    pub fn grad_z(&self, z: Tensor<2>, p: Tensor<2>) -> Tensor<2> {
        let z = z.detach();
        let h_of = |e: Tensor<2>| -> Tensor<2> {
            match self.grad_e(e.clone(), p.clone()) {
                Some(h) => h,
                None => custom_grad(self, e, p.clone()),
            }
        };
        match self.space {
            Space::PreNorm => h_of(z),
            Space::Normalized => {
                let z_norm = norm(z.clone());
                let y = z / z_norm.clone();
                let h = h_of(y.clone());
                through_normalization(h, y, z_norm)
            }
        }
    }
}

/// `∂f(e, p)/∂e` for a closure, by autodiff on a detached leaf `e`.
fn custom_grad(target: &Target, e: Tensor<2>, p: Tensor<2>) -> Tensor<2> {
    let Similarity::Custom { f, .. } = &target.similarity else {
        return Tensor::zeros(e.dims(), &e.device());
    };
    let leaf = e.clone().detach().autodiff().require_grad();
    let s = f(leaf.clone(), p.detach()).sum();
    if !s.is_tracked() {
        return Tensor::zeros(e.dims(), &e.device());
    }
    let grads = s.backward();
    leaf.grad(&grads).unwrap_or_else(|| Tensor::zeros(e.dims(), &e.device()))
}

/// Host-side `f64` row dot product (used for proxies and warnings).
pub(crate) fn host_dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum()
}

/// Host-side norm.
pub(crate) fn host_norm(a: &[f32]) -> f64 {
    host_dot(a, a).sqrt()
}
