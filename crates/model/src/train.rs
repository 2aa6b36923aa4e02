//! Training: triplet loss (P×K batches, online mining) or softmax cross-entropy, Adam or SGD with
//! momentum and weight decay, a cosine or step learning-rate schedule, the data layer's
//! augmentation, validation retrieval metrics (Recall@K, MAP@R on the evaluation split, via
//! `embcam-eval`) after every epoch, per-epoch checkpoints, resume and best-checkpoint selection.
//!
//! Reproducibility: weights come from [`NetConfig::init`](crate::NetConfig::init)'s seeded host
//! RNG, batches from [`PkSampler::epoch`]`(seed, epoch)`, augmentation from `(seed, epoch, image
//! id)` and the learning rate is a pure function of the step, so one seed gives the same weights on
//! the flex backend, and a run resumed from its checkpoint gives the same weights as one that was
//! never interrupted.
//!
//! The library never prints: progress goes to the caller's [`Progress`] (one pass per epoch;
//! status: epoch, loss, share of active triplets, images/s), and each epoch's [`EpochReport`] to
//! the caller's callback.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use burn::module::Module;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer, SgdConfig};
use burn::tensor::{Device, Tensor, TensorData};
use embcam_cub::load::{BatchLoader, EvalTransform, TrainTransform, Transform};
use embcam_cub::{Dataset, Progress};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::ModelError;
use crate::checkpoint::{RunDir, TrainState};
use crate::loss::{TripletLoss, cross_entropy};
use crate::nets::{HeadConfig, Net, NetConfig};
use crate::sampler::PkSampler;
use crate::weights::{ImportOptions, import_weights};

/// What the network is trained to minimise.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Objective {
    /// Triplet margin loss on the network's output (an embedding head).
    Triplet {
        /// Margin, mining and normalisation.
        #[serde(flatten)]
        loss: TripletLoss,
    },
    /// Softmax cross-entropy on the logits (a classifier head whose `classes` equals the number
    /// of training classes; labels are the training class ids in ascending order).
    CrossEntropy,
}

/// The optimizer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum OptimizerConfig {
    /// Adam (β₁ = 0.9, β₂ = 0.999, ε = 1e-8) with L2 weight decay added to the gradient.
    Adam {
        /// Base learning rate.
        lr: f64,
        /// L2 penalty (0 for none).
        weight_decay: f32,
    },
    /// SGD with (heavy-ball or Nesterov) momentum, no dampening, L2 weight decay.
    Sgd {
        /// Base learning rate.
        lr: f64,
        /// Momentum factor.
        momentum: f64,
        /// Nesterov momentum.
        nesterov: bool,
        /// L2 penalty (0 for none).
        weight_decay: f32,
    },
}

impl OptimizerConfig {
    /// Base learning rate.
    pub fn lr(&self) -> f64 {
        match *self {
            OptimizerConfig::Adam { lr, .. } | OptimizerConfig::Sgd { lr, .. } => lr,
        }
    }

    fn build(&self) -> ModuleOptimizer {
        let decay = |wd: f32| (wd > 0.0).then(|| WeightDecayConfig::new(wd));
        match *self {
            OptimizerConfig::Adam { weight_decay, .. } => {
                AdamConfig::new().with_epsilon(1e-8).with_weight_decay(decay(weight_decay)).init()
            }
            OptimizerConfig::Sgd { momentum, nesterov, weight_decay, .. } => SgdConfig::new()
                .with_momentum(Some(MomentumConfig { momentum, dampening: 0.0, nesterov }))
                .with_weight_decay(decay(weight_decay))
                .init(),
        }
    }
}

/// Learning rate as a function of the step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Schedule {
    /// The base rate throughout.
    Constant,
    /// Per step: `min + (base − min)·(1 + cos(π t/T))/2`, `t` the step, `T` all steps of the run.
    Cosine {
        /// Final learning rate.
        min_lr: f64,
    },
    /// Per epoch: `base · gamma^⌊epoch / every⌋`.
    Step {
        /// Epochs between decays.
        every: usize,
        /// Decay factor.
        gamma: f64,
    },
}

impl Schedule {
    /// Learning rate at step `step` of `total` (0-based), in (0-based) `epoch`.
    pub fn lr(&self, base: f64, epoch: usize, step: usize, total: usize) -> f64 {
        match *self {
            Schedule::Constant => base,
            Schedule::Cosine { min_lr } => {
                let t = step as f64 / total.max(1) as f64;
                min_lr + (base - min_lr) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
            }
            Schedule::Step { every, gamma } => base * gamma.powi((epoch / every.max(1)) as i32),
        }
    }
}

