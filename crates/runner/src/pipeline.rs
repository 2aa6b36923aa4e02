//! The stages of one experiment (one grid cell, one seed), each cached in a content-keyed folder:
//!
//! ```text
//! data ─► train (checkpoints, history) ─► explain + score (heatmaps .npy, per-image rows,
//!                                          split-level metrics, τ curves, gallery)
//! ```
//! The untrained network and the map baselines go through the same scoring.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use embcam_cam::{
    CamOptions, Classifier, ClosedForm, Embeddings, HeatmapWriter, Method, ProxyBank, ProxySpec,
    Query, Space, Stored, Target, WrongClassPick,
};
use embcam_cub::load::{EvalTransform, Transform, load_batch};
use embcam_cub::synth::generate;
use embcam_cub::{Dataset, Geometry, Split, SplitKind, Subset, resize_bilinear};
use embcam_eval::{BaselineMap, EvalConfig, FaithfulnessScores, Heatmap, ImageScores, ImageTruth};
use embcam_model::train::{
    EpochReport, Flow, Objective, OptimizerConfig, Schedule, TrainConfig, TrainData, train,
};
use embcam_model::{BackboneKind, Net, NetConfig, Staged};
use indicatif::ProgressBar;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::config::{DatasetKind, Experiment};
use crate::progress::bar;
use crate::store::{Stage, write_atomic};
use crate::table::{Key, METRICS, Row, SplitRow};

/// What the rest of the run needs from the data stage.
pub struct Data {
    /// The dataset.
    pub dataset: Arc<Dataset>,
    /// The split.
    pub split: Split,
    /// A key for everything about the data that feeds later stages.
    pub key: String,
    /// Discriminative part per class (SynthCUB only).
    pub parts: BTreeMap<u32, u32>,
}

/// Make sure the dataset exists (generating SynthCUB when needed), open it and split it.
pub fn data(exp: &Experiment) -> Result<Data> {
    let d = &exp.file.dataset;
    let (root, seg, stamp) = match d.kind {
        DatasetKind::Synth => {
            let s = d.synth.clone().unwrap_or_default();
            let cfg = s.config();
            if !cfg.made_at(&d.path) {
                let listed = || {
                    std::fs::read_dir(&d.path)
                        .with_context(|| format!("listing {}", d.path.display()))
                };
                if d.path.exists() && listed()?.next().is_some() {
                    bail!(
                        "{} holds something other than the SynthCUB this experiment asks for \
                         ({}); remove it, or point dataset.path elsewhere",
                        d.path.display(),
                        cfg.stamp().lines().nth(1).unwrap_or_default()
                    );
                }
                let pb = bar("synth");
                generate(&d.path, &cfg, &pb)
                    .with_context(|| format!("generating SynthCUB in {}", d.path.display()))?;
                pb.finish_and_clear();
            }
            (d.path.join("CUB_200_2011"), Some(d.path.join("segmentations")), cfg.stamp())
        }
        DatasetKind::Cub => {
            ensure!(
                d.path.join("images.txt").is_file(),
                "{} holds no CUB-200-2011 (no images.txt there). Download CUB_200_2011.tgz and \
                 segmentations.tgz and extract them into datasets/ as datasets/README.md says, \
                 then run `embcam validate {}`",
                d.path.display(),
                d.path.display()
            );
            let seg = d.segmentations.clone().or_else(|| {
                let beside = d.path.parent()?.join("segmentations");
                beside.is_dir().then_some(beside)
            });
            (d.path.clone(), seg, fingerprint(&d.path)?)
        }
    };
    let dataset = Dataset::open(&root, seg.as_deref()).with_context(|| {
        format!(
            "reading the dataset at {} (`embcam validate {}` lists every problem)",
            root.display(),
            root.display()
        )
    })?;
    let kind: SplitKind = d.split.parse()?;
    let subset = Subset { max_classes: d.max_classes, max_per_class: d.max_per_class };
    let split = dataset.split(kind, &subset)?;
    let parts = embcam_cub::synth::read_discriminative_parts(&root)?
        .map(|v| v.into_iter().collect())
        .unwrap_or_default();
    let key = crate::store::key_of(&(stamp, &d.split, d.max_classes, d.max_per_class))?;
    Ok(Data { dataset: Arc::new(dataset), split, key, parts })
}

/// A fingerprint of a real dataset's index files (their sizes and modification times).
fn fingerprint(root: &Path) -> Result<String> {
    let mut parts = Vec::new();
    for f in ["images.txt", "image_class_labels.txt", "train_test_split.txt", "bounding_boxes.txt"]
    {
        let m = std::fs::metadata(root.join(f))
            .with_context(|| format!("reading {}", root.join(f).display()))?;
        let t = m.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
        parts.push(format!("{f}:{}:{}", m.len(), t.map_or(0, |d| d.as_secs())));
    }
    Ok(parts.join(","))
}

/// The device named in the experiment (`flex`, `tch-cpu`, `tch-cuda[:N]`).
pub fn device(name: &str) -> Result<Device> {
    Ok(embcam_model::device::parse_device(name)?)
}

