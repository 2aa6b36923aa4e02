//! EmbeddingCAM: Grad-CAM on an embedding target (docs/method.md, "EmbeddingCAM"), and the driver that runs
//! every method of the family on a batch.
//!
//! For image `x`, stage activation `A = f_stage(x)` (`[K, h, w]`, `Z = h·w`) and proxy `p`:
//! `s = sim(e(x), p)` ([`Target`]), `α_k = (1/Z) Σ_ij ∂s/∂A^k_ij`, raw map `Σ_k α_k A^k`, heatmap
//! `H = ReLU(raw)`, upsampled bilinearly when scored or drawn ([`CamMaps`]).
//!
//! One backward serves the whole batch and many proxies: the activation is repeated once per
//! proxy column (`[B·P, K, h, w]`, row `b·P + p`), cut from the graph as a leaf, sent through the
//! rest of the network, and `Σ_rows s_row` is differentiated. In eval mode rows are independent,
//! so `∂(Σ s)/∂A_row = ∂s_row/∂A_row`. Rows are processed `max_rows` at a time.
//!
//! Pass the network in eval mode (`model.valid()`): BatchNorm in training mode would couple the
//! images of a batch.

use burn::tensor::Tensor;
use embcam_cub::Progress;
use embcam_model::Staged;

use crate::closed_form;
use crate::error::{CamError, Result};
use crate::maps::{CamMaps, CamWarning};
use crate::methods::{eigencam, gradcam_pp, hirescam, layercam, scorecam, xgradcam};
use crate::proxy::ProxyBatch;
use crate::target::{Similarity, Space, Target};
use crate::util;

/// Whether to use the closed form for GAP → linear heads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ClosedForm {
    /// Use it where it applies (last stage, `linear_head()` is `Some`, checked on the batch).
    #[default]
    Auto,
    /// Always use autodiff.
    Off,
    /// Use it, and fail where it does not apply.
    Require,
}

/// How the gradients of a result were obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GradientPath {
    /// A backward pass through the rest of the network.
    Autodiff,
    /// The closed form `α = Wᵀ g / Z`.
    ClosedForm,
    /// No gradient (Score-CAM, Eigen-CAM).
    None,
}

/// A CAM method.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// Grad-CAM on the target (EmbeddingCAM): `α_k = mean_ij G^k_ij`, raw `Σ_k α_k A^k`.
    GradCam,
    /// Grad-CAM++ ([`crate::methods::gradcam_pp`]).
    GradCamPlusPlus,
    /// HiResCAM ([`crate::methods::hirescam`]).
    HiResCam,
    /// XGrad-CAM ([`crate::methods::xgradcam`]).
    XGradCam,
    /// LayerCAM ([`crate::methods::layercam`]).
    LayerCam,
    /// Score-CAM ([`crate::methods::scorecam`]): target change of masked inputs, no gradient.
    ScoreCam,
    /// Eigen-CAM ([`crate::methods::eigencam`]): target-free, first principal component.
    EigenCam,
}

impl Method {
    /// Every method.
    pub const ALL: [Method; 7] = [
        Method::GradCam,
        Method::GradCamPlusPlus,
        Method::HiResCam,
        Method::XGradCam,
        Method::LayerCam,
        Method::ScoreCam,
        Method::EigenCam,
    ];

    /// `embeddingcam` (Grad-CAM on an embedding target, the paper's name), `gradcam++`,
    /// `hirescam`, `xgradcam`, `layercam`, `scorecam`, `eigencam`: the names heatmap indexes and
    /// the runner's tables use.
    pub fn name(self) -> &'static str {
        match self {
            Method::GradCam => "embeddingcam",
            Method::GradCamPlusPlus => "gradcam++",
            Method::HiResCam => "hirescam",
            Method::XGradCam => "xgradcam",
            Method::LayerCam => "layercam",
            Method::ScoreCam => "scorecam",
            Method::EigenCam => "eigencam",
        }
    }

    /// Whether the map ignores the target (Eigen-CAM): every proxy column holds the same map.
    pub fn is_target_free(self) -> bool {
        matches!(self, Method::EigenCam)
    }

    /// Whether the method needs `∂s/∂A`.
    pub fn uses_gradient(self) -> bool {
        !matches!(self, Method::ScoreCam | Method::EigenCam)
    }

    /// The raw map of a gradient method from `A` and `G` (both `[N, K, h, w]`) → `[N, 1, h, w]`.
    fn combine(self, a: Tensor<4>, g: Tensor<4>) -> Tensor<4> {
        match self {
            Method::GradCam => (g.mean_dims(&[2, 3]) * a).sum_dim(1),
            Method::GradCamPlusPlus => gradcam_pp::combine(a, g),
            Method::HiResCam => hirescam::combine(a, g),
            Method::XGradCam => xgradcam::combine(a, g),
            Method::LayerCam => layercam::combine(a, g),
            Method::ScoreCam | Method::EigenCam => a.sum_dim(1).zeros_like(),
        }
    }
}