/// Everything that defines a training run (saved as the run directory's `config.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// The network.
    pub net: NetConfig,
    /// Loss.
    pub objective: Objective,
    /// Optimizer.
    pub optimizer: OptimizerConfig,
    /// Learning-rate schedule.
    pub schedule: Schedule,
    /// Number of epochs.
    pub epochs: usize,
    /// `P`: classes per batch.
    pub classes_per_batch: usize,
    /// `K`: images per class in a batch.
    pub images_per_class: usize,
    /// Input side in pixels (square inputs).
    pub input_size: u32,
    /// Random resized crop + flip during training (else the evaluation transform).
    pub augment: bool,
    /// The random crop's area as a fraction of the image, `[min, max]` (torchvision's `scale`).
    #[serde(default = "default_crop_scale")]
    pub crop_scale: [f32; 2],
    /// Adebayo et al.'s data randomisation test: train on the training images with their labels
    /// permuted (seeded by `seed`; class sizes kept), so the network can only memorise. Validation
    /// still uses the true labels. Left out of the serialised config when off, so the stage keys
    /// of existing experiments do not change.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shuffle_labels: bool,
    /// Batch size for validation embeddings.
    pub eval_batch_size: usize,
    /// The seed of weights, batches and augmentation.
    pub seed: u64,
    /// Backbone weights to start from (`.pth` or `.safetensors`, torchvision names; the head is
    /// not imported).
    pub pretrained: Option<PathBuf>,
}

fn default_crop_scale() -> [f32; 2] {
    [0.35, 1.0]
}

/// The data of a run: a dataset and its split (indices into `dataset.images`).
#[derive(Clone, Debug)]
pub struct TrainData {
    /// The dataset.
    pub dataset: Arc<Dataset>,
    /// Training images.
    pub train: Vec<usize>,
    /// Evaluation images (validation metrics).
    pub eval: Vec<usize>,
}

/// Retrieval metrics on the evaluation split.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ValMetrics {
    /// `(K, Recall@K)` for K = 1, 2, 4, 8.
    pub recall_at: Vec<(usize, f64)>,
    /// MAP@R.
    pub map_at_r: f64,
}

impl ValMetrics {
    /// Recall@1.
    pub fn recall_at_1(&self) -> f64 {
        self.recall_at.iter().find(|(k, _)| *k == 1).map_or(0.0, |(_, r)| *r)
    }
}

/// One epoch's numbers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochReport {
    /// 1-based epoch.
    pub epoch: usize,
    /// Learning rate of the epoch's last step.
    pub lr: f64,
    /// Mean training loss over the epoch's batches.
    pub loss: f64,
    /// Mean share of active triplets (triplet objective only).
    pub active_share: Option<f64>,
    /// Training throughput (forward + backward + step, data loading included).
    pub images_per_sec: f64,
    /// Validation metrics after the epoch.
    pub val: ValMetrics,
    /// Whether this epoch is the best so far by validation MAP@R.
    pub is_best: bool,
}

/// What the callback tells the training loop after an epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Go on.
    Continue,
    /// Stop after this epoch (its checkpoint is written): a later call resumes.
    Stop,
}

/// The result of [`train`].
#[derive(Debug)]
pub struct TrainOutcome {
    /// The network after the last epoch run, in eval mode on the plain device.
    pub net: Net,
    /// Progress, including all epochs of earlier (interrupted) calls.
    pub state: TrainState,
    /// Whether all `epochs` are done (false when the callback stopped the run).
    pub finished: bool,
}

fn check(cfg: &TrainConfig, data: &TrainData) -> Result<Vec<u32>, ModelError> {
    let [lo, hi] = cfg.crop_scale;
    if !(lo > 0.0 && lo <= hi && hi <= 1.0) {
        return Err(ModelError::InvalidConfig(format!(
            "crop scale [{lo}, {hi}] is invalid: use 0 < min ≤ max ≤ 1"
        )));
    }
    if cfg.epochs == 0 || cfg.eval_batch_size == 0 || cfg.input_size < 16 {
        return Err(ModelError::InvalidConfig(
            "epochs and eval batch size must be > 0 and the input size ≥ 16 px".into(),
        ));
    }
    if data.eval.len() < 2 {
        return Err(ModelError::InvalidConfig(
            "validation needs at least 2 evaluation images".into(),
        ));
    }
    let train_classes: Vec<u32> = {
        let mut c: Vec<u32> = data.train.iter().map(|&i| data.dataset.images[i].class_id).collect();
        c.sort_unstable();
        c.dedup();
        c
    };
    match (&cfg.objective, &cfg.net.head) {
        (Objective::CrossEntropy, HeadConfig::Classifier { classes })
            if *classes == train_classes.len() => {}
        (Objective::CrossEntropy, HeadConfig::Classifier { classes }) => {
            return Err(ModelError::InvalidConfig(format!(
                "classifier head has {classes} classes but the training split has {}",
                train_classes.len()
            )));
        }
        (Objective::CrossEntropy, _) => {
            return Err(ModelError::InvalidConfig("cross-entropy needs a classifier head".into()));
        }
        (Objective::Triplet { .. }, HeadConfig::Classifier { .. }) => {
            return Err(ModelError::InvalidConfig(
                "the triplet loss needs an embedding head".into(),
            ));
        }
        (Objective::Triplet { .. }, HeadConfig::Embedding { .. }) => {}
    }
    Ok(train_classes)
}