/// The training configuration of an experiment.
pub fn train_config(exp: &Experiment, data: &Data) -> Result<TrainConfig> {
    let (m, t) = (&exp.file.model, &exp.file.train);
    let backbone: BackboneKind = m.backbone.parse()?;
    let classifier = m.head == "classifier";
    let net = if classifier {
        NetConfig::classifier(backbone, data.split.train_classes.len())
    } else {
        NetConfig::embedding(backbone, m.embedding_dim, m.l2_normalize)
    }
    .with_small_cnn_widths(m.widths);
    let objective = if classifier {
        Objective::CrossEntropy
    } else {
        Objective::Triplet {
            loss: embcam_model::loss::TripletLoss {
                margin: t.margin,
                mining: t.mining.parse()?,
                normalize: m.l2_normalize,
            },
        }
    };
    let optimizer = match t.optimizer.as_str() {
        "sgd" => OptimizerConfig::Sgd {
            lr: t.lr,
            momentum: t.momentum,
            nesterov: false,
            weight_decay: t.weight_decay as f32,
        },
        _ => OptimizerConfig::Adam { lr: t.lr, weight_decay: t.weight_decay as f32 },
    };
    let schedule = match t.schedule.as_str() {
        "cosine" => Schedule::Cosine { min_lr: t.lr * 0.01 },
        "step" => Schedule::Step { every: (t.epochs / 3).max(1), gamma: 0.1 },
        _ => Schedule::Constant,
    };
    Ok(TrainConfig {
        net,
        objective,
        optimizer,
        schedule,
        epochs: t.epochs,
        classes_per_batch: t.p,
        images_per_class: t.k,
        input_size: exp.file.dataset.image_size,
        augment: t.augment,
        crop_scale: t.crop_scale,
        eval_batch_size: 32,
        seed: exp.seed,
        pretrained: m.pretrained.clone(),
    })
}

/// The trained network and its training history.
pub struct Trained {
    /// Best checkpoint (by validation MAP@R), eval mode.
    pub net: Net,
    /// The stage.
    pub stage: Stage,
    /// One report per epoch.
    pub history: Vec<EpochReport>,
    /// Whether a finished training was reused.
    pub reused: bool,
}

/// Train (or reuse a finished training with the same inputs; resume an interrupted one).
pub fn trained(
    exp_dir: &Path,
    exp: &Experiment,
    data: &Data,
    device: &Device,
    force: bool,
) -> Result<Trained> {
    let cfg = train_config(exp, data)?;
    if let Some(p) = &cfg.pretrained {
        ensure!(
            p.is_file(),
            "pretrained weights {} not found; put the torchvision checkpoint there as \
             datasets/README.md says, or remove model.pretrained",
            p.display()
        );
    }
    let stage = Stage::new(exp_dir, "train", &(&data.key, &cfg))?;
    if force && stage.is_done() {
        stage.reset()?;
    }
    let history_path = stage.file("history.json");
    let reused = stage.is_done();
    if !reused {
        let started = Instant::now();
        std::fs::create_dir_all(&stage.dir)
            .with_context(|| format!("creating {}", stage.dir.display()))?;
        if stage.file("run").join("last").is_dir() {
            eprintln!("  resuming training from the last checkpoint in {}", stage.dir.display());
        }
        let tdata = TrainData {
            dataset: data.dataset.clone(),
            train: data.split.train.clone(),
            eval: data.split.eval.clone(),
        };
        let pb = bar("training");
        let mut log = |r: &EpochReport| {
            pb.println(format!(
                "  epoch {:>3}: loss {:.4}, active {:>5.1}%, {:.0} img/s, val R@1 {:.3}, MAP@R {:.3}{}",
                r.epoch,
                r.loss,
                r.active_share.unwrap_or(0.0) * 100.0,
                r.images_per_sec,
                r.val.recall_at_1(),
                r.val.map_at_r,
                if r.is_best { " (best)" } else { "" }
            ));
            Flow::Continue
        };
        let out = train(&cfg, &tdata, device, Some(&stage.file("run")), &pb, &mut log)
            .context("training")?;
        pb.finish_and_clear();
        write_atomic(&history_path, &serde_json::to_vec_pretty(&out.state)?)?;
        stage.finish(started.elapsed().as_secs_f64())?;
    }
    let state: embcam_model::checkpoint::TrainState = read_json(&history_path)?;
    let best = embcam_model::checkpoint::RunDir::create(&stage.file("run"))?.best_weights();
    let net = embcam_model::weights::load_exported(&best, device)
        .with_context(|| format!("loading {}", best.display()))?;
    Ok(Trained { net: net.valid(), stage, history: state.history, reused })
}

/// A stage's JSON result; an error names the file and says how to recover.
fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| {
        format!("{} is damaged; rerun with --force to recompute its stage", path.display())
    })
}

/// The untrained network of the same configuration and seed (a baseline).
pub fn untrained(exp: &Experiment, data: &Data, device: &Device) -> Result<Net> {
    Ok(train_config(exp, data)?.net.init(device, exp.seed)?.valid())
}