/// What every method run needs besides the network, the images and the proxies.
#[derive(Clone, Debug)]
pub struct CamOptions {
    /// The stage whose activation is explained (one of `stage_names()`).
    pub stage: String,
    /// The score to differentiate.
    pub target: Target,
    /// Closed form for GAP → linear heads.
    pub closed_form: ClosedForm,
    /// Rows (image × proxy) per pass through the head and backward; bounds memory.
    pub max_rows: usize,
    /// Masked images per forward pass in Score-CAM.
    pub score_cam_batch: usize,
}

impl CamOptions {
    /// Defaults at `stage`: the paper's target `z·p`, closed form where it applies, 256 rows per
    /// backward, 64 masked images per Score-CAM forward.
    pub fn new(stage: impl Into<String>) -> Self {
        CamOptions {
            stage: stage.into(),
            target: Target::dot(),
            closed_form: ClosedForm::Auto,
            max_rows: 256,
            score_cam_batch: 64,
        }
    }
}

/// The maps of one method and how they were made.
#[derive(Clone, Debug)]
pub struct CamOutput {
    /// The maps.
    pub maps: CamMaps,
    /// How the gradient was obtained.
    pub path: GradientPath,
    /// Things the caller should know (the library does not print).
    pub warnings: Vec<CamWarning>,
}

/// The stage activation of a batch and the gradient of every (image, proxy) score.
#[derive(Clone, Debug)]
pub struct StageGradients {
    /// `A`, `[B, K, h, w]`.
    pub activation: Tensor<4>,
    /// `∂s_bp/∂A_b`, `[B·P, K, h, w]`, row `b·P + p`.
    pub grad: Tensor<4>,
    /// `s_bp`, `B·P` values, row `b·P + p`.
    pub scores: Vec<f32>,
    /// How the gradient was obtained.
    pub path: GradientPath,
}

/// Check that `stage` exists; the error lists the stages that do.
pub fn check_stage<M: Staged>(model: &M, stage: &str) -> Result<()> {
    let names = model.stage_names();
    if names.contains(&stage) {
        Ok(())
    } else {
        Err(CamError::UnknownStage {
            stage: stage.to_string(),
            available: names.iter().map(|s| s.to_string()).collect(),
        })
    }
}

/// The forward pass shared by every method: `A` (detached, plain) and `z`, with the checks on
/// sizes and finiteness that name the offending image.
pub(crate) struct Forward {
    pub(crate) a: Tensor<4>,
    pub(crate) z: Tensor<2>,
}

pub(crate) fn forward<M: Staged>(
    model: &M,
    x: Tensor<4>,
    ids: &[u32],
    proxy_dim: Option<usize>,
    stage: &str,
) -> Result<Forward> {
    check_stage(model, stage)?;
    let [b, c, h, w] = x.dims();
    if b != ids.len() {
        return Err(CamError::Shape(format!(
            "batch has {b} images but {} image ids / proxy rows",
            ids.len()
        )));
    }
    if b == 0 || c == 0 || h == 0 || w == 0 {
        return Err(CamError::Invalid(format!("empty input batch {:?}", [b, c, h, w])));
    }
    let plain = x.device().without_autodiff();
    let x = x.detach().to_device(&plain);
    let a = model.forward_to(x, stage)?.detach();
    let z = model.forward_from(a.clone(), stage)?.detach();
    let [zb, d] = z.dims();
    if zb != b {
        return Err(CamError::Shape(format!("the head returned {zb} rows for {b} images")));
    }
    if let Some(pd) = proxy_dim
        && pd != d
    {
        return Err(CamError::ProxyDim {
            what: format!("image {} (batch of {b})", ids[0]),
            expected: d,
            got: pd,
        });
    }
    let zv = util::to_vec(z.clone())?;
    if let Some(i) = zv.iter().position(|v| !v.is_finite()) {
        return Err(CamError::NonFinite { what: format!("image {}: embedding", ids[i / d]) });
    }
    Ok(Forward { a, z })
}