/// Embeds images `indices` of `dataset` with `net` (put it in eval mode first: [`Module::valid`]),
/// using the evaluation transform (resize + centre crop to `input_size`).
///
/// Returns the row-major `[n, d]` outputs of [`Net::forward`] and the class labels.
pub fn embed_images(
    net: &Net,
    dataset: &Arc<Dataset>,
    indices: &[usize],
    input_size: u32,
    batch_size: usize,
    device: &Device,
) -> Result<(Vec<f32>, Vec<u32>), ModelError> {
    let transform = Transform::Eval(EvalTransform::center_crop(input_size));
    let e = embed(net, dataset, indices, transform, batch_size, NetOutput::Forward, device)?;
    Ok((e.values, e.labels))
}

/// Which of a network's outputs to keep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetOutput {
    /// [`Net::forward`]: the embedding (unit length with an L2 head) or the logits.
    Forward,
    /// [`Net::forward_raw`]: `z`, before L2 normalisation.
    Raw,
}

/// Images embedded by [`embed`], in the order asked.
#[derive(Clone, Debug, PartialEq)]
pub struct EmbeddedImages {
    /// Image ids.
    pub ids: Vec<u32>,
    /// Class labels.
    pub labels: Vec<u32>,
    /// Row-major `[n, d]`.
    pub values: Vec<f32>,
}

/// Embeds images `indices` of `dataset` with `net` (eval mode) under `transform`, `batch_size`
/// images at a time, keeping `output`.
pub fn embed(
    net: &Net,
    dataset: &Arc<Dataset>,
    indices: &[usize],
    transform: Transform,
    batch_size: usize,
    output: NetOutput,
    device: &Device,
) -> Result<EmbeddedImages, ModelError> {
    let mut out = EmbeddedImages {
        ids: Vec::with_capacity(indices.len()),
        labels: Vec::with_capacity(indices.len()),
        values: Vec::with_capacity(indices.len() * net.out_dim()),
    };
    for batch in BatchLoader::sequential(dataset.clone(), indices, batch_size, transform) {
        let batch = batch?;
        let (b, h, w) = (batch.len(), batch.height as usize, batch.width as usize);
        let x = Tensor::<4>::from_data(TensorData::new(batch.pixels, [b, 3, h, w]), device);
        let y = match output {
            NetOutput::Forward => net.forward(x),
            NetOutput::Raw => net.forward_raw(x),
        }; // [B, d]
        out.values
            .extend(y.try_into_vec_as::<f32>().map_err(|e| ModelError::TensorRead(e.to_string()))?);
        out.ids.extend(batch.ids);
        out.labels.extend(batch.labels);
    }
    Ok(out)
}

/// Validation metrics of `net` (eval mode) on `data.eval`.
pub fn validate(
    net: &Net,
    data: &TrainData,
    cfg: &TrainConfig,
    device: &Device,
) -> Result<ValMetrics, ModelError> {
    let (emb, labels) =
        embed_images(net, &data.dataset, &data.eval, cfg.input_size, cfg.eval_batch_size, device)?;
    let scores = embcam_eval::retrieval_scores(&emb, net.out_dim(), &labels, &[1, 2, 4, 8])
        .map_err(|e| ModelError::Eval(e.to_string()))?;
    Ok(ValMetrics { recall_at: scores.recall_at, map_at_r: scores.map_at_r })
}

/// The labels the training images are trained with, given their classes in `data.train`'s
/// order: the classes, or, with `shuffle = Some(seed)`, the same labels permuted among the images
/// (class sizes kept).
fn training_labels(mut labels: Vec<u32>, shuffle: Option<u64>) -> Vec<u32> {
    if let Some(seed) = shuffle {
        labels.shuffle(&mut StdRng::seed_from_u64(seed ^ 0x5AFF1E));
    }
    labels
}