/// The config names of methods, mapped to the CAM crate's.
fn method(name: &str) -> Result<Method> {
    Ok(match name {
        "embeddingcam" => Method::GradCam,
        other => *Method::ALL.iter().find(|m| m.name() == other).context("unknown method")?,
    })
}

/// The config names of proxies, mapped to the CAM crate's specs.
fn proxy_spec(name: &str, exp: &Experiment) -> Result<ProxySpec> {
    let c = &exp.file.cam;
    Ok(match name {
        "normalized-mean" => ProxySpec::ClassMean { leave_query_out: c.leave_one_out },
        "single-point" => ProxySpec::SinglePoint,
        "predicted-class" => ProxySpec::PredictedClass { leave_query_out: c.leave_one_out },
        "knn" => ProxySpec::Knn { k: c.knn },
        "wrong-class" => ProxySpec::WrongClass { pick: WrongClassPick::Nearest },
        // Classic Grad-CAM on a classifier: the logits are its "embedding", and the proxy is the
        // one-hot vector of the top class (an identity classifier attached to the bank).
        "class-score" => ProxySpec::TopClassifierRow,
        other => bail!("unknown proxy `{other}`"),
    })
}

/// The evaluation settings.
pub fn eval_config(exp: &Experiment) -> EvalConfig {
    let e = &exp.file.eval;
    EvalConfig {
        tau: e.tau,
        iou: e.iou,
        mask_threshold: e.mask_threshold,
        pointing_tolerance: e.pointing_tolerance,
        ..EvalConfig::default()
    }
}

/// The transform used to explain and embed evaluation images.
fn eval_transform(exp: &Experiment) -> Transform {
    let d = &exp.file.dataset;
    Transform::Eval(if d.eval_transform == "center-crop" {
        EvalTransform::center_crop(d.image_size)
    } else {
        EvalTransform::squash(d.image_size)
    })
}

/// The evaluation images: the split's evaluation images, evenly thinned to `max_images`.
fn eval_images(exp: &Experiment, data: &Data) -> Vec<usize> {
    let all = &data.split.eval;
    match exp.file.eval.max_images {
        Some(m) if m < all.len() && m > 0 => (0..m).map(|i| all[i * all.len() / m]).collect(),
        _ => all.clone(),
    }
}

/// Checks of the configuration that need the data, made once it is read and before training:
/// the k-nearest-neighbour proxy needs `cam.knn` images in the proxy set besides the query.
pub fn check_against_data(exp: &Experiment, data: &Data) -> Result<()> {
    let c = &exp.file.cam;
    if c.proxies.iter().any(|p| p == "knn") {
        let mut per_class: BTreeMap<u32, usize> = BTreeMap::new();
        for k in eval_images(exp, data) {
            *per_class.entry(data.dataset.images[k].class_id).or_default() += 1;
        }
        let cap = c.proxy_images_per_class.unwrap_or(usize::MAX);
        let n: usize = per_class.values().map(|&m| m.min(cap)).sum();
        ensure!(
            c.knn < n,
            "cam.knn = {} asks for more neighbours than the proxy set holds: it has {n} images \
             (the evaluation images, after eval.max_images and cam.proxy_images_per_class), so \
             an image has {} others; cam.knn must be below {n}",
            c.knn,
            n.saturating_sub(1)
        );
    }
    Ok(())
}

/// What the scoring stage keeps.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Scored {
    /// Per-image rows.
    pub rows: Vec<StoredRow>,
    /// Split-level rows.
    pub split: Vec<StoredSplit>,
    /// `(τ, localisation accuracy)` per group.
    pub tau_curves: Vec<(StoredKey, Vec<(f32, f64)>)>,
    /// Mean deletion and insertion curves per group (when faithfulness is measured):
    /// `(fraction of pixels, deletion similarity, insertion similarity)`.
    #[serde(default)]
    pub faith_curves: Vec<(StoredKey, Vec<FaithPoint>)>,
    /// Warnings from the CAM crate, for the run summary.
    pub warnings: Vec<String>,
}

/// [`Key`] in a serialisable form.
pub type StoredKey = (String, String, String);
/// A per-image row: (source, proxy, stage), image id, values.
pub type StoredRow = (StoredKey, u32, Vec<Option<f64>>);
/// A point of the mean faithfulness curves: (fraction of pixels, deletion similarity, insertion
/// similarity).
pub type FaithPoint = (f64, f64, f64);
/// A split-level row: key, MaxBoxAccV2, PxAP.
pub type StoredSplit = (StoredKey, Option<f64>, Option<f64>);

impl Scored {
    /// The rows with this experiment's cell and seed.
    pub fn rows(&self, exp: &Experiment) -> (Vec<Row>, Vec<SplitRow>) {
        let key = |k: &StoredKey| stored_key(exp, k);
        let rows = self
            .rows
            .iter()
            .map(|(k, id, v)| {
                let mut values = [None; 12];
                for (slot, x) in values.iter_mut().zip(v) {
                    *slot = *x;
                }
                Row { key: key(k), seed: exp.seed, image_id: *id, values }
            })
            .collect();
        let split = self
            .split
            .iter()
            .map(|(k, a, b)| SplitRow { key: key(k), seed: exp.seed, values: [*a, *b] })
            .collect();
        (rows, split)
    }
}