/// `[B, …]` → `[B·n, …]` with every row repeated `n` times in place (row `b·n + j`).
pub(crate) fn repeat_rows4(t: Tensor<4>, n: usize) -> Tensor<4> {
    let [b, k, h, w] = t.dims();
    t.unsqueeze_dim::<5>(1).expand([b, n, k, h, w]).reshape([b * n, k, h, w])
}

/// `[B, d]` → `[B·n, d]`, row `b·n + j` = row `b`.
pub(crate) fn repeat_rows2(t: Tensor<2>, n: usize) -> Tensor<2> {
    let [b, d] = t.dims();
    t.unsqueeze_dim::<3>(1).expand([b, n, d]).reshape([b * n, d])
}

/// One chunk of proxy columns `p0..p1`: repeated activation, gradient (full or constant over
/// space) and scores.
struct Chunk {
    p0: usize,
    p1: usize,
    a_rep: Tensor<4>,
    grad: Tensor<4>,
    scores: Vec<f32>,
}

/// Walk the proxy columns in chunks of at most `max_rows` rows and hand each chunk's gradient to
/// `f`. With `head = Some((W, _))` the gradient is the closed form's constant, expanded over space.
fn gradient_chunks<M: Staged>(
    model: &M,
    fwd: &Forward,
    proxies: &ProxyBatch,
    opts: &CamOptions,
    head: Option<&Tensor<2>>,
    mut f: impl FnMut(Chunk) -> Result<()>,
) -> Result<()> {
    let [b, k, h, w] = fwd.a.dims();
    let n_p = proxies.n_proxies();
    let per_chunk = (opts.max_rows / b).clamp(1, n_p);
    let device = fwd.a.device();
    let mut p0 = 0;
    while p0 < n_p {
        let p1 = (p0 + per_chunk).min(n_p);
        let n = p1 - p0;
        let rows = b * n;
        let p_t = util::tensor(proxies.columns_slice(p0, p1), [rows, proxies.dim()], &device);
        let a_rep = repeat_rows4(fwd.a.clone(), n);
        let (grad, scores) = match head {
            Some(wt) => {
                let z_rep = repeat_rows2(fwd.z.clone(), n);
                let scores = util::to_vec(opts.target.score(z_rep.clone(), p_t.clone()))?;
                let g = closed_form::constant_grad(&opts.target, z_rep, p_t, wt.clone(), h * w); // [rows, K]
                (g.reshape([rows, k, 1, 1]).expand([rows, k, h, w]), scores)
            }
            None => {
                let leaf = a_rep.clone().detach().autodiff().require_grad();
                let z = model.forward_from(leaf.clone(), &opts.stage)?;
                let s = opts.target.score(z, p_t.to_device(&leaf.device()));
                let total = s.clone().sum();
                let grad = if total.is_tracked() {
                    let grads = total.backward();
                    leaf.grad(&grads)
                } else {
                    None
                };
                let grad = grad.unwrap_or_else(|| a_rep.zeros_like()).to_device(&device);
                (grad, util::to_vec(s.detach())?)
            }
        };
        f(Chunk { p0, p1, a_rep, grad, scores })?;
        p0 = p1;
    }
    Ok(())
}

/// Decide the gradient path for this batch.
fn choose_path<M: Staged>(
    model: &M,
    fwd: &Forward,
    opts: &CamOptions,
) -> Result<Option<(Tensor<2>, Tensor<1>)>> {
    match opts.closed_form {
        ClosedForm::Off => Ok(None),
        ClosedForm::Auto => Ok(closed_form::applicable(model, &opts.stage, &fwd.a, &fwd.z).ok()),
        ClosedForm::Require => closed_form::applicable(model, &opts.stage, &fwd.a, &fwd.z)
            .map(Some)
            .map_err(CamError::ClosedFormUnavailable),
    }
}

