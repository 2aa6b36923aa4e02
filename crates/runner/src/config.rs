//! Experiment files: TOML → raw serde structs (`deny_unknown_fields`, explicit defaults) →
//! grid expansion → validated [`Experiment`]s (one per grid cell and seed).
//!
//! Every key, its default and its meaning are listed in `experiments/README.md`. A typo is an
//! error that names the key and the file. A `[grid]` table maps dotted keys to lists; the run is
//! the cartesian product of the lists, each cell repeated for every seed in `seeds`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use serde::{Deserialize, Serialize};

/// The whole file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ExperimentFile {
    /// Name of the experiment (results go to `<output.dir>/<name>/`); default: the file's stem.
    #[serde(default)]
    pub name: Option<String>,
    /// Seeds: each grid cell runs once per seed (the seed drives initialisation, sampling and
    /// augmentation). Default `[0]`. At least one; no seed twice.
    #[serde(default = "default_seeds")]
    pub seeds: Vec<u64>,
    /// Dataset and split.
    pub dataset: DatasetSection,
    /// The network.
    #[serde(default)]
    pub model: ModelSection,
    /// Training.
    #[serde(default)]
    pub train: TrainSection,
    /// Explanations.
    #[serde(default)]
    pub cam: CamSection,
    /// Scoring.
    #[serde(default)]
    pub eval: EvalSection,
    /// Where results go.
    #[serde(default)]
    pub output: OutputSection,
    /// Ablation grid: dotted key → list of values (no value twice in one list, no two cells
    /// that read as the same experiment).
    #[serde(default)]
    pub grid: BTreeMap<String, Vec<toml::Value>>,
}

fn default_seeds() -> Vec<u64> {
    vec![0]
}

/// `[dataset]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DatasetSection {
    /// `synth` (generate SynthCUB at `path` if absent) or `cub` (real CUB-200-2011 at `path`).
    pub kind: DatasetKind,
    /// For `synth`: the folder to generate into (holding `CUB_200_2011/`); for `cub`: the
    /// `CUB_200_2011` folder. Relative paths are relative to the working directory.
    pub path: PathBuf,
    /// The segmentation root; default `segmentations/` beside the `CUB_200_2011` folder.
    #[serde(default)]
    pub segmentations: Option<PathBuf>,
    /// `class-disjoint` (default) or `official`.
    #[serde(default = "default_split")]
    pub split: String,
    /// Keep only the first N classes (1 or more; all when absent).
    #[serde(default)]
    pub max_classes: Option<usize>,
    /// Keep at most M images per class (1 or more; all when absent).
    #[serde(default)]
    pub max_per_class: Option<usize>,
    /// Model input side in pixels: 16–1024, and at least 32 for a ResNet (the small CNN
    /// downsamples by 16, a ResNet by 32).
    #[serde(default = "default_image_size")]
    pub image_size: u32,
    /// Evaluation transform: `squash` (whole image, default) or `center-crop`.
    #[serde(default = "default_eval_transform")]
    pub eval_transform: String,
    /// SynthCUB settings (`kind = "synth"` only).
    #[serde(default)]
    pub synth: Option<SynthSection>,
}

fn default_split() -> String {
    "class-disjoint".into()
}
fn default_image_size() -> u32 {
    96
}
fn default_eval_transform() -> String {
    "squash".into()
}

/// Dataset kinds.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetKind {
    /// Generated SynthCUB.
    Synth,
    /// Real CUB-200-2011.
    Cub,
}

/// `[dataset.synth]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SynthSection {
    /// Classes.
    #[serde(default = "default_synth_classes")]
    pub classes: u32,
    /// Images per class.
    #[serde(default = "default_synth_per_class")]
    pub images_per_class: u32,
    /// Smallest long side.
    #[serde(default = "default_min_side")]
    pub min_side: u32,
    /// Largest long side.
    #[serde(default = "default_max_side")]
    pub max_side: u32,
    /// Generator seed (independent of the experiment's seeds: the data stays fixed).
    #[serde(default)]
    pub seed: u64,
    /// Difficulty preset: `easy`, `standard` (default: CUB-like geometry) or `hard`.
    #[serde(default)]
    pub difficulty: DifficultyPreset,
    /// Overrides the preset's mean box share of the frame (0.02–0.8).
    #[serde(default)]
    pub bird_area: Option<f32>,
    /// Overrides the preset's background clutter (0–1).
    #[serde(default)]
    pub clutter: Option<f32>,
    /// Overrides the preset's occlusion probability (0–1).
    #[serde(default)]
    pub occlusion: Option<f32>,
    /// Overrides the preset's number of attributes separating a pair (1–4).
    #[serde(default)]
    pub pair_differences: Option<u32>,
}