/// A stored key with this experiment's cell.
pub fn stored_key(exp: &Experiment, k: &StoredKey) -> Key {
    Key { cell: exp.cell.clone(), source: k.0.clone(), proxy: k.1.clone(), stage: k.2.clone() }
}

/// One image's ground truth for the metrics.
fn truth(data: &Data, k: usize) -> Result<ImageTruth> {
    let rec = &data.dataset.images[k];
    let mask = data.dataset.read_mask(rec)?;
    let (width, height) = embcam_cub::load::image_size(&data.dataset.image_path(rec), rec.id)?;
    Ok(ImageTruth {
        id: rec.id,
        width,
        height,
        bbox: rec.bbox,
        mask,
        parts: rec.parts.clone(),
        discriminative_part: data.parts.get(&rec.class_id).copied(),
    })
}

/// Where an image's model input came from in the original image: the same plan the loader
/// follows (`Transform::plan` at epoch 0), without decoding the image again.
fn geometry(transform: &Transform, t: &ImageTruth) -> Geometry {
    let (region, flip) = transform.plan(t.width, t.height, t.id, 0);
    let size = transform.size();
    Geometry::from_crop(t.width, t.height, region, size, size, flip)
}

fn values(s: &ImageScores, faith: Option<(f64, f64)>) -> Vec<Option<f64>> {
    let b = |x: bool| Some(x as u8 as f64);
    let v = vec![
        Some(s.box_ratio),
        Some(s.box_area_ratio),
        s.mask_ratio,
        s.mask_area_ratio,
        Some(s.loc_iou),
        b(s.loc_hit),
        Some(s.pointing_box),
        s.pointing_mask,
        s.discriminative_hit.map(|h| h as u8 as f64),
        b(s.zero_map),
        faith.map(|f| f.0),
        faith.map(|f| f.1),
    ];
    debug_assert_eq!(v.len(), METRICS.len());
    v
}

/// Accumulates per-image scores (and deletion/insertion results, when measured) by group, then
/// summarises each group.
#[derive(Default)]
struct Groups {
    scores: BTreeMap<StoredKey, Vec<ImageScores>>,
    faith: BTreeMap<StoredKey, Vec<Option<FaithfulnessScores>>>,
}

impl Groups {
    fn add(&mut self, key: StoredKey, s: ImageScores, faith: Option<FaithfulnessScores>) {
        self.scores.entry(key.clone()).or_default().push(s);
        self.faith.entry(key).or_default().push(faith);
    }

    fn finish(self, cfg: &EvalConfig, out: &mut Scored) -> Result<()> {
        for (key, scores) in self.scores {
            let report = embcam_eval::summarize(&key.0, &scores, cfg)?;
            out.split.push((key.clone(), Some(report.maxboxacc.v2), report.pxap));
            out.tau_curves.push((key.clone(), report.loc_acc_curve.clone()));
            let faith = &self.faith[&key];
            out.rows.extend(scores.iter().zip(faith).map(|(s, f)| {
                let aucs =
                    f.as_ref().map(|f| (f.deletion.similarity_auc, f.insertion.similarity_auc));
                (key.clone(), s.id, values(s, aucs))
            }));
            let measured: Vec<&FaithfulnessScores> = faith.iter().flatten().collect();
            if let Some(first) = measured.first() {
                let n = measured.len() as f64;
                let mean = |pick: fn(&FaithfulnessScores) -> &[f64], i: usize| {
                    measured.iter().map(|f| pick(f)[i]).sum::<f64>() / n
                };
                let curve = (0..first.deletion.fractions.len())
                    .map(|i| {
                        (
                            first.deletion.fractions[i],
                            mean(|f| &f.deletion.similarity, i),
                            mean(|f| &f.insertion.similarity, i),
                        )
                    })
                    .collect();
                out.faith_curves.push((key.clone(), curve));
            }
        }
        Ok(())
    }
}

/// The maps of one method at one stage of one network, as the explain stage stored them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeatmapSet {
    /// Name in tables (`embeddingcam`, `gradcam++`, `embeddingcam (untrained)`).
    pub source: String,
    /// The stage.
    pub stage: String,
    /// The proxy columns, in the order of each image's maps.
    pub columns: Vec<String>,
    /// A target-free method (Eigen-CAM): every column holds the same map, scored once as `-`.
    pub target_free: bool,
    /// Whether the maps come from the trained network (faithfulness is measured on it only).
    pub trained: bool,
    /// The `.npy` file in the stage folder: raw (pre-ReLU) maps, `(images × columns, h, w)`, with
    /// a CSV index of the same name.
    pub file: String,
}

/// What the explain stage leaves besides the heatmap files.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Explained {
    /// The explained images' ids, in the order of the maps.
    pub images: Vec<u32>,
    /// The heatmap files.
    pub sets: Vec<HeatmapSet>,
    /// The trained network's unit class proxies (normalized mean over the proxy set), which the
    /// faithfulness curves measure against: `(class id, vector)`.
    pub class_proxies: Vec<(u32, Vec<f32>)>,
    /// Warnings from the CAM crate.
    pub warnings: Vec<String>,
}

