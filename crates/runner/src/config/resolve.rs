//! The one step from an experiment's words to the libraries' types: the split, the transforms,
//! the training configuration, the CAM methods, proxies and target, the scoring settings and the
//! baselines. The stages take a [`Resolved`] and never look at a word again.

use embcam_cam::{ChenConfig, ClosedForm, Method, ProxySpec, Space, Target, WrongClassPick};
use embcam_cub::load::{EvalTransform, Transform};
use embcam_cub::{SplitKind, Subset};
use embcam_eval::{BaselineMap, EvalConfig};
use embcam_model::NetConfig;
use embcam_model::loss::TripletLoss;
use embcam_model::train::{Objective, OptimizerConfig, Schedule, TrainConfig};

use super::Experiment;
use super::vocab::{
    BaselineName, ChenTransfer, EvalTransformName, Head, MethodName, OptimizerName, ProxyName,
    ScheduleName, SplitName, TargetName,
};

/// Everything the stages need, in the libraries' types.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The evaluation transform (explaining, embedding, scoring).
    pub transform: Transform,
    /// Training.
    pub train: TrainConfig,
    /// The map makers, each with its name.
    pub methods: Vec<(MethodName, Explainer)>,
    /// The proxies, each with its name (the columns of a proxy-driven method's maps).
    pub proxies: Vec<(ProxyName, ProxySpec)>,
    /// What is differentiated.
    pub target: Target,
    /// Closed form where it applies.
    pub closed_form: ClosedForm,
    /// Scoring settings.
    pub eval: EvalConfig,
    /// The map baselines (no network).
    pub baselines: Vec<(BaselineName, BaselineMap)>,
    /// Whether every method also explains the untrained network.
    pub untrained: bool,
}

/// How a method makes its maps.
#[derive(Debug, Clone)]
pub enum Explainer {
    /// A CAM method of the cam crate, driven by the proxies' target ([`embcam_cam::explain_many`]).
    Cam(Method),
    /// Chen et al.: weights fitted on training triplets, transferred to the test images.
    Chen {
        /// The fit.
        config: ChenConfig,
        /// Spherical k-means centres to transfer from (`None`: every training embedding).
        centres: Option<usize>,
    },
}

impl Explainer {
    /// A map per image that no proxy drives: stored and scored once, as `-`.
    pub fn is_target_free(&self) -> bool {
        match self {
            Explainer::Cam(m) => m.is_target_free(),
            Explainer::Chen { .. } => true,
        }
    }
}

impl SplitName {
    /// The cub crate's split.
    pub fn kind(self) -> SplitKind {
        match self {
            SplitName::ClassDisjoint => SplitKind::ClassDisjoint,
            SplitName::Official => SplitKind::Official,
        }
    }
}

/// The split of an experiment: which, and of how much of the data.
pub fn split(exp: &Experiment) -> (SplitKind, Subset) {
    let d = &exp.file.dataset;
    (d.split.kind(), Subset { max_classes: d.max_classes, max_per_class: d.max_per_class })
}