/// SynthCUB difficulty presets ([`embcam_cub::synth::Difficulty`]).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum DifficultyPreset {
    /// Little clutter, rare occlusion, pairs two attributes apart.
    Easy,
    /// CUB-like geometry, moderate clutter, pairs one attribute apart.
    #[default]
    Standard,
    /// Small birds, full clutter, frequent occlusion.
    Hard,
}

impl SynthSection {
    /// The generator's configuration.
    pub fn config(&self) -> embcam_cub::synth::SynthConfig {
        use embcam_cub::synth::Difficulty;
        let preset = match self.difficulty {
            DifficultyPreset::Easy => Difficulty::easy(),
            DifficultyPreset::Standard => Difficulty::standard(),
            DifficultyPreset::Hard => Difficulty::hard(),
        };
        embcam_cub::synth::SynthConfig {
            classes: self.classes,
            images_per_class: self.images_per_class,
            min_side: self.min_side,
            max_side: self.max_side,
            seed: self.seed,
            difficulty: Difficulty {
                bird_area: self.bird_area.unwrap_or(preset.bird_area),
                clutter: self.clutter.unwrap_or(preset.clutter),
                occlusion: self.occlusion.unwrap_or(preset.occlusion),
                pair_differences: self.pair_differences.unwrap_or(preset.pair_differences),
            },
        }
    }
}

fn default_synth_classes() -> u32 {
    20
}
fn default_synth_per_class() -> u32 {
    40
}
fn default_min_side() -> u32 {
    160
}
fn default_max_side() -> u32 {
    256
}

impl Default for SynthSection {
    fn default() -> Self {
        SynthSection {
            classes: default_synth_classes(),
            images_per_class: default_synth_per_class(),
            min_side: default_min_side(),
            max_side: default_max_side(),
            seed: 0,
            difficulty: DifficultyPreset::Standard,
            bird_area: None,
            clutter: None,
            occlusion: None,
            pair_differences: None,
        }
    }
}

/// `[model]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// `small-cnn`, `resnet18`, `resnet34` or `resnet50`.
    #[serde(default = "default_backbone")]
    pub backbone: String,
    /// `embedding` (triplet loss) or `classifier` (softmax cross-entropy; Grad-CAM comparison).
    #[serde(default = "default_head")]
    pub head: String,
    /// Embedding dimension `d`: 1–4096.
    #[serde(default = "default_dim")]
    pub embedding_dim: usize,
    /// Whether the network L2-normalises its output.
    #[serde(default = "yes")]
    pub l2_normalize: bool,
    /// Pretrained backbone weights (torchvision `.pth` or `.safetensors`).
    #[serde(default)]
    pub pretrained: Option<PathBuf>,
    /// `flex` (default), `tch-cpu` or `tch-cuda`.
    #[serde(default = "default_device")]
    pub device: String,
    /// Channel widths of the small CNN's four blocks.
    #[serde(default = "default_widths")]
    pub widths: [usize; 4],
}

fn default_widths() -> [usize; 4] {
    [32, 64, 128, 256]
}

fn default_backbone() -> String {
    "small-cnn".into()
}
fn default_head() -> String {
    "embedding".into()
}
fn default_dim() -> usize {
    64
}
fn yes() -> bool {
    true
}

fn default_device() -> String {
    "flex".into()
}

impl Default for ModelSection {
    fn default() -> Self {
        ModelSection {
            backbone: default_backbone(),
            head: default_head(),
            embedding_dim: default_dim(),
            l2_normalize: true,
            pretrained: None,
            device: default_device(),
            widths: default_widths(),
        }
    }
}

/// `[train]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrainSection {
    /// Epochs: 1–10000.
    #[serde(default = "default_epochs")]
    pub epochs: usize,
    /// Triplet mining: `all`, `semi-hard` or `batch-hard`.
    #[serde(default = "default_mining")]
    pub mining: String,
    /// Triplet margin.
    #[serde(default = "default_margin")]
    pub margin: f32,
    /// Classes per batch (P of P×K): 2–1024, with P·K ≤ 4096.
    #[serde(default = "default_p")]
    pub p: usize,
    /// Images per class per batch (K of P×K): 2–1024, with P·K ≤ 4096.
    #[serde(default = "default_k")]
    pub k: usize,
    /// `adam` or `sgd`.
    #[serde(default = "default_optimizer")]
    pub optimizer: String,
    /// Learning rate.
    #[serde(default = "default_lr")]
    pub lr: f64,
    /// Weight decay.
    #[serde(default)]
    pub weight_decay: f64,
    /// SGD momentum.
    #[serde(default = "default_momentum")]
    pub momentum: f64,
    /// `cosine`, `step` or `constant`.
    #[serde(default = "default_schedule")]
    pub schedule: String,
    /// Random resized crop + flip during training (`false`: the evaluation transform).
    #[serde(default = "yes")]
    pub augment: bool,
    /// The random crop's area as a fraction of the image, `[min, max]`.
    #[serde(default = "default_crop_scale")]
    pub crop_scale: [f32; 2],
}