/// Explain the evaluation images with every method × proxy × stage on the trained (and, as a
/// baseline, the untrained) network; write the raw maps (`.npy` + CSV index) and a gallery.
pub fn explain(
    exp_dir: &Path,
    exp: &Experiment,
    data: &Data,
    trained: &Trained,
    device: &Device,
    force: bool,
) -> Result<(Stage, Explained, bool)> {
    let with_untrained = exp.file.eval.baselines.iter().any(|b| b == "untrained");
    let inputs = (
        &trained.stage.key,
        &exp.file.cam,
        &exp.file.dataset.eval_transform,
        exp.file.eval.max_images,
        with_untrained,
        exp.seed,
    );
    let stage = Stage::new(exp_dir, "explain", &inputs)?;
    let result_path = stage.file("explained.json");
    if stage.is_done() && !force {
        let explained = read_json(&result_path)?;
        return Ok((stage, explained, true));
    }
    stage.reset()?;
    let started = Instant::now();
    let images = eval_images(exp, data);
    let mut explained = Explained {
        images: images.iter().map(|&k| data.dataset.images[k].id).collect(),
        ..Explained::default()
    };
    let untrained_net = with_untrained.then(|| untrained(exp, data, device)).transpose()?;
    let mut nets: Vec<(&Net, &str)> = vec![(&trained.net, "")];
    if let Some(n) = &untrained_net {
        nets.push((n, crate::table::UNTRAINED));
    }
    // Every method also runs on the untrained network: each is compared with its own baseline.
    let methods: Vec<Method> =
        exp.file.cam.methods.iter().map(|m| method(m)).collect::<Result<_>>()?;
    for (net, suffix) in nets {
        explain_net(exp, data, net, suffix, &methods, &images, &stage, device, &mut explained)?;
    }
    write_atomic(&result_path, &serde_json::to_vec(&explained)?)?;
    stage.finish(started.elapsed().as_secs_f64())?;
    Ok((stage, explained, false))
}

/// Embed `images` with `net` (`z`, before L2 normalisation): the proxy table.
fn embed(
    net: &Net,
    data: &Data,
    images: &[usize],
    transform: &Transform,
    device: &Device,
) -> Result<Embeddings> {
    let mut ids = Vec::new();
    let mut labels = Vec::new();
    let mut z = Vec::new();
    for chunk in images.chunks(32) {
        let b = load_batch(&data.dataset, chunk, transform, 0)?;
        let x = input_tensor(&b, device);
        z.extend(
            net.forward_raw(x).try_into_vec_as::<f32>().map_err(|e| anyhow::anyhow!("{e:?}"))?,
        );
        ids.extend(b.ids);
        labels.extend(b.labels);
    }
    Ok(Embeddings::new(ids, labels, net.out_dim(), z, "eval")?)
}

fn input_tensor(b: &embcam_cub::load::Batch, device: &Device) -> Tensor<4> {
    image_tensor(b.pixels.clone(), b.len(), b.height as usize, b.width as usize, device)
}

/// `n` RGB images, CHW row-major one after another, as a `[n, 3, h, w]` tensor.
fn image_tensor(pixels: Vec<f32>, n: usize, h: usize, w: usize, device: &Device) -> Tensor<4> {
    Tensor::<4>::from_data(TensorData::new(pixels, [n, 3, h, w]), device)
}

/// The embeddings the proxies were built from: `<name>.npy` (`images × d`, `z` before L2
/// normalisation, f32) and `<name>.csv` (`row,image_id,class_id`).
fn write_embeddings(stage: &Stage, name: &str, table: &Embeddings) -> Result<()> {
    let values: Vec<f32> = (0..table.len()).flat_map(|i| table.row(i).to_vec()).collect();
    embcam_cam::write_npy(
        &stage.file(&format!("{name}.npy")),
        &[table.len(), table.dim()],
        &values,
    )?;
    let mut index = String::from("row,image_id,class_id\n");
    for (i, (id, label)) in table.ids().iter().zip(table.labels()).enumerate() {
        index.push_str(&format!("{i},{id},{label}\n"));
    }
    write_atomic(&stage.file(&format!("{name}.csv")), index.as_bytes())
}

/// The proxy set: the evaluation images, at most `per_class` per class.
fn proxy_table(table: &Embeddings, per_class: Option<usize>) -> Result<Embeddings> {
    let Some(m) = per_class else { return Ok(table.clone()) };
    let mut seen: BTreeMap<u32, usize> = BTreeMap::new();
    let keep: Vec<usize> = (0..table.len())
        .filter(|&i| {
            let n = seen.entry(table.labels()[i]).or_default();
            *n += 1;
            *n <= m
        })
        .collect();
    Ok(Embeddings::new(
        keep.iter().map(|&i| table.ids()[i]).collect(),
        keep.iter().map(|&i| table.labels()[i]).collect(),
        table.dim(),
        keep.iter().flat_map(|&i| table.row(i).to_vec()).collect(),
        "eval",
    )?)
}

