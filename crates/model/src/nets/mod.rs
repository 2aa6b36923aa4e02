//! The networks: backbones (a small CNN and torchvision-layout ResNets), the GAP → linear head,
//! the [`NetConfig`] that describes a network, and [`Net`], backbone plus head.
//!
//! Weights are initialised on the host from a seeded [`StdRng`], not from the backend's global
//! generator, so that one seed gives the same network on every backend and in every thread.

pub mod describe;
mod fold;
pub mod head;
pub mod resnet;
pub mod small_cnn;

use std::fmt;
use std::str::FromStr;

use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Initializer, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::{Device, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::ModelError;
pub use head::{Head, global_avg_pool, l2_normalize};
pub use resnet::{BasicBlock, Bottleneck, Downsample, ResBlock, ResNet};
pub use small_cnn::{ConvBlock, SmallCnn};

/// Which backbone a [`Net`] uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackboneKind {
    /// Four conv blocks (`block1`..`block4`), for CPU-sized runs; widths in [`NetConfig::small_cnn_widths`].
    SmallCnn,
    /// torchvision ResNet-18 (basic blocks 2-2-2-2, 512 features).
    Resnet18,
    /// torchvision ResNet-34 (basic blocks 3-4-6-3, 512 features).
    Resnet34,
    /// torchvision ResNet-50 (bottlenecks 3-4-6-3, 2048 features).
    Resnet50,
}

impl BackboneKind {
    /// The name used in configs and on the command line (`small-cnn`, `resnet18`, ...).
    pub fn name(self) -> &'static str {
        match self {
            BackboneKind::SmallCnn => "small-cnn",
            BackboneKind::Resnet18 => "resnet18",
            BackboneKind::Resnet34 => "resnet34",
            BackboneKind::Resnet50 => "resnet50",
        }
    }
}

impl fmt::Display for BackboneKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for BackboneKind {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "small-cnn" => Ok(BackboneKind::SmallCnn),
            "resnet18" => Ok(BackboneKind::Resnet18),
            "resnet34" => Ok(BackboneKind::Resnet34),
            "resnet50" => Ok(BackboneKind::Resnet50),
            other => Err(ModelError::InvalidConfig(format!(
                "unknown backbone `{other}`; expected small-cnn, resnet18, resnet34 or resnet50"
            ))),
        }
    }
}

/// The head on top of the backbone's last stage: always global average pooling, then a linear map.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum HeadConfig {
    /// Embedding head: `z = W ā + b ∈ R^dim`, output `z/‖z‖` when `l2`.
    Embedding {
        /// Embedding dimension `d`.
        dim: usize,
        /// Whether the net L2-normalises its output.
        l2: bool,
    },
    /// Classifier head: logits `W ā + b ∈ R^classes`, trained with softmax cross-entropy.
    Classifier {
        /// Number of classes.
        classes: usize,
    },
}

impl HeadConfig {
    /// Output dimension of the head (`d` or the number of classes).
    pub fn out_dim(&self) -> usize {
        match *self {
            HeadConfig::Embedding { dim, .. } => dim,
            HeadConfig::Classifier { classes } => classes,
        }
    }

    /// Whether the network's output is L2-normalised.
    pub fn l2(&self) -> bool {
        matches!(*self, HeadConfig::Embedding { l2: true, .. })
    }
}

fn default_widths() -> [usize; 4] {
    [32, 64, 128, 256]
}

/// Everything needed to build a [`Net`] (and written beside exported weights as JSON).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetConfig {
    /// The backbone.
    pub backbone: BackboneKind,
    /// The head.
    pub head: HeadConfig,
    /// Channel widths of the small CNN's four blocks (ignored by ResNets).
    #[serde(default = "default_widths")]
    pub small_cnn_widths: [usize; 4],
}

impl NetConfig {
    /// An embedding network: `backbone` → GAP → linear to `dim` (→ L2 when `l2`).
    pub fn embedding(backbone: BackboneKind, dim: usize, l2: bool) -> Self {
        NetConfig {
            backbone,
            head: HeadConfig::Embedding { dim, l2 },
            small_cnn_widths: default_widths(),
        }
    }

    /// A classifier: `backbone` → GAP → linear to `classes` logits.
    pub fn classifier(backbone: BackboneKind, classes: usize) -> Self {
        NetConfig {
            backbone,
            head: HeadConfig::Classifier { classes },
            small_cnn_widths: default_widths(),
        }
    }