/// One epoch's P×K batches as indices into the dataset. The sampler indexes the training split
/// (`train[i]` is its i-th image): mapping back matters wherever the training images are not the
/// dataset's first ones (the official split, subsets).
fn epoch_batches(sampler: &PkSampler, train: &[usize], seed: u64, epoch: u64) -> Vec<Vec<usize>> {
    sampler
        .epoch(seed, epoch)
        .into_iter()
        .map(|b| b.into_iter().map(|i| train[i]).collect())
        .collect()
}

/// Trains `cfg.net` on `data` on `device` (a plain device: autodiff is added here).
///
/// With `run_dir`, writes a checkpoint after every epoch and the best epoch's weights (see
/// [`crate::checkpoint`]), and resumes from the last checkpoint there if one exists. `on_epoch`
/// sees every epoch's report and may stop the run ([`Flow::Stop`]).
pub fn train(
    cfg: &TrainConfig,
    data: &TrainData,
    device: &Device,
    run_dir: Option<&Path>,
    progress: &dyn Progress,
    on_epoch: &mut dyn FnMut(&EpochReport) -> Flow,
) -> Result<TrainOutcome, ModelError> {
    let train_classes = check(cfg, data)?;
    let class_index: BTreeMap<u32, u32> =
        train_classes.iter().enumerate().map(|(i, &c)| (c, i as u32)).collect();
    let classes = data.train.iter().map(|&i| data.dataset.images[i].class_id).collect();
    let labels = training_labels(classes, cfg.shuffle_labels.then_some(cfg.seed));
    // The label each training image is trained with, by dataset index.
    let label_of: HashMap<usize, u32> =
        data.train.iter().copied().zip(labels.iter().copied()).collect();
    let sampler = PkSampler::new(&labels, cfg.classes_per_batch, cfg.images_per_class)?;
    let steps_per_epoch = sampler.epoch(cfg.seed, 0).len();
    if steps_per_epoch == 0 {
        return Err(ModelError::InvalidConfig(
            "the sampler makes no batch from the training split".into(),
        ));
    }
    let total_steps = steps_per_epoch * cfg.epochs;
    let ad = device.clone().autodiff();
    let run = run_dir.map(RunDir::create).transpose()?;
    if let Some(run) = &run {
        run.check_config(cfg)?;
    }

    let mut net = cfg.net.init(&ad, cfg.seed)?;
    let mut optim = cfg.optimizer.build();
    let resumed = match &run {
        Some(run) => run.load_last(net.clone(), cfg.optimizer.build())?,
        None => None,
    };
    let mut state = match resumed {
        Some((n, o, s)) => {
            net = n;
            optim = o;
            s
        }
        None => {
            if let Some(path) = &cfg.pretrained {
                net = import_weights(net, path, ImportOptions { include_head: false })?.0;
            }
            let baseline = validate(&net.valid(), data, cfg, device)?;
            TrainState {
                epochs_done: 0,
                history: Vec::new(),
                baseline: Some(baseline),
                best_epoch: None,
            }
        }
    };

    let transform = if cfg.augment {
        Transform::Train(TrainTransform {
            scale: (cfg.crop_scale[0], cfg.crop_scale[1]),
            ..TrainTransform::new(cfg.input_size, cfg.seed)
        })
    } else {
        Transform::Eval(EvalTransform::center_crop(cfg.input_size))
    };
    let base_lr = cfg.optimizer.lr();
    let mut finished = state.epochs_done >= cfg.epochs;
    while state.epochs_done < cfg.epochs {
        let epoch = state.epochs_done; // 0-based
        let batches = epoch_batches(&sampler, &data.train, cfg.seed, epoch as u64);
        let batch_labels: Vec<Vec<u32>> =
            batches.iter().map(|b| b.iter().map(|i| label_of[i]).collect()).collect();
        let epoch_of = format!("epoch {}/{}", epoch + 1, cfg.epochs);
        progress.start(batches.len() as u64);
        progress.status(&epoch_of);
        let loader = BatchLoader::new(data.dataset.clone(), batches, transform, epoch as u64, 2);
        let (mut loss_sum, mut active_sum, mut images, mut lr) = (0.0, 0.0, 0usize, base_lr);
        let start = Instant::now();
        for (i, batch) in loader.enumerate() {
            let mut batch = batch?;
            batch.labels.clone_from(&batch_labels[i]);
            let (b, h, w) = (batch.len(), batch.height as usize, batch.width as usize);
            lr = cfg.schedule.lr(base_lr, epoch, epoch * steps_per_epoch + i, total_steps);
            let x = Tensor::<4>::from_data(TensorData::new(batch.pixels, [b, 3, h, w]), &ad);
            let (loss, active) = match &cfg.objective {
                Objective::Triplet { loss } => {
                    let out = loss.forward(net.forward(x), &batch.labels)?; // [B, d] -> [1]
                    (out.loss, Some(out.stats.active_share()))
                }
                Objective::CrossEntropy => {
                    let y: Vec<u32> = batch
                        .labels
                        .iter()
                        .map(|c| class_index.get(c).copied().unwrap_or(0))
                        .collect();
                    (cross_entropy(net.forward_raw(x), &y)?, None)
                }
            };
            let value = loss
                .clone()
                .detach()
                .try_into_vec_as::<f64>()
                .map_err(|e| ModelError::TensorRead(e.to_string()))?
                .first()
                .copied()
                .unwrap_or(f64::NAN);
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            net = optim.step(lr, net, grads);
            loss_sum += value;
            active_sum += active.unwrap_or(0.0);
            images += b;
            let n = (i + 1) as f64;
            let rate = images as f64 / start.elapsed().as_secs_f64().max(1e-9);
            progress.status(&match active {
                Some(_) => format!(
                    "{epoch_of}  loss {:.4}  active {:.1}%  {rate:.1} img/s",
                    loss_sum / n,
                    100.0 * active_sum / n
                ),
                None => format!("{epoch_of}  loss {:.4}  {rate:.1} img/s", loss_sum / n),
            });
            progress.advance(1);
        }
        let images_per_sec = images as f64 / start.elapsed().as_secs_f64().max(1e-9);
        let valid = net.valid();
        let val = validate(&valid, data, cfg, device)?;
        let best_so_far = state
            .best_epoch
            .and_then(|e| state.history.get(e - 1))
            .map_or(f64::NEG_INFINITY, |r| r.val.map_at_r);
        let is_best = val.map_at_r > best_so_far;
        let steps = steps_per_epoch as f64;
        let report = EpochReport {
            epoch: epoch + 1,
            lr,
            loss: loss_sum / steps,
            active_share: matches!(cfg.objective, Objective::Triplet { .. })
                .then(|| active_sum / steps),
            images_per_sec,
            val,
            is_best,
        };
        state.epochs_done += 1;
        if is_best {
            state.best_epoch = Some(epoch + 1);
        }
        state.history.push(report.clone());
        if let Some(run) = &run {
            if is_best {
                run.save_best(&valid, &report)?;
            }
            run.save_last(&net, &optim, &state)?;
        }
        finished = state.epochs_done >= cfg.epochs;
        if on_epoch(&report) == Flow::Stop {
            break;
        }
    }
    Ok(TrainOutcome { net: net.valid(), state, finished })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_index_the_dataset_through_the_training_split() {
        // Training images interleaved with held-out ones, as in the official split: dataset
        // images 1, 3, 5, ... (classes 7, 7, 8, 8, 9, 9, ...) train; the even ones do not.
        let train: Vec<usize> = (0..24).map(|i| 2 * i + 1).collect();
        let labels: Vec<u32> = (0..24).map(|i| 7 + i / 4).collect();
        let sampler = PkSampler::new(&labels, 3, 2).expect("sampler");
        let batches = epoch_batches(&sampler, &train, 5, 0);
        assert!(!batches.is_empty());
        for b in &batches {
            assert!(b.iter().all(|i| i % 2 == 1), "a held-out image in a batch: {b:?}");
            // P×K: 3 classes, 2 images each, read back through the dataset's labels.
            let class = |i: usize| labels[(i - 1) / 2];
            let mut classes: Vec<u32> = b.iter().map(|&i| class(i)).collect();
            classes.dedup();
            assert_eq!(classes.len(), 3, "{b:?}");
        }
    }

    #[test]
    fn shuffled_labels_keep_class_sizes_and_depend_only_on_the_seed() {
        let classes: Vec<u32> = (0..60).map(|i| 1 + i / 6).collect(); // 10 classes × 6
        assert_eq!(training_labels(classes.clone(), None), classes);
        let a = training_labels(classes.clone(), Some(3));
        assert_eq!(a, training_labels(classes.clone(), Some(3)), "not deterministic");
        assert_ne!(a, training_labels(classes.clone(), Some(4)), "the seed is ignored");
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, classes, "class sizes changed");
        // A permutation of 60 labels that kept most images' own class would not randomise:
        // by chance about 1/10 of them keep it.
        let kept = a.iter().zip(&classes).filter(|(x, y)| x == y).count();
        assert!(kept < 20, "{kept} of 60 images kept their class");
    }
}