/// The identity on a classifier's logits, row `i` standing for training class `classes[i]` (the
/// order the classifier head was trained with): with it, a classifier-row proxy is the one-hot
/// vector of a class, and EmbeddingCAM on it is Grad-CAM of that class's score.
fn logit_classifier(classes: &[u32], dim: usize) -> Classifier {
    let mut weight = vec![0.0; dim * dim];
    for i in 0..dim {
        weight[i * dim + i] = 1.0;
    }
    Classifier { classes: classes.iter().copied().take(dim).collect(), dim, weight }
}

#[allow(clippy::too_many_arguments)]
fn explain_net(
    exp: &Experiment,
    data: &Data,
    net: &Net,
    suffix: &str,
    methods: &[Method],
    images: &[usize],
    stage: &Stage,
    device: &Device,
    explained: &mut Explained,
) -> Result<()> {
    let c = &exp.file.cam;
    let transform = eval_transform(exp);
    let table = embed(net, data, images, &transform, device)?;
    write_embeddings(stage, &format!("embeddings{}", suffix.replace(' ', "_")), &table)?;
    let mut bank = ProxyBank::new(proxy_table(&table, c.proxy_images_per_class)?)?;
    if c.proxies.iter().any(|p| p == "class-score") {
        bank = bank.with_classifier(logit_classifier(&data.split.train_classes, net.out_dim()))?;
    }
    if suffix.is_empty() {
        for class in bank.classes() {
            explained.class_proxies.push((class, bank.class_mean(class, None)?.vector));
        }
    }
    let specs: Vec<ProxySpec> =
        c.proxies.iter().map(|p| proxy_spec(p, exp)).collect::<Result<_>>()?;
    let stages: Vec<String> = if c.stages.is_empty() {
        vec![net.stage_names().last().context("a network has stages")?.to_string()]
    } else {
        c.stages.clone()
    };
    let target =
        if c.target == "post-l2" { Target::dot().on(Space::Normalized) } else { Target::dot() };
    // The gallery: the first `c.gallery` images of the trained network, every method × proxy.
    let gallery_images = if suffix.is_empty() { c.gallery.min(images.len()) } else { 0 };
    let gallery_truths: Vec<ImageTruth> =
        images[..gallery_images].iter().map(|&k| truth(data, k)).collect::<Result<_>>()?;
    let originals: Vec<image::RgbImage> = gallery_truths
        .iter()
        .map(|t| {
            let rec = data.dataset.image(t.id).context("known image")?;
            Ok(embcam_cub::load::decode_rgb(&data.dataset.image_path(rec), t.id)?)
        })
        .collect::<Result<_>>()?;
    let pb = bar(if suffix.is_empty() { "explaining" } else { "untrained" });
    pb.set_length((images.len() * stages.len()) as u64);
    for st in &stages {
        embcam_cam::check_stage(net, st)?;
        let mut opts = CamOptions::new(st.clone());
        opts.target = target.clone();
        opts.closed_form = if c.closed_form { ClosedForm::Auto } else { ClosedForm::Off };
        let names: Vec<String> = methods
            .iter()
            .map(|m| format!("{}{}-{st}", label(*m), suffix.replace(' ', "_")))
            .collect();
        let mut writers: Vec<HeatmapWriter> = names
            .iter()
            .map(|name| HeatmapWriter::create(&stage.dir, name, Stored::Raw))
            .collect::<Result<_, _>>()?;
        let mut gallery = crate::gallery::Gallery::default();
        for (chunk_i, chunk) in images.chunks(c.batch_size).enumerate() {
            let batch = load_batch(&data.dataset, chunk, &transform, 0)?;
            let x = input_tensor(&batch, device);
            let queries: Vec<Query<'_>> = batch
                .ids
                .iter()
                .zip(&batch.labels)
                .map(|(&id, &label)| {
                    let row = table.row_of(id).context("embedded image")?;
                    Ok(Query { id, label, embedding: table.row(row) })
                })
                .collect::<Result<_>>()?;
            let proxies = bank.batch(&specs, &queries)?;
            let outs =
                embcam_cam::explain_many(net, x, &proxies, methods, &opts, &ProgressBar::hidden())?;
            for (m, (out, writer)) in methods.iter().zip(outs.iter().zip(writers.iter_mut())) {
                writer.append(&out.maps)?;
                for w in &out.warnings {
                    let msg = format!("{}{suffix}: {w}", label(*m));
                    if !explained.warnings.contains(&msg) {
                        explained.warnings.push(msg);
                    }
                }
                for b in 0..batch.len() {
                    let row = chunk_i * c.batch_size + b;
                    let (Some(t), Some(img)) = (gallery_truths.get(row), originals.get(row)) else {
                        continue;
                    };
                    let proxies_shown = if *m == Method::EigenCam { 1 } else { c.proxies.len() };
                    for p in 0..proxies_shown {
                        let map = out.maps.to_original(b, p, &batch.geometries[b], 0.0);
                        let style = embcam_cam::OverlayStyle::default();
                        let tile =
                            embcam_cam::overlay(img, &map, Some(&t.bbox), t.mask.as_ref(), &style)?;
                        let column = if *m == Method::EigenCam { "-" } else { &c.proxies[p] };
                        gallery.push(row, t.id, label(*m), column, tile);
                    }
                }
            }
            pb.inc(batch.len() as u64);
        }
        for w in writers {
            w.finish()?;
        }
        for (m, name) in methods.iter().zip(names) {
            explained.sets.push(HeatmapSet {
                source: format!("{}{suffix}", label(*m)),
                stage: st.clone(),
                columns: c.proxies.clone(),
                target_free: *m == Method::EigenCam,
                trained: suffix.is_empty(),
                file: format!("{name}.npy"),
            });
        }
        gallery.write(&stage.dir, &format!("gallery-{st}"), 160)?;
    }
    pb.finish_and_clear();
    Ok(())
}