fn default_crop_scale() -> [f32; 2] {
    [0.35, 1.0]
}

fn default_epochs() -> usize {
    8
}
fn default_mining() -> String {
    "semi-hard".into()
}
fn default_margin() -> f32 {
    0.2
}
fn default_p() -> usize {
    8
}
fn default_k() -> usize {
    4
}
fn default_optimizer() -> String {
    "adam".into()
}
fn default_lr() -> f64 {
    1e-3
}
fn default_momentum() -> f64 {
    0.9
}
fn default_schedule() -> String {
    "cosine".into()
}

impl Default for TrainSection {
    fn default() -> Self {
        TrainSection {
            epochs: default_epochs(),
            mining: default_mining(),
            margin: default_margin(),
            p: default_p(),
            k: default_k(),
            optimizer: default_optimizer(),
            lr: default_lr(),
            weight_decay: 0.0,
            momentum: default_momentum(),
            schedule: default_schedule(),
            augment: true,
            crop_scale: default_crop_scale(),
        }
    }
}

/// `[cam]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CamSection {
    /// CAM methods: `embeddingcam` (Grad-CAM on the proxy score), `gradcam++`, `hirescam`,
    /// `xgradcam`, `layercam`, `scorecam`, `eigencam`. At least one; none twice.
    #[serde(default = "default_methods")]
    pub methods: Vec<String>,
    /// Proxies: `normalized-mean`, `single-point`, `predicted-class`, `knn`, `wrong-class`, and
    /// for `model.head = "classifier"` only, `class-score` (a one-hot proxy on the logits of the
    /// top class: classic Grad-CAM). At least one; none twice.
    #[serde(default = "default_proxies")]
    pub proxies: Vec<String>,
    /// Stages to explain; default: the backbone's last stage. None twice.
    #[serde(default)]
    pub stages: Vec<String>,
    /// Score on the embedding before (`pre-l2`, the paper) or after (`post-l2`) L2 normalisation.
    #[serde(default = "default_target")]
    pub target: String,
    /// Leave the query image out of its class's normalized-mean proxy.
    #[serde(default)]
    pub leave_one_out: bool,
    /// Use at most this many images per class in the set the proxies are built from (1 or more;
    /// all when absent).
    #[serde(default)]
    pub proxy_images_per_class: Option<usize>,
    /// k of the k-nearest-neighbour proxy: 1–1024, and (checked once the data is read, before
    /// training) fewer than the images in the proxy set.
    #[serde(default = "default_knn")]
    pub knn: usize,
    /// Use the closed form where it applies (last stage, GAP → linear head).
    #[serde(default = "yes")]
    pub closed_form: bool,
    /// Images in the overlay gallery.
    #[serde(default = "default_gallery")]
    pub gallery: usize,
    /// Batch size for explaining: 1–1024.
    #[serde(default = "default_cam_batch")]
    pub batch_size: usize,
}

fn default_methods() -> Vec<String> {
    vec!["embeddingcam".into()]
}
fn default_proxies() -> Vec<String> {
    vec!["normalized-mean".into(), "single-point".into()]
}
fn default_target() -> String {
    "pre-l2".into()
}
fn default_knn() -> usize {
    5
}
fn default_gallery() -> usize {
    6
}
fn default_cam_batch() -> usize {
    16
}

impl Default for CamSection {
    fn default() -> Self {
        CamSection {
            methods: default_methods(),
            proxies: default_proxies(),
            stages: Vec::new(),
            target: default_target(),
            leave_one_out: false,
            proxy_images_per_class: None,
            knn: default_knn(),
            closed_form: true,
            gallery: default_gallery(),
            batch_size: default_cam_batch(),
        }
    }
}