/// `A` and `∂s/∂A` for every (image, proxy) of a batch (the input of every gradient method; also
/// what the finite-difference test checks).
pub fn stage_gradients<M: Staged>(
    model: &M,
    x: Tensor<4>,
    proxies: &ProxyBatch,
    opts: &CamOptions,
) -> Result<StageGradients> {
    let fwd = forward(model, x, proxies.image_ids(), Some(proxies.dim()), &opts.stage)?;
    let head = choose_path(model, &fwd, opts)?;
    let [b, k, h, w] = fwd.a.dims();
    let n_p = proxies.n_proxies();
    let mut grads: Vec<Tensor<5>> = Vec::new();
    let mut scores = vec![0.0; b * n_p];
    gradient_chunks(model, &fwd, proxies, opts, head.as_ref().map(|h| &h.0), |c| {
        let n = c.p1 - c.p0;
        for bi in 0..b {
            for j in 0..n {
                scores[bi * n_p + c.p0 + j] = c.scores[bi * n + j];
            }
        }
        grads.push(c.grad.reshape([b, n, k, h, w]));
        Ok(())
    })?;
    let grad = Tensor::cat(grads, 1).reshape([b * n_p, k, h, w]);
    let path = if head.is_some() { GradientPath::ClosedForm } else { GradientPath::Autodiff };
    Ok(StageGradients { activation: fwd.a, grad, scores, path })
}

/// Run one method on a batch. See [`explain_many`].
pub fn explain<M: Staged>(
    model: &M,
    x: Tensor<4>,
    proxies: &ProxyBatch,
    method: Method,
    opts: &CamOptions,
    progress: &dyn Progress,
) -> Result<CamOutput> {
    let mut out = explain_many(model, x, proxies, &[method], opts, progress)?;
    out.pop().ok_or_else(|| CamError::Invalid("no method ran".into()))
}

/// Run several methods on one batch, sharing the forward pass and (for the gradient methods) the
/// gradients. `x` is `[B, 3, H, W]` on the network's device; `proxies` has one row per image.
/// Returns one [`CamOutput`] per method, in order. Advances `progress` by `B`.
pub fn explain_many<M: Staged>(
    model: &M,
    x: Tensor<4>,
    proxies: &ProxyBatch,
    methods: &[Method],
    opts: &CamOptions,
    progress: &dyn Progress,
) -> Result<Vec<CamOutput>> {
    if opts.max_rows == 0 || opts.score_cam_batch == 0 {
        return Err(CamError::Invalid("max_rows and score_cam_batch must be at least 1".into()));
    }
    let [_, _, in_h, in_w] = x.dims();
    let fwd = forward(model, x.clone(), proxies.image_ids(), Some(proxies.dim()), &opts.stage)?;
    let [b, _, h, w] = fwd.a.dims();
    let n_p = proxies.n_proxies();
    let mut grad_methods: Vec<Method> = Vec::new();
    for m in methods.iter().copied().filter(|m| m.uses_gradient()) {
        if !grad_methods.contains(&m) {
            grad_methods.push(m);
        }
    }
    let mut raws: Vec<Option<Vec<f32>>> = vec![None; methods.len()];
    let mut path = GradientPath::None;

    if !grad_methods.is_empty() {
        let head = choose_path(model, &fwd, opts)?;
        path = if head.is_some() { GradientPath::ClosedForm } else { GradientPath::Autodiff };
        let mut bufs: Vec<Vec<f32>> = vec![vec![0.0; b * n_p * h * w]; grad_methods.len()];
        // Grad-CAM in closed form: one [P, K] × [K, hw] product per image, no repetition of A.
        let fast_gradcam = head.is_some() && grad_methods.contains(&Method::GradCam);
        if let (true, Some((wt, _))) = (fast_gradcam, head.as_ref()) {
            let z_rep = repeat_rows2(fwd.z.clone(), n_p);
            let p_t =
                util::tensor(proxies.data().to_vec(), [b * n_p, proxies.dim()], &fwd.a.device());
            let [_, k, _, _] = fwd.a.dims();
            let alpha = closed_form::constant_grad(&opts.target, z_rep, p_t, wt.clone(), h * w)
                .reshape([b, n_p, k]);
            let maps = closed_form::gradcam_maps(alpha, fwd.a.clone());
            let i = grad_methods.iter().position(|&m| m == Method::GradCam).unwrap_or(0);
            bufs[i] = util::to_vec(maps)?;
        }
        let rest: Vec<(usize, Method)> = grad_methods
            .iter()
            .copied()
            .enumerate()
            .filter(|&(_, m)| !(fast_gradcam && m == Method::GradCam))
            .collect();
        if !rest.is_empty() {
            gradient_chunks(model, &fwd, proxies, opts, head.as_ref().map(|h| &h.0), |c| {
                let n = c.p1 - c.p0;
                for &(i, m) in &rest {
                    let raw = util::to_vec(m.combine(c.a_rep.clone(), c.grad.clone()))?; // [b·n, hw]
                    for bi in 0..b {
                        for j in 0..n {
                            let src = &raw[(bi * n + j) * h * w..(bi * n + j + 1) * h * w];
                            let dst = (bi * n_p + c.p0 + j) * h * w;
                            bufs[i][dst..dst + h * w].copy_from_slice(src);
                        }
                    }
                }
                Ok(())
            })?;
        }
        for (slot, m) in methods.iter().enumerate() {
            if let Some(i) = grad_methods.iter().position(|x| x == m) {
                raws[slot] = Some(bufs[i].clone());
            }
        }
    }
    for (slot, m) in methods.iter().enumerate() {
        match m {
            Method::ScoreCam => {
                raws[slot] = Some(scorecam::raw_maps(model, x.clone(), &fwd.a, proxies, opts)?)
            }
            Method::EigenCam => {
                let one = eigencam::raw_maps(&fwd.a)?; // [B, hw]
                let mut all = Vec::with_capacity(b * n_p * h * w);
                for bi in 0..b {
                    for _ in 0..n_p {
                        all.extend_from_slice(&one[bi * h * w..(bi + 1) * h * w]);
                    }
                }
                raws[slot] = Some(all);
            }
            _ => {}
        }
    }

    let mut outs = Vec::with_capacity(methods.len());
    for (m, raw) in methods.iter().zip(raws) {
        let raw =
            raw.ok_or_else(|| CamError::Invalid(format!("method {} produced no maps", m.name())))?;
        let target = if m.is_target_free() { String::new() } else { opts.target.name() };
        let maps = CamMaps::new(
            m.name().to_string(),
            opts.stage.clone(),
            target,
            proxies.image_ids().to_vec(),
            proxies.columns().to_vec(),
            (h, w),
            (in_h, in_w),
            raw,
        );
        if let Some(bi) = maps.first_non_finite() {
            return Err(CamError::NonFinite {
                what: format!("image {}: {} map", proxies.image_ids()[bi], m.name()),
            });
        }
        let warnings = warnings_for(*m, &maps, proxies, &opts.target);
        let p = if m.uses_gradient() { path } else { GradientPath::None };
        outs.push(CamOutput { maps, path: p, warnings });
    }
    progress.advance(b as u64);
    Ok(outs)
}

