//! The experiment file as serde reads it: one struct per section, `deny_unknown_fields`, every
//! default in the section's `Default` impl (`#[serde(default)]` on the struct fills a missing key
//! from it). Words are typed here ([`super::vocab`]); ranges and combinations are checked in
//! [`super::validate`].
//!
//! The field order is the order stage keys and `config.resolved.toml` serialise in: changing it
//! changes every stage folder's name.

use std::collections::BTreeMap;
use std::path::PathBuf;

use embcam_model::BackboneKind;
use embcam_model::loss::Mining;
use serde::{Deserialize, Serialize};

pub use super::dataset::{DatasetKind, DatasetSection, DifficultyPreset, SynthSection};
use super::vocab::{
    BaselineName, ChenTransfer, Head, MethodName, OptimizerName, ProxyName, ScheduleName,
    TargetName,
};

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
    /// Ground truth beyond boxes and sanity checks; left out of the resolved file when off, so
    /// files without it read as before.
    #[serde(default, skip_serializing_if = "BenchmarkSection::is_off")]
    pub benchmark: BenchmarkSection,
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

/// `[model]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ModelSection {
    /// `small-cnn`, `resnet18`, `resnet34` or `resnet50`.
    pub backbone: BackboneKind,
    /// `embedding` (triplet loss) or `classifier` (softmax cross-entropy; Grad-CAM comparison).
    pub head: Head,
    /// Embedding dimension `d`: 1–4096.
    pub embedding_dim: usize,
    /// Whether the network L2-normalises its output.
    pub l2_normalize: bool,
    /// Pretrained backbone weights (torchvision `.pth` or `.safetensors`).
    pub pretrained: Option<PathBuf>,
    /// `flex` (default), `tch-cpu` or `tch-cuda[:N]`: the model crate's device names, checked when
    /// the run starts (which exist depends on how the binary was built).
    pub device: String,
    /// Channel widths of the small CNN's four blocks.
    pub widths: [usize; 4],
}

impl Default for ModelSection {
    fn default() -> Self {
        ModelSection {
            backbone: BackboneKind::SmallCnn,
            head: Head::Embedding,
            embedding_dim: 64,
            l2_normalize: true,
            pretrained: None,
            device: "flex".into(),
            widths: [32, 64, 128, 256],
        }
    }
}

/// `[train]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TrainSection {
    /// Epochs: 1–10000.
    pub epochs: usize,
    /// Triplet mining: `all`, `semi-hard` or `batch-hard`.
    pub mining: Mining,
    /// Triplet margin.
    pub margin: f32,
    /// Classes per batch (P of P×K): 2–1024, with P·K ≤ 4096.
    pub p: usize,
    /// Images per class per batch (K of P×K): 2–1024, with P·K ≤ 4096.
    pub k: usize,
    /// `adam` or `sgd`.
    pub optimizer: OptimizerName,
    /// Learning rate.
    pub lr: f64,
    /// Weight decay.
    pub weight_decay: f64,
    /// SGD momentum.
    pub momentum: f64,
    /// `cosine`, `step` or `constant`.
    pub schedule: ScheduleName,
    /// Random resized crop + flip during training (`false`: the evaluation transform).
    pub augment: bool,
    /// The random crop's area as a fraction of the image, `[min, max]`.
    pub crop_scale: [f32; 2],
    /// Train on permuted labels (Adebayo et al.'s data randomisation test). Not serialised when
    /// off, so existing stage keys stay.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub shuffle_labels: bool,
}

impl Default for TrainSection {
    fn default() -> Self {
        TrainSection {
            epochs: 8,
            mining: Mining::SemiHard,
            margin: 0.2,
            p: 8,
            k: 4,
            optimizer: OptimizerName::Adam,
            lr: 1e-3,
            weight_decay: 0.0,
            momentum: 0.9,
            schedule: ScheduleName::Cosine,
            augment: true,
            crop_scale: [0.35, 1.0],
            shuffle_labels: false,
        }
    }
}