    /// The same config with other small-CNN widths.
    pub fn with_small_cnn_widths(mut self, widths: [usize; 4]) -> Self {
        self.small_cnn_widths = widths;
        self
    }

    /// Checks dimensions; called by [`NetConfig::init`].
    pub fn validate(&self) -> Result<(), ModelError> {
        if self.head.out_dim() == 0 {
            return Err(ModelError::InvalidConfig(
                "head output dimension (embedding dim or number of classes) must be > 0".into(),
            ));
        }
        if self.backbone == BackboneKind::SmallCnn && self.small_cnn_widths.contains(&0) {
            return Err(ModelError::InvalidConfig(format!(
                "small CNN widths must all be > 0, got {:?}",
                self.small_cnn_widths
            )));
        }
        Ok(())
    }

    /// Channels of the backbone's last stage (the head's input, `K_last`).
    pub fn feature_dim(&self) -> usize {
        match self.backbone {
            BackboneKind::SmallCnn => self.small_cnn_widths[3],
            BackboneKind::Resnet18 | BackboneKind::Resnet34 => 512,
            BackboneKind::Resnet50 => 2048,
        }
    }

    /// Builds the network with weights drawn from `seed` (torchvision's initialisation: Kaiming
    /// normal, fan-out, for convolutions; BatchNorm γ = 1, β = 0; PyTorch's default uniform
    /// `U(±1/√fan_in)` for the linear head). Same seed → same weights, on any backend.
    pub fn init(&self, device: &Device, seed: u64) -> Result<Net, ModelError> {
        self.validate()?;
        let mut init = Init::new(seed, device.clone());
        let backbone = match self.backbone {
            BackboneKind::SmallCnn => {
                Backbone::SmallCnn(SmallCnn::new(&mut init, self.small_cnn_widths))
            }
            BackboneKind::Resnet18 => Backbone::ResNet(ResNet::resnet18(&mut init)),
            BackboneKind::Resnet34 => Backbone::ResNet(ResNet::resnet34(&mut init)),
            BackboneKind::Resnet50 => Backbone::ResNet(ResNet::resnet50(&mut init)),
        };
        let head = Head::new(&mut init, self.feature_dim(), self.head.out_dim(), self.head.l2());
        Ok(Net { backbone, head, config: self.clone() })
    }
}

/// The backbone of a [`Net`].
// One value per network, never in hot collections: the size difference is irrelevant, and
// boxing would put `Box` in the module tree.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Backbone {
    /// [`SmallCnn`].
    SmallCnn(SmallCnn),
    /// [`ResNet`] (18, 34 or 50).
    ResNet(ResNet),
}

impl Backbone {
    /// Stage names in forward order.
    pub fn stage_names(&self) -> &'static [&'static str] {
        match self {
            Backbone::SmallCnn(_) => &small_cnn::STAGES,
            Backbone::ResNet(_) => &resnet::STAGES,
        }
    }

    /// Runs the input through stage `idx` (0-based) and returns its activation.
    ///
    /// # Shapes
    /// - `x`: `[B, 3, H, W]` → `[B, K_idx, h, w]`
    pub fn forward_to(&self, x: Tensor<4>, idx: usize) -> Tensor<4> {
        match self {
            Backbone::SmallCnn(m) => m.forward_to(x, idx),
            Backbone::ResNet(m) => m.forward_to(x, idx),
        }
    }

    /// Continues from stage `idx`'s activation through the last stage.
    ///
    /// # Shapes
    /// - `a`: `[B, K_idx, h, w]` → `[B, K_last, h', w']`
    pub fn forward_from(&self, a: Tensor<4>, idx: usize) -> Tensor<4> {
        match self {
            Backbone::SmallCnn(m) => m.forward_from(a, idx),
            Backbone::ResNet(m) => m.forward_from(a, idx),
        }
    }
}

/// A full network: backbone, then global average pooling, a linear map and optional L2.
///
/// `forward` gives the network's output (normalised if configured); the per-stage API is the
/// [`Staged`](crate::Staged) trait.
#[derive(Module, Debug)]
pub struct Net {
    /// The backbone.
    pub backbone: Backbone,
    /// GAP → linear (→ L2).
    pub head: Head,
    /// The config it was built from.
    #[module(skip)]
    pub config: NetConfig,
}