/// `[eval]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EvalSection {
    /// Localisation threshold τ on the max-normalised map.
    #[serde(default = "default_tau")]
    pub tau: f32,
    /// IoU for a localisation hit.
    #[serde(default = "default_iou")]
    pub iou: f32,
    /// Mask foreground threshold (0–255).
    #[serde(default = "default_mask_threshold")]
    pub mask_threshold: u8,
    /// Pointing-game tolerance in pixels.
    #[serde(default)]
    pub pointing_tolerance: f32,
    /// Baselines: `center-gaussian`, `uniform-random`, `untrained`. None twice.
    #[serde(default = "default_baselines")]
    pub baselines: Vec<String>,
    /// Evaluate at most this many images (1 or more; all when absent).
    #[serde(default)]
    pub max_images: Option<usize>,
    /// Deletion/insertion curves (costly: one forward pass per step per image).
    #[serde(default)]
    pub faithfulness: bool,
    /// Steps of the deletion/insertion curves: 1–1000.
    #[serde(default = "default_steps")]
    pub faithfulness_steps: usize,
}

fn default_tau() -> f32 {
    0.2
}
fn default_iou() -> f32 {
    0.5
}
fn default_mask_threshold() -> u8 {
    128
}
fn default_baselines() -> Vec<String> {
    vec!["center-gaussian".into(), "uniform-random".into(), "untrained".into()]
}
fn default_steps() -> usize {
    16
}

impl Default for EvalSection {
    fn default() -> Self {
        EvalSection {
            tau: default_tau(),
            iou: default_iou(),
            mask_threshold: default_mask_threshold(),
            pointing_tolerance: 0.0,
            baselines: default_baselines(),
            max_images: None,
            faithfulness: false,
            faithfulness_steps: default_steps(),
        }
    }
}

/// `[output]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OutputSection {
    /// The results folder.
    #[serde(default = "default_results")]
    pub dir: PathBuf,
}

fn default_results() -> PathBuf {
    PathBuf::from("results")
}

impl Default for OutputSection {
    fn default() -> Self {
        OutputSection { dir: default_results() }
    }
}

/// One cell of the grid with one seed: a fully specified experiment.
#[derive(Debug, Clone, PartialEq)]
pub struct Experiment {
    /// Experiment name.
    pub name: String,
    /// The cell's label (`train.margin=0.1,cam.target=post-l2`; empty without a grid).
    pub cell: String,
    /// The seed.
    pub seed: u64,
    /// The configuration with the cell's values applied.
    pub file: ExperimentFile,
}

/// The most runs (grid cells × seeds) one experiment file may ask for.
pub const MAX_RUNS: usize = 10_000;

/// Read, expand and validate an experiment file.
pub fn load(path: &Path) -> Result<Vec<Experiment>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading experiment file {}", path.display()))?;
    parse(&text, path)
}

/// Parse experiment-file text (`path` names it in errors).
pub fn parse(text: &str, path: &Path) -> Result<Vec<Experiment>> {
    let value: toml::Table =
        toml::from_str(text).with_context(|| format!("{} is not valid TOML", path.display()))?;
    let base: ExperimentFile = toml::Value::Table(value.clone())
        .try_into()
        .with_context(|| format!("in experiment file {}", path.display()))?;
    let name = match &base.name {
        Some(n) => n.clone(),
        None => path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(),
    };
    ensure!(
        !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_".contains(c)),
        "{}: experiment name `{name}` must be non-empty ASCII letters, digits, `-` or `_`",
        path.display()
    );
    ensure!(!base.seeds.is_empty(), "{}: `seeds` must list at least one seed", path.display());
    if let Some(key) = base.grid.keys().find(|k| *k == "seeds" || *k == "name") {
        bail!(
            "{}: [grid] cannot vary `{key}`: every cell runs the top-level `seeds` under the \
             file's `name`; set them at the top of the file",
            path.display()
        );
    }
    if let Some((key, _)) = base.grid.iter().find(|(_, values)| values.is_empty()) {
        bail!(
            "{}: [grid] key `{key}` has an empty list, which makes no runs; give it at least one \
             value or remove it",
            path.display()
        );
    }
    // Count before expanding: a grid of a few long lists multiplies past what memory holds.
    let runs = base.grid.values().fold(base.seeds.len(), |n, v| n.saturating_mul(v.len()));
    ensure!(
        runs <= MAX_RUNS,
        "{}: [grid] × `seeds` asks for {runs} runs, more than the {MAX_RUNS} allowed; \
         split the experiment into several files",
        path.display()
    );
    if let Some(seed) = first_repeat(&base.seeds) {
        bail!(
            "{}: `seeds` lists {seed} twice; every run of that seed would be counted twice. \
             List each seed once",
            path.display()
        );
    }
    for (key, values) in &base.grid {
        if let Some(v) = first_repeat(values.iter().map(toml::Value::to_string)) {
            bail!(
                "{}: [grid] key `{key}` lists {v} twice; its runs would be counted twice. \
                 List each value once",
                path.display()
            );
        }
    }
    let mut out = Vec::new();
    // The configuration of each cell so far, to catch two spellings of one value (`1`, `1.0`).
    let mut made: HashMap<String, String> = HashMap::new();
    for cell in cells(&base.grid) {
        let mut table = value.clone();
        table.remove("grid");
        let mut label = Vec::new();
        for (key, v) in &cell {
            set_dotted(&mut table, key)
                .with_context(|| format!("{}: [grid] key `{key}`", path.display()))?
                .clone_from(v);
            label.push(format!("{key}={}", show(v)));
        }
        let mut file: ExperimentFile = toml::Value::Table(table)
            .try_into()
            .with_context(|| format!("{}: [grid] cell {}", path.display(), label.join(",")))?;
        file.name = Some(name.clone());
        validate(&file).with_context(|| format!("in experiment file {}", path.display()))?;
        if let Some(other) = made.insert(format!("{file:?}"), label.join(",")) {
            bail!(
                "{}: [grid] cells {other} and {} are the same experiment (the values read the \
                 same); its runs would be counted twice. List each value once",
                path.display(),
                label.join(",")
            );
        }
        for &seed in &base.seeds {
            out.push(Experiment {
                name: name.clone(),
                cell: label.join(","),
                seed,
                file: file.clone(),
            });
        }
    }
    Ok(out)
}