/// `[cam]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CamSection {
    /// CAM methods ([`MethodName`]). At least one; none twice.
    pub methods: Vec<MethodName>,
    /// Proxies ([`ProxyName`]); `class-score` needs `model.head = "classifier"`. At least one;
    /// none twice.
    pub proxies: Vec<ProxyName>,
    /// Stages to explain; default: the backbone's last stage. None twice.
    pub stages: Vec<String>,
    /// Score on the embedding before (`pre-l2`, the paper) or after (`post-l2`) L2 normalisation.
    pub target: TargetName,
    /// Leave the query image out of its class's normalized-mean proxy.
    pub leave_one_out: bool,
    /// Use at most this many images per class in the set the proxies are built from (1 or more;
    /// all when absent).
    pub proxy_images_per_class: Option<usize>,
    /// k of the k-nearest-neighbour proxy: 1–1024, and (checked once the data is read, before
    /// training) fewer than the images in the proxy set.
    pub knn: usize,
    /// Use the closed form where it applies (last stage, GAP → linear head).
    pub closed_form: bool,
    /// Images in the overlay gallery.
    pub gallery: usize,
    /// Batch size for explaining: 1–1024.
    pub batch_size: usize,
    /// Chen et al.'s options (`methods` lists `chen`); absent: the defaults. Left out of the
    /// stage key when absent, so files without it keep their stage folders.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chen: Option<ChenSection>,
}

impl Default for CamSection {
    fn default() -> Self {
        CamSection {
            methods: vec![MethodName::EmbeddingCam],
            proxies: vec![ProxyName::NormalizedMean, ProxyName::SinglePoint],
            stages: Vec::new(),
            target: TargetName::PreL2,
            leave_one_out: false,
            proxy_images_per_class: None,
            knn: 5,
            closed_form: true,
            gallery: 6,
            batch_size: 16,
            chen: None,
        }
    }
}

/// `[cam.chen]`: Chen et al. 2020's fit on the training split and its transfer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ChenSection {
    /// Triplets drawn per training image (anchor): 1–1024.
    pub triplets: usize,
    /// `nearest` (the nearest training embedding's weights) or `k-means` (the nearest centre's).
    pub transfer: ChenTransfer,
    /// Spherical k-means centres (`transfer = "k-means"`): 1–4096.
    pub centres: usize,
}

impl Default for ChenSection {
    fn default() -> Self {
        ChenSection { triplets: 16, transfer: ChenTransfer::Nearest, centres: 32 }
    }
}

/// `[eval]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct EvalSection {
    /// Localisation threshold τ on the max-normalised map.
    pub tau: f32,
    /// IoU for a localisation hit.
    pub iou: f32,
    /// Mask foreground threshold (0–255).
    pub mask_threshold: u8,
    /// Pointing-game tolerance in pixels.
    pub pointing_tolerance: f32,
    /// Baselines ([`BaselineName`]). None twice.
    pub baselines: Vec<BaselineName>,
    /// Evaluate at most this many images (1 or more; all when absent).
    pub max_images: Option<usize>,
    /// Deletion/insertion curves (costly: one forward pass per step per image).
    pub faithfulness: bool,
    /// Steps of the deletion/insertion curves: 1–1000.
    pub faithfulness_steps: usize,
}

impl Default for EvalSection {
    fn default() -> Self {
        EvalSection {
            tau: 0.2,
            iou: 0.5,
            mask_threshold: 128,
            pointing_tolerance: 0.0,
            baselines: vec![
                BaselineName::CenterGaussian,
                BaselineName::UniformRandom,
                BaselineName::Untrained,
            ],
            max_images: None,
            faithfulness: false,
            faithfulness_steps: 16,
        }
    }
}

/// `[benchmark]`: part-level ground truth on SynthCUB's interventions and Adebayo et al.'s model
/// randomisation sanity checks (each its own cached stage after `explain`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BenchmarkSection {
    /// Render the interventions (`kind = "synth"` only) and score every method × proxy × stage
    /// and the map baselines on them: `ground_truth.md` / `.csv`.
    pub ground_truth: bool,
    /// The evaluation images scored on interventions (evenly thinned): 1–100000. Each costs about
    /// 17 rendered images and their forward passes.
    pub ground_truth_images: usize,
    /// Cascading and independent model randomisation: `randomisation.md` / `.csv`.
    pub sanity_checks: bool,
    /// The evaluation images explained once per randomisation step (evenly thinned): 1–10000.
    pub sanity_images: usize,
}

impl Default for BenchmarkSection {
    fn default() -> Self {
        BenchmarkSection {
            ground_truth: false,
            ground_truth_images: 100,
            sanity_checks: false,
            sanity_images: 32,
        }
    }
}

impl BenchmarkSection {
    /// Neither switch on.
    pub fn is_off(&self) -> bool {
        !self.ground_truth && !self.sanity_checks
    }
}

/// `[output]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct OutputSection {
    /// The results folder.
    pub dir: PathBuf,
}

impl Default for OutputSection {
    fn default() -> Self {
        OutputSection { dir: PathBuf::from("results") }
    }
}