/// Score every stored heatmap and every baseline: per-image rows, split-level metrics, τ curves,
/// and (when asked) deletion/insertion curves on the trained network.
pub fn evaluate(
    exp_dir: &Path,
    exp: &Experiment,
    data: &Data,
    trained: &Trained,
    explain: (&Stage, &Explained),
    device: &Device,
    force: bool,
) -> Result<(Stage, Scored, bool)> {
    let (explain_stage, explained) = explain;
    let stage = Stage::new(exp_dir, "evaluate", &(&explain_stage.key, &exp.file.eval))?;
    let result_path = stage.file("scored.json");
    if stage.is_done() && !force {
        let scored = read_json(&result_path)?;
        return Ok((stage, scored, true));
    }
    stage.reset()?;
    let started = Instant::now();
    let cfg = eval_config(exp);
    let images = eval_images(exp, data);
    let ids: Vec<u32> = images.iter().map(|&k| data.dataset.images[k].id).collect();
    ensure!(
        ids == explained.images,
        "{} explained other images than this evaluation asks for; rerun with --force",
        explain_stage.dir.display()
    );
    let truths: Vec<ImageTruth> = images.iter().map(|&k| truth(data, k)).collect::<Result<_>>()?;
    let transform = eval_transform(exp);
    let geometries: Vec<Geometry> = truths.iter().map(|t| geometry(&transform, t)).collect();
    let mut groups = Groups::default();
    let mut scored = Scored { warnings: explained.warnings.clone(), ..Scored::default() };

    // Baselines that need no network.
    for name in &exp.file.eval.baselines {
        let map = match name.as_str() {
            "center-gaussian" => BaselineMap::CentreGaussian { sigma: 0.25 },
            "uniform-random" => BaselineMap::UniformRandom { seed: exp.seed },
            _ => continue,
        };
        let maps: Vec<Heatmap> = truths.iter().map(|t| map.heatmap(t)).collect();
        for s in embcam_eval::score_all(maps.iter().zip(&truths).collect::<Vec<_>>(), &cfg)? {
            groups.add((name.clone(), "-".into(), "-".into()), s, None);
        }
    }

    let faithfulness = exp
        .file
        .eval
        .faithfulness
        .then(|| Faithfulness::new(&explained.class_proxies, exp.file.eval.faithfulness_steps));
    let pb = bar("scoring");
    let columns: usize =
        explained.sets.iter().map(|s| if s.target_free { 1 } else { s.columns.len() }).sum();
    pb.set_length((columns * images.len()) as u64);
    for set in &explained.sets {
        let path = explain_stage.dir.join(&set.file);
        let (shape, raw) = embcam_cam::read_npy(&path)?;
        let (h, w) = match shape[..] {
            [rows, h, w] if rows == ids.len() * set.columns.len() => (h, w),
            _ => bail!(
                "{}: shape {shape:?} does not hold {} images × {} proxies; rerun with --force",
                path.display(),
                ids.len(),
                set.columns.len()
            ),
        };
        let map_of = |i: usize, p: usize| -> &[f32] {
            let at = (i * set.columns.len() + p) * h * w;
            &raw[at..at + h * w]
        };
        let relu = |m: &[f32]| -> Vec<f32> { m.iter().map(|&v| v.max(0.0)).collect() };
        let shown: Vec<(usize, &str)> = if set.target_free {
            vec![(0, "-")]
        } else {
            set.columns.iter().map(String::as_str).enumerate().collect()
        };
        let faith = faithfulness.as_ref().filter(|_| set.trained);
        for (p, proxy) in shown {
            let key = (set.source.clone(), proxy.to_string(), set.stage.clone());
            // In chunks, so that memory holds one chunk of full-resolution maps at a time.
            for (c, chunk) in images.chunks(64).enumerate() {
                let range = c * 64..c * 64 + chunk.len();
                let maps: Vec<Heatmap> = range
                    .clone()
                    .into_par_iter()
                    .map(|i| Heatmap {
                        width: truths[i].width,
                        height: truths[i].height,
                        values: geometries[i].map_to_original(
                            &relu(map_of(i, p)),
                            w as u32,
                            h as u32,
                            0.0,
                        ),
                    })
                    .collect();
                let scores = embcam_eval::score_all(
                    maps.iter().zip(&truths[range.clone()]).collect::<Vec<_>>(),
                    &cfg,
                )?;
                let curves: Vec<Option<FaithfulnessScores>> = match faith {
                    None => vec![None; chunk.len()],
                    Some(f) => {
                        let batch = load_batch(&data.dataset, chunk, &transform, 0)?;
                        (0..batch.len())
                            .map(|b| {
                                let heat = resize_bilinear(
                                    &relu(map_of(range.start + b, p)),
                                    w as u32,
                                    h as u32,
                                    batch.width,
                                    batch.height,
                                );
                                f.curves(&trained.net, &batch, b, &heat, device).map(Some)
                            })
                            .collect::<Result<_>>()?
                    }
                };
                for (s, f) in scores.into_iter().zip(curves) {
                    groups.add(key.clone(), s, f);
                }
                pb.inc(chunk.len() as u64);
            }
        }
    }
    pb.finish_and_clear();
    groups.finish(&cfg, &mut scored)?;
    write_atomic(&result_path, &serde_json::to_vec(&scored)?)?;
    stage.finish(started.elapsed().as_secs_f64())?;
    Ok((stage, scored, false))
}