/// The warnings a result deserves.
fn warnings_for(
    m: Method,
    maps: &CamMaps,
    proxies: &ProxyBatch,
    target: &Target,
) -> Vec<CamWarning> {
    let mut out = Vec::new();
    let degenerate_target = target.space == Space::Normalized
        && matches!(target.similarity, Similarity::Dot | Similarity::Cosine);
    for (p, column) in proxies.columns().iter().enumerate() {
        if m.uses_gradient() && degenerate_target && proxies.column_is_single_point(p) {
            out.push(CamWarning::SinglePointOnNormalized {
                method: m.name().into(),
                column: column.clone(),
            });
        }
        let count = (0..maps.n_images()).filter(|&b| maps.is_zero(b, p)).count();
        if count > 0 {
            out.push(CamWarning::ZeroMaps {
                method: m.name().into(),
                column: column.clone(),
                count,
            });
        }
    }
    out
}

/// Grad-CAM weights `α_k = mean_ij ∂s/∂A^k_ij` of every (image, proxy) row of an already computed
/// forward pass, `[B·P, K]` row-major (row `b·P + p`).
pub(crate) fn alphas<M: Staged>(
    model: &M,
    fwd: &Forward,
    proxies: &ProxyBatch,
    opts: &CamOptions,
) -> Result<Vec<f32>> {
    let head = choose_path(model, fwd, opts)?;
    let [b, k, _, _] = fwd.a.dims();
    let n_p = proxies.n_proxies();
    let mut out = vec![0.0f32; b * n_p * k];
    gradient_chunks(model, fwd, proxies, opts, head.as_ref().map(|h| &h.0), |c| {
        let n = c.p1 - c.p0;
        let al = util::to_vec(c.grad.mean_dims(&[2, 3]))?; // [b·n, K]
        for bi in 0..b {
            for j in 0..n {
                let dst = (bi * n_p + c.p0 + j) * k;
                out[dst..dst + k].copy_from_slice(&al[(bi * n + j) * k..(bi * n + j + 1) * k]);
            }
        }
        Ok(())
    })?;
    Ok(out)
}