fn show(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The cartesian product of the grid's lists, in key order.
fn cells(grid: &BTreeMap<String, Vec<toml::Value>>) -> Vec<Vec<(String, toml::Value)>> {
    let mut cells = vec![Vec::new()];
    for (key, values) in grid {
        cells = cells
            .into_iter()
            .flat_map(|c| {
                values.iter().map(move |v| {
                    let mut c = c.clone();
                    c.push((key.clone(), v.clone()));
                    c
                })
            })
            .collect();
    }
    cells
}

/// The slot for a dotted key (`train.margin`), creating missing tables; the key's last part
/// must name a field (checked when the table is deserialised).
fn set_dotted<'a>(table: &'a mut toml::Table, key: &str) -> Result<&'a mut toml::Value> {
    let parts: Vec<&str> = key.split('.').collect();
    ensure!(parts.iter().all(|p| !p.is_empty()), "malformed dotted key");
    let (last, path) = parts.split_last().context("empty key")?;
    let mut t = table;
    for p in path {
        let entry =
            t.entry(p.to_string()).or_insert_with(|| toml::Value::Table(Default::default()));
        t = match entry {
            toml::Value::Table(inner) => inner,
            _ => bail!("`{p}` is not a table"),
        };
    }
    Ok(t.entry(last.to_string()).or_insert(toml::Value::Boolean(false)))
}

const BACKBONES: &[&str] = &["small-cnn", "resnet18", "resnet34", "resnet50"];
const METHODS: &[&str] =
    &["embeddingcam", "gradcam++", "hirescam", "xgradcam", "layercam", "scorecam", "eigencam"];
const PROXIES: &[&str] =
    &["normalized-mean", "single-point", "predicted-class", "knn", "wrong-class", "class-score"];
const BASELINES: &[&str] = &["center-gaussian", "uniform-random", "untrained"];

fn one_of(what: &str, value: &str, allowed: &[&str]) -> Result<()> {
    ensure!(allowed.contains(&value), "{what} `{value}` is not one of: {}", allowed.join(", "));
    Ok(())
}

/// The first item seen a second time.
fn first_repeat<T: Eq + std::hash::Hash>(items: impl IntoIterator<Item = T>) -> Option<T> {
    let mut seen = HashSet::new();
    for x in items {
        if seen.contains(&x) {
            return Some(x);
        }
        seen.insert(x);
    }
    None
}

/// A list whose entries each run once: a repeat would run, and count, its images twice.
fn distinct(key: &str, items: &[String]) -> Result<()> {
    if let Some(x) = first_repeat(items) {
        bail!("{key} lists `{x}` twice; its images would be counted twice. List it once");
    }
    Ok(())
}