impl Net {
    /// The output: the embedding `y = z/‖z‖` (or `z` without L2), or the logits of a classifier.
    ///
    /// # Shapes
    /// - `x`: `[B, 3, H, W]` (ImageNet-normalised) → `[B, d]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let z = self.forward_raw(x); // [B, d]
        if self.head.l2 { l2_normalize(z) } else { z }
    }

    /// The output before L2 normalisation (`z`, or logits).
    ///
    /// # Shapes
    /// - `x`: `[B, 3, H, W]` → `[B, d]`
    pub fn forward_raw(&self, x: Tensor<4>) -> Tensor<2> {
        let last = self.backbone.stage_names().len() - 1;
        let a = self.backbone.forward_to(x, last); // [B, K_last, h, w]
        self.head.forward_raw(a) // [B, d]
    }

    /// The same network for eval-mode forward passes with every BatchNorm folded into the
    /// convolution before it (`s·W`, `s·(0 − μ) + β`, `s = γ/√(σ² + ε)`): the same outputs and
    /// stage activations to float rounding, without the BatchNorms' element-wise passes. Call it
    /// on an eval-mode net ([`Module::valid`]) for inference and explanations; never train or
    /// export a folded net (its convolutions carry the folded bias).
    pub fn fold_batchnorm(mut self) -> Net {
        match &mut self.backbone {
            Backbone::SmallCnn(m) => m.fold_batchnorm(),
            Backbone::ResNet(m) => m.fold_batchnorm(),
        }
        self
    }

    /// Output dimension (`d`, or the number of classes).
    pub fn out_dim(&self) -> usize {
        self.config.head.out_dim()
    }
}

/// Seeded host-side initialiser (see the module docs).
pub(crate) struct Init {
    rng: StdRng,
    device: Device,
}

impl Init {
    pub(crate) fn new(seed: u64, device: Device) -> Self {
        Init { rng: StdRng::seed_from_u64(seed), device }
    }

    /// A standard normal sample (Box–Muller).
    fn normal(&mut self) -> f64 {
        let u1: f64 = 1.0 - self.rng.random::<f64>(); // (0, 1]
        let u2: f64 = self.rng.random::<f64>();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    fn tensor<const D: usize>(&self, values: Vec<f32>, shape: [usize; D]) -> Param<Tensor<D>> {
        Param::from_data(TensorData::new(values, shape), &self.device)
    }

    /// Conv2d without bias, torchvision init `kaiming_normal_(mode="fan_out", nonlinearity="relu")`.
    pub(crate) fn conv(
        &mut self,
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        pad: usize,
    ) -> Conv2d {
        let mut conv = Conv2dConfig::new([cin, cout], [k, k])
            .with_stride([stride, stride])
            .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
            .with_bias(false)
            .with_initializer(Initializer::Zeros)
            .init(&self.device);
        let std = (2.0 / (cout * k * k) as f64).sqrt();
        let values = (0..cout * cin * k * k).map(|_| (self.normal() * std) as f32).collect();
        conv.weight = self.tensor(values, [cout, cin, k, k]);
        conv
    }

    /// BatchNorm with γ = 1, β = 0, running mean 0, variance 1 (ε = 1e-5, momentum 0.1 as torch).
    pub(crate) fn bn(&self, c: usize) -> BatchNorm {
        BatchNormConfig::new(c).init(&self.device)
    }

    /// Linear `d_in → d_out` with PyTorch's default `U(±1/√d_in)` for weight and bias.
    pub(crate) fn linear(&mut self, d_in: usize, d_out: usize) -> Linear {
        let mut lin =
            LinearConfig::new(d_in, d_out).with_initializer(Initializer::Zeros).init(&self.device);
        let bound = 1.0 / (d_in as f64).sqrt();
        let mut uniform = |n: usize| -> Vec<f32> {
            (0..n).map(|_| self.rng.random_range(-bound..bound) as f32).collect()
        };
        let w = uniform(d_in * d_out); // burn's Linear stores [d_in, d_out]
        let b = uniform(d_out);
        lin.weight = self.tensor(w, [d_in, d_out]);
        lin.bias = Some(self.tensor(b, [d_out]));
        lin
    }
}