/// Resolve an experiment whose training split has `train_classes` classes (the classifier head's
/// outputs).
pub fn resolve(exp: &Experiment, train_classes: usize) -> Resolved {
    let f = &exp.file;
    let (d, m, t, c, e) = (&f.dataset, &f.model, &f.train, &f.cam, &f.eval);
    let transform = Transform::Eval(match d.eval_transform {
        EvalTransformName::Squash => EvalTransform::squash(d.image_size),
        EvalTransformName::CenterCrop => EvalTransform::center_crop(d.image_size),
    });
    let (net, objective) = match m.head {
        Head::Classifier => {
            (NetConfig::classifier(m.backbone, train_classes), Objective::CrossEntropy)
        }
        Head::Embedding => (
            NetConfig::embedding(m.backbone, m.embedding_dim, m.l2_normalize),
            Objective::Triplet {
                loss: TripletLoss { margin: t.margin, mining: t.mining, normalize: m.l2_normalize },
            },
        ),
    };
    let optimizer = match t.optimizer {
        OptimizerName::Sgd => OptimizerConfig::Sgd {
            lr: t.lr,
            momentum: t.momentum,
            nesterov: false,
            weight_decay: t.weight_decay as f32,
        },
        OptimizerName::Adam => {
            OptimizerConfig::Adam { lr: t.lr, weight_decay: t.weight_decay as f32 }
        }
    };
    let schedule = match t.schedule {
        ScheduleName::Cosine => Schedule::Cosine { min_lr: t.lr * 0.01 },
        ScheduleName::Step => Schedule::Step { every: (t.epochs / 3).max(1), gamma: 0.1 },
        ScheduleName::Constant => Schedule::Constant,
    };
    let train = TrainConfig {
        net: net.with_small_cnn_widths(m.widths),
        objective,
        optimizer,
        schedule,
        epochs: t.epochs,
        classes_per_batch: t.p,
        images_per_class: t.k,
        input_size: d.image_size,
        augment: t.augment,
        crop_scale: t.crop_scale,
        shuffle_labels: t.shuffle_labels,
        eval_batch_size: 32,
        seed: exp.seed,
        pretrained: m.pretrained.clone(),
    };
    let closed_form = if c.closed_form { ClosedForm::Auto } else { ClosedForm::Off };
    let chen = c.chen.clone().unwrap_or_default();
    let methods = c
        .methods
        .iter()
        .map(|&name| {
            let explainer = match name {
                MethodName::EmbeddingCam => Explainer::Cam(Method::GradCam),
                MethodName::GradCamPlusPlus => Explainer::Cam(Method::GradCamPlusPlus),
                MethodName::HiResCam => Explainer::Cam(Method::HiResCam),
                MethodName::XGradCam => Explainer::Cam(Method::XGradCam),
                MethodName::LayerCam => Explainer::Cam(Method::LayerCam),
                MethodName::ScoreCam => Explainer::Cam(Method::ScoreCam),
                MethodName::EigenCam => Explainer::Cam(Method::EigenCam),
                // The triplet distances of the fit are those the network was trained with.
                MethodName::Chen => Explainer::Chen {
                    config: ChenConfig {
                        triplets_per_anchor: chen.triplets,
                        margin: Some(t.margin),
                        seed: exp.seed,
                        space: if m.l2_normalize { Space::Normalized } else { Space::PreNorm },
                        closed_form,
                    },
                    centres: (chen.transfer == ChenTransfer::KMeans).then_some(chen.centres),
                },
            };
            (name, explainer)
        })
        .collect();
    let proxies = c
        .proxies
        .iter()
        .map(|&name| {
            let spec = match name {
                ProxyName::NormalizedMean => {
                    ProxySpec::ClassMean { leave_query_out: c.leave_one_out }
                }
                ProxyName::SinglePoint => ProxySpec::SinglePoint,
                ProxyName::PredictedClass => {
                    ProxySpec::PredictedClass { leave_query_out: c.leave_one_out }
                }
                ProxyName::Knn => ProxySpec::Knn { k: c.knn },
                ProxyName::WrongClass => ProxySpec::WrongClass { pick: WrongClassPick::Nearest },
                // Classic Grad-CAM on a classifier: the logits are its "embedding", and the proxy
                // is the one-hot vector of the top class (an identity classifier on the bank).
                ProxyName::ClassScore => ProxySpec::TopClassifierRow,
            };
            (name, spec)
        })
        .collect();
    let target = match c.target {
        TargetName::PreL2 => Target::dot(),
        TargetName::PostL2 => Target::dot().on(Space::Normalized),
    };
    let eval = EvalConfig {
        tau: e.tau,
        iou: e.iou,
        mask_threshold: e.mask_threshold,
        pointing_tolerance: e.pointing_tolerance,
        ..EvalConfig::default()
    };
    let baselines = e
        .baselines
        .iter()
        .filter_map(|&name| {
            let map = match name {
                BaselineName::CenterGaussian => BaselineMap::CentreGaussian { sigma: 0.25 },
                BaselineName::UniformRandom => BaselineMap::UniformRandom { seed: exp.seed },
                BaselineName::Untrained => return None,
            };
            Some((name, map))
        })
        .collect();
    Resolved {
        transform,
        train,
        methods,
        proxies,
        target,
        closed_form,
        eval,
        baselines,
        untrained: e.baselines.contains(&BaselineName::Untrained),
    }
}