/// A number inside its documented range.
fn within(key: &str, value: usize, range: std::ops::RangeInclusive<usize>) -> Result<()> {
    ensure!(
        range.contains(&value),
        "{key} = {value} is out of range: it must be {}–{}",
        range.start(),
        range.end()
    );
    Ok(())
}

/// An optional count that, when given, must be at least 1 (absent means "all").
fn positive_or_absent(key: &str, value: Option<usize>) -> Result<()> {
    ensure!(
        value != Some(0),
        "{key} = 0 would keep nothing: give 1 or more, or leave the key out to keep all"
    );
    Ok(())
}

/// The smallest input side a backbone takes: its downsampling factor (the small CNN halves the
/// side four times, a ResNet five), so that its last feature map is at least 1×1.
pub fn min_input_side(backbone: embcam_model::BackboneKind) -> usize {
    use embcam_model::BackboneKind::*;
    match backbone {
        SmallCnn => 16,
        Resnet18 | Resnet34 | Resnet50 => 32,
    }
}

/// Checks that serde cannot express: names from fixed sets, ranges, combinations.
fn validate(f: &ExperimentFile) -> Result<()> {
    let d = &f.dataset;
    one_of("dataset.split", &d.split, &["class-disjoint", "official"])?;
    one_of("dataset.eval_transform", &d.eval_transform, &["squash", "center-crop"])?;
    within("dataset.image_size", d.image_size as usize, 16..=1024)?;
    positive_or_absent("dataset.max_classes", d.max_classes)?;
    positive_or_absent("dataset.max_per_class", d.max_per_class)?;
    ensure!(
        d.synth.is_none() || d.kind == DatasetKind::Synth,
        "[dataset.synth] only applies to kind = \"synth\""
    );
    if let Some(s) = &d.synth {
        s.config().validate().context("[dataset.synth]")?;
    }
    let m = &f.model;
    ensure!(
        m.widths.iter().all(|w| (1..=4096).contains(w)),
        "model.widths must be four channel counts of 1–4096"
    );
    one_of("model.backbone", &m.backbone, BACKBONES)?;
    let min_side = min_input_side(m.backbone.parse()?);
    ensure!(
        d.image_size as usize >= min_side,
        "dataset.image_size = {} is too small for model.backbone = \"{}\", which downsamples by \
         {min_side}: it must be at least {min_side}",
        d.image_size,
        m.backbone
    );
    one_of("model.head", &m.head, &["embedding", "classifier"])?;
    // model.device is checked when the run starts (it depends on how the binary was built).
    within("model.embedding_dim", m.embedding_dim, 1..=4096)?;
    let t = &f.train;
    within("train.epochs", t.epochs, 1..=10_000)?;
    one_of("train.mining", &t.mining, &["all", "semi-hard", "batch-hard"])?;
    one_of("train.optimizer", &t.optimizer, &["adam", "sgd"])?;
    one_of("train.schedule", &t.schedule, &["cosine", "step", "constant"])?;
    let [lo, hi] = t.crop_scale;
    ensure!(
        lo > 0.0 && lo <= hi && hi <= 1.0,
        "train.crop_scale must be [min, max] with 0 < min ≤ max ≤ 1 (a share of the image's area)"
    );
    within("train.p", t.p, 2..=1024)?;
    within("train.k", t.k, 2..=1024)?;
    ensure!(
        t.p * t.k <= 4096,
        "train.p × train.k = {} × {} = {} images per batch is more than the 4096 allowed",
        t.p,
        t.k,
        t.p * t.k
    );
    ensure!(t.lr.is_finite() && t.lr > 0.0, "train.lr must be a positive number");
    ensure!(t.margin.is_finite() && t.margin >= 0.0, "train.margin must be a number ≥ 0");
    ensure!(
        t.weight_decay.is_finite() && t.weight_decay >= 0.0,
        "train.weight_decay must be a number ≥ 0"
    );
    ensure!((0.0..1.0).contains(&t.momentum), "train.momentum must be in [0, 1)");
    let c = &f.cam;
    ensure!(
        !c.methods.is_empty() && !c.proxies.is_empty(),
        "cam.methods and cam.proxies must not be empty"
    );
    for x in &c.methods {
        one_of("cam.methods entry", x, METHODS)?;
    }
    distinct("cam.methods", &c.methods)?;
    for x in &c.proxies {
        one_of("cam.proxies entry", x, PROXIES)?;
    }
    distinct("cam.proxies", &c.proxies)?;
    distinct("cam.stages", &c.stages)?;
    ensure!(
        m.head == "classifier" || !c.proxies.iter().any(|p| p == "class-score"),
        "cam.proxies: `class-score` is the score of a classifier's class (classic Grad-CAM) and \
         needs model.head = \"classifier\"; an embedding network has no class scores"
    );
    one_of("cam.target", &c.target, &["pre-l2", "post-l2"])?;
    within("cam.batch_size", c.batch_size, 1..=1024)?;
    within("cam.knn", c.knn, 1..=1024)?;
    positive_or_absent("cam.proxy_images_per_class", c.proxy_images_per_class)?;
    for x in &f.eval.baselines {
        one_of("eval.baselines entry", x, BASELINES)?;
    }
    distinct("eval.baselines", &f.eval.baselines)?;
    let e = &f.eval;
    positive_or_absent("eval.max_images", e.max_images)?;
    within("eval.faithfulness_steps", e.faithfulness_steps, 1..=1000)?;
    ensure!((0.0..=1.0).contains(&e.tau), "eval.tau must be in [0, 1]");
    ensure!((0.0..=1.0).contains(&e.iou), "eval.iou must be in [0, 1]");
    ensure!(
        e.pointing_tolerance.is_finite() && e.pointing_tolerance >= 0.0,
        "eval.pointing_tolerance must be a number of pixels ≥ 0"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "[dataset]\nkind = \"synth\"\npath = \"datasets/synthcub\"\n";

    #[test]
    fn defaults_fill_a_minimal_file() {
        let e = parse(MINIMAL, Path::new("experiments/mini.toml")).expect("valid");
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].name, "mini");
        assert_eq!(e[0].file.train.margin, 0.2);
        assert_eq!(e[0].file.cam.proxies, vec!["normalized-mean", "single-point"]);
    }

    #[test]
    fn a_grid_cannot_vary_seeds_or_name() {
        for key in ["seeds", "name"] {
            let text = format!("{MINIMAL}[grid]\n\"{key}\" = [1, 2]\n");
            let err = format!("{:#}", parse(&text, Path::new("s.toml")).unwrap_err());
            assert!(err.contains(&format!("`{key}`")) && err.contains("s.toml"), "{err}");
        }
    }

    #[test]
    fn numbers_out_of_range_are_refused_with_their_key() {
        for (section, line, key) in [
            ("train", "lr = inf", "train.lr"),
            ("train", "lr = nan", "train.lr"),
            ("train", "margin = -0.1", "train.margin"),
            ("train", "weight_decay = nan", "train.weight_decay"),
            ("train", "momentum = 1.0", "train.momentum"),
            ("eval", "pointing_tolerance = -1.0", "eval.pointing_tolerance"),
            // Each of these aborted on allocation, panicked, or meant something else silently.
            ("model", "embedding_dim = 1000000000", "model.embedding_dim"),
            ("model", "embedding_dim = 0", "model.embedding_dim"),
            ("train", "k = 1000000000", "train.k"),
            ("train", "p = 1025", "train.p"),
            ("train", "p = 1", "train.p"),
            ("train", "p = 64\nk = 128", "train.p × train.k"),
            ("train", "epochs = 0", "train.epochs"),
            ("train", "epochs = 1000000000", "train.epochs"),
            ("eval", "faithfulness_steps = 0", "eval.faithfulness_steps"),
            ("eval", "faithfulness_steps = 1000000000", "eval.faithfulness_steps"),
            ("eval", "max_images = 0", "eval.max_images"),
            ("cam", "knn = 0", "cam.knn"),
            ("cam", "knn = 1000000000", "cam.knn"),
            ("cam", "batch_size = 0", "cam.batch_size"),
            ("cam", "batch_size = 100000", "cam.batch_size"),
            ("cam", "proxy_images_per_class = 0", "cam.proxy_images_per_class"),
        ] {
            let text = format!("{MINIMAL}[{section}]\n{line}\n");
            let err = format!("{:#}", parse(&text, Path::new("n.toml")).unwrap_err());
            assert!(err.contains(key) && err.contains("n.toml"), "{line}: {err}");
        }
        for line in ["max_classes = 0", "max_per_class = 0", "image_size = 8"] {
            let err = format!(
                "{:#}",
                parse(&format!("{MINIMAL}{line}\n"), Path::new("d.toml")).unwrap_err()
            );
            let key = format!("dataset.{}", line.split(' ').next().unwrap());
            assert!(err.contains(&key) && err.contains("d.toml"), "{line}: {err}");
        }
        // A ResNet downsamples by 32: a 16-pixel input is refused, naming the minimum.
        let text = format!("{MINIMAL}image_size = 16\n[model]\nbackbone = \"resnet18\"\n");
        let err = format!("{:#}", parse(&text, Path::new("r.toml")).unwrap_err());
        assert!(err.contains("dataset.image_size") && err.contains("at least 32"), "{err}");
    }

    #[test]
    fn numbers_at_the_ends_of_their_ranges_are_accepted() {
        for (section, line) in [
            ("model", "embedding_dim = 1"),
            ("model", "embedding_dim = 4096"),
            ("train", "p = 4\nk = 1024"),
            ("train", "p = 1024\nk = 4"),
            ("train", "epochs = 1"),
            ("eval", "faithfulness_steps = 1"),
            ("eval", "faithfulness_steps = 1000"),
            ("eval", "max_images = 1"),
            ("cam", "knn = 1024\nbatch_size = 1024\nproxy_images_per_class = 1"),
        ] {
            let text = format!("{MINIMAL}[{section}]\n{line}\n");
            assert!(parse(&text, Path::new("ok.toml")).is_ok(), "{line}");
        }
        let text = format!("{MINIMAL}image_size = 32\n[model]\nbackbone = \"resnet50\"\n");
        assert!(parse(&text, Path::new("ok.toml")).is_ok());
    }

    #[test]
    fn duplicates_are_refused_with_their_key_and_the_file() {
        for (head, section, line, key, value) in [
            (
                "",
                "cam",
                "proxies = [\"normalized-mean\", \"normalized-mean\"]",
                "cam.proxies",
                "`normalized-mean`",
            ),
            (
                "",
                "cam",
                "methods = [\"eigencam\", \"embeddingcam\", \"eigencam\"]",
                "cam.methods",
                "`eigencam`",
            ),
            ("", "cam", "stages = [\"block3\", \"block3\"]", "cam.stages", "`block3`"),
            (
                "",
                "eval",
                "baselines = [\"untrained\", \"untrained\"]",
                "eval.baselines",
                "`untrained`",
            ),
            ("seeds = [0, 1, 0]\n", "train", "", "`seeds`", " 0 "),
            ("", "grid", "\"train.margin\" = [0.1, 0.2, 0.1]", "`train.margin`", "0.1"),
            ("", "grid", "\"cam.target\" = [\"pre-l2\", \"pre-l2\"]", "`cam.target`", "pre-l2"),
            // Two spellings of one number make the same experiment.
            ("", "grid", "\"train.margin\" = [1, 1.0]", "train.margin=1", "same experiment"),
        ] {
            let text = format!("{head}{MINIMAL}[{section}]\n{line}\n");
            let err = format!("{:#}", parse(&text, Path::new("x/dup.toml")).unwrap_err());
            assert!(
                err.contains(key) && err.contains(value) && err.contains("x/dup.toml"),
                "{line}: {err}"
            );
        }
    }

    #[test]
    fn a_typo_names_the_key_and_the_file() {
        let text = format!("{MINIMAL}[train]\nmargn = 0.3\n");
        let err = format!("{:#}", parse(&text, Path::new("x/typo.toml")).unwrap_err());
        assert!(err.contains("x/typo.toml") && err.contains("margn"), "{err}");
        let err = format!(
            "{:#}",
            parse(&format!("{MINIMAL}[cam]\nmethods = [\"gradcam+\"]\n"), Path::new("a.toml"))
                .unwrap_err()
        );
        assert!(err.contains("gradcam+") && err.contains("gradcam++"), "{err}");
    }

    #[test]
    fn grid_is_a_cartesian_product_times_seeds() {
        let text = format!(
            "seeds = [1, 2]\n{MINIMAL}[grid]\n\"train.margin\" = [0.1, 0.3]\n\"dataset.image_size\" = [32, 64, 96]\n"
        );
        let e = parse(&text, Path::new("g.toml")).expect("valid");
        assert_eq!(e.len(), 2 * 3 * 2);
        assert_eq!(e[0].cell, "dataset.image_size=32,train.margin=0.1");
        assert_eq!(e[0].file.train.margin, 0.1);
        assert_eq!(e[3].file.train.margin, 0.3);
        assert_eq!((e[2].seed, e[3].seed), (1, 2));
        let bad = format!("{MINIMAL}[grid]\n\"train.margn\" = [0.1]\n");
        let err = format!("{:#}", parse(&bad, Path::new("g.toml")).unwrap_err());
        assert!(err.contains("margn") && err.contains("g.toml"), "{err}");
    }
}

#[cfg(test)]
#[path = "config_fuzz.rs"]
mod fuzz;