/// Deletion and insertion curves in embedding space (RISE, Petsiuk et al. 2018): pixels removed
/// (or revealed) in heatmap order, tracking `y(x')·p_c` against the true class's normalized-mean
/// proxy.
struct Faithfulness {
    /// Unit class proxies, row-major `classes × d`.
    proxies: Vec<f32>,
    /// Class id → row.
    rows: BTreeMap<u32, usize>,
    dim: usize,
    cfg: embcam_eval::FaithfulnessConfig,
}

impl Faithfulness {
    fn new(class_proxies: &[(u32, Vec<f32>)], steps: usize) -> Self {
        let proxies = class_proxies.iter().flat_map(|(_, v)| v.iter().copied()).collect();
        let rows = class_proxies.iter().enumerate().map(|(i, (c, _))| (*c, i)).collect();
        let dim = class_proxies.first().map_or(0, |(_, v)| v.len());
        let cfg = embcam_eval::FaithfulnessConfig { steps: steps.max(1), ..Default::default() };
        Faithfulness { proxies, rows, dim, cfg }
    }

    /// The deletion and insertion curves of image `b` of `batch` under heatmap `heat` (at the
    /// input's resolution).
    fn curves(
        &self,
        net: &Net,
        batch: &embcam_cub::load::Batch,
        b: usize,
        heat: &[f32],
        device: &Device,
    ) -> Result<FaithfulnessScores> {
        let (h, w) = (batch.height as usize, batch.width as usize);
        let n = 3 * h * w;
        let input = embcam_eval::FaithfulnessInput {
            id: batch.ids[b],
            image: &batch.pixels[b * n..(b + 1) * n],
            channels: 3,
            height: h,
            width: w,
            heatmap: heat,
            proxies: &self.proxies,
            dim: self.dim,
            class: *self.rows.get(&batch.labels[b]).context("the image's class has a proxy")?,
        };
        let embed = |images: &[Vec<f32>]| -> Result<Vec<Vec<f32>>, embcam_model::ModelError> {
            let flat: Vec<f32> = images.iter().flatten().copied().collect();
            let x = image_tensor(flat, images.len(), h, w, device);
            let y = net
                .forward(x)
                .try_into_vec_as::<f32>()
                .map_err(|e| embcam_model::ModelError::TensorRead(e.to_string()))?;
            Ok(y.chunks(self.dim).map(<[f32]>::to_vec).collect())
        };
        Ok(embcam_eval::deletion_insertion(&input, &self.cfg, embed)?)
    }
}

/// The name a method goes by in tables.
fn label(m: Method) -> &'static str {
    match m {
        Method::GradCam => "embeddingcam",
        other => other.name(),
    }
}

/// The gallery images of an explain stage.
pub fn galleries(stage: &Stage) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(&stage.dir)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("gallery-"))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The evaluate stage recomputes each image's geometry from its size instead of decoding it
    /// again; it must be the loader's, for both evaluation transforms.
    #[test]
    fn geometry_from_the_size_is_the_loaders() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = embcam_cub::synth::SynthConfig {
            classes: 2,
            images_per_class: 3,
            min_side: 60,
            max_side: 90,
            seed: 3,
            ..Default::default()
        };
        let s = generate(dir.path(), &cfg, &ProgressBar::hidden()).unwrap();
        let ds = Dataset::open(&s.root, Some(&s.segmentations)).unwrap();
        let all: Vec<usize> = (0..ds.images.len()).collect();
        for t in [EvalTransform::center_crop(40), EvalTransform::squash(40)] {
            let transform = Transform::Eval(t);
            let batch = load_batch(&ds, &all, &transform, 0).unwrap();
            for (k, rec) in ds.images.iter().enumerate() {
                let (width, height) =
                    embcam_cub::load::image_size(&ds.image_path(rec), rec.id).unwrap();
                let t = ImageTruth {
                    id: rec.id,
                    width,
                    height,
                    bbox: rec.bbox,
                    mask: None,
                    parts: Vec::new(),
                    discriminative_part: None,
                };
                assert_eq!(geometry(&transform, &t), batch.geometries[k], "image {}", rec.id);
            }
        }
    }
}
