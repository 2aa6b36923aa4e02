//! ResNet-18/34/50 with torchvision's layout and parameter names (`conv1`, `bn1`, `layer1.0.conv1`,
//! ..., `layer4.2.bn3`, downsample as `layerN.0.downsample.{conv,bn}` ↔ torchvision's
//! `downsample.{0,1}`), so torchvision checkpoints load (see [`crate::weights`]).
//!
//! Stages are `layer1`..`layer4`; the stem (`conv1`, `bn1`, ReLU, 3×3/2 max pool) runs before
//! `layer1`. ResNet-50 uses torchvision's "v1.5" bottleneck (stride on the 3×3 convolution).

use crate::kernels::{self, relu};
use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, PaddingConfig2d};
use burn::tensor::Tensor;

use super::Init;
use super::fold::{conv_bn, fold};

/// Stage names, in forward order.
pub const STAGES: [&str; 4] = ["layer1", "layer2", "layer3", "layer4"];

/// The 1×1 convolution + BatchNorm on the shortcut where shape changes
/// (torchvision `downsample.0`, `downsample.1`).
#[derive(Module, Debug)]
pub struct Downsample {
    /// 1×1 convolution with the block's stride (torchvision `downsample.0`).
    pub conv: Conv2d,
    /// BatchNorm (torchvision `downsample.1`).
    pub bn: BatchNorm,
}

impl Downsample {
    fn new(init: &mut Init, cin: usize, cout: usize, stride: usize) -> Self {
        Downsample { conv: init.conv(cin, cout, 1, stride, 0), bn: init.bn(cout) }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        conv_bn(&self.conv, &self.bn, x)
    }
}

/// ResNet-18/34 block: two 3×3 convolutions and the shortcut.
#[derive(Module, Debug)]
pub struct BasicBlock {
    /// 3×3, stride `s`.
    pub conv1: Conv2d,
    /// BN after `conv1`.
    pub bn1: BatchNorm,
    /// 3×3, stride 1.
    pub conv2: Conv2d,
    /// BN after `conv2`.
    pub bn2: BatchNorm,
    /// Shortcut projection where the shape changes.
    pub downsample: Option<Downsample>,
}

impl BasicBlock {
    /// # Shapes
    /// - `x`: `[B, C_in, H, W]` → `[B, C_out, H/s, W/s]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let identity = match &self.downsample {
            Some(d) => d.forward(x.clone()),
            None => x.clone(),
        };
        let out = relu(conv_bn(&self.conv1, &self.bn1, x));
        let out = conv_bn(&self.conv2, &self.bn2, out);
        relu(out + identity)
    }
}

/// ResNet-50 block: 1×1 → 3×3 (stride) → 1×1 (×4 channels) and the shortcut.
#[derive(Module, Debug)]
pub struct Bottleneck {
    /// 1×1 reduce.
    pub conv1: Conv2d,
    /// BN after `conv1`.
    pub bn1: BatchNorm,
    /// 3×3, stride `s`.
    pub conv2: Conv2d,
    /// BN after `conv2`.
    pub bn2: BatchNorm,
    /// 1×1 expand (×4).
    pub conv3: Conv2d,
    /// BN after `conv3`.
    pub bn3: BatchNorm,
    /// Shortcut projection where the shape changes.
    pub downsample: Option<Downsample>,
}

impl Bottleneck {
    /// # Shapes
    /// - `x`: `[B, C_in, H, W]` → `[B, 4·width, H/s, W/s]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let identity = match &self.downsample {
            Some(d) => d.forward(x.clone()),
            None => x.clone(),
        };
        let out = relu(conv_bn(&self.conv1, &self.bn1, x));
        let out = relu(conv_bn(&self.conv2, &self.bn2, out));
        let out = conv_bn(&self.conv3, &self.bn3, out);
        relu(out + identity)
    }
}

/// A residual block; the variant name is not part of tensor paths (saved and loaded with
/// `skip_enum_variants`).
// One value per network, never in hot collections: the size difference is irrelevant, and
// boxing would put `Box` in the module tree.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum ResBlock {
    /// ResNet-18/34.
    Basic(BasicBlock),
    /// ResNet-50.
    Bottleneck(Bottleneck),
}

impl ResBlock {
    fn fold_batchnorm(&mut self) {
        let (pairs, downsample) = match self {
            ResBlock::Basic(b) => {
                (vec![(&mut b.conv1, &mut b.bn1), (&mut b.conv2, &mut b.bn2)], &mut b.downsample)
            }
            ResBlock::Bottleneck(b) => (
                vec![
                    (&mut b.conv1, &mut b.bn1),
                    (&mut b.conv2, &mut b.bn2),
                    (&mut b.conv3, &mut b.bn3),
                ],
                &mut b.downsample,
            ),
        };
        for (conv, bn) in pairs {
            fold(conv, bn);
        }
        if let Some(d) = downsample {
            fold(&mut d.conv, &mut d.bn);
        }
    }

    /// # Shapes
    /// - `x`: `[B, C_in, H, W]` → `[B, C_out, H/s, W/s]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            ResBlock::Basic(b) => b.forward(x),
            ResBlock::Bottleneck(b) => b.forward(x),
        }
    }
}

/// The ResNet backbone (no pooling, no `fc`: those are the [`Head`](super::Head)).
#[derive(Module, Debug)]
pub struct ResNet {
    /// 7×7/2 stem convolution.
    pub conv1: Conv2d,
    /// Stem BN.
    pub bn1: BatchNorm,
    /// 3×3/2 max pool, padding 1.
    pub maxpool: MaxPool2d,
    /// Stage 1 (stride 1 from the stem, 1/4 resolution).
    pub layer1: Vec<ResBlock>,
    /// Stage 2 (1/8).
    pub layer2: Vec<ResBlock>,
    /// Stage 3 (1/16).
    pub layer3: Vec<ResBlock>,
    /// Stage 4 (1/32).
    pub layer4: Vec<ResBlock>,
}

impl ResNet {
    /// ResNet-18.
    pub(crate) fn resnet18(init: &mut Init) -> Self {
        Self::new(init, [2, 2, 2, 2], false)
    }

    /// ResNet-34.
    pub(crate) fn resnet34(init: &mut Init) -> Self {
        Self::new(init, [3, 4, 6, 3], false)
    }

    /// ResNet-50.
    pub(crate) fn resnet50(init: &mut Init) -> Self {
        Self::new(init, [3, 4, 6, 3], true)
    }

    fn new(init: &mut Init, blocks: [usize; 4], bottleneck: bool) -> Self {
        let conv1 = init.conv(3, 64, 7, 2, 3);
        let bn1 = init.bn(64);
        let maxpool = MaxPool2dConfig::new([3, 3])
            .with_strides([2, 2])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init();
        let expansion = if bottleneck { 4 } else { 1 };
        let mut inplanes = 64;
        let mut layers: Vec<Vec<ResBlock>> = Vec::with_capacity(4);
        for (i, &n) in blocks.iter().enumerate() {
            let planes = 64 << i;
            let stride = if i == 0 { 1 } else { 2 };
            let mut layer = Vec::with_capacity(n);
            for j in 0..n {
                let s = if j == 0 { stride } else { 1 };
                let downsample = (j == 0 && (s != 1 || inplanes != planes * expansion))
                    .then(|| Downsample::new(init, inplanes, planes * expansion, s));
                let block = if bottleneck {
                    ResBlock::Bottleneck(Bottleneck {
                        conv1: init.conv(inplanes, planes, 1, 1, 0),
                        bn1: init.bn(planes),
                        conv2: init.conv(planes, planes, 3, s, 1),
                        bn2: init.bn(planes),
                        conv3: init.conv(planes, planes * 4, 1, 1, 0),
                        bn3: init.bn(planes * 4),
                        downsample,
                    })
                } else {
                    ResBlock::Basic(BasicBlock {
                        conv1: init.conv(inplanes, planes, 3, s, 1),
                        bn1: init.bn(planes),
                        conv2: init.conv(planes, planes, 3, 1, 1),
                        bn2: init.bn(planes),
                        downsample,
                    })
                };
                layer.push(block);
                inplanes = planes * expansion;
            }
            layers.push(layer);
        }
        let mut layers = layers.into_iter();
        let mut next = || layers.next().unwrap_or_default();
        ResNet {
            conv1,
            bn1,
            maxpool,
            layer1: next(),
            layer2: next(),
            layer3: next(),
            layer4: next(),
        }
    }

    /// The stem: `conv1` → `bn1` → ReLU → max pool.
    ///
    /// # Shapes
    /// - `x`: `[B, 3, H, W]` → `[B, 64, H/4, W/4]`
    pub fn stem(&self, x: Tensor<4>) -> Tensor<4> {
        let x = relu(conv_bn(&self.conv1, &self.bn1, x)); // [B, 64, H/2, W/2]
        kernels::max_pool2d(&self.maxpool, x) // [B, 64, H/4, W/4]
    }

    /// Folds every eval-mode BatchNorm into its convolution ([`super::fold`]).
    pub(crate) fn fold_batchnorm(&mut self) {
        fold(&mut self.conv1, &mut self.bn1);
        for layer in [&mut self.layer1, &mut self.layer2, &mut self.layer3, &mut self.layer4] {
            layer.iter_mut().for_each(ResBlock::fold_batchnorm);
        }
    }

    fn layers(&self) -> [&Vec<ResBlock>; 4] {
        [&self.layer1, &self.layer2, &self.layer3, &self.layer4]
    }

    /// Input through `layer{idx+1}`.
    ///
    /// # Shapes
    /// - `x`: `[B, 3, H, W]` → `[B, 64·2^idx·e, H/2^(idx+2), W/2^(idx+2)]` (`e` = 1, or 4 for ResNet-50)
    pub fn forward_to(&self, x: Tensor<4>, idx: usize) -> Tensor<4> {
        let x = self.stem(x);
        self.layers().into_iter().take(idx + 1).flatten().fold(x, |x, b| b.forward(x))
    }

    /// From `layer{idx+1}`'s activation through `layer4`.
    ///
    /// # Shapes
    /// - `a`: `[B, K_idx, h, w]` → `[B, 512·e, h/2^(3-idx), w/2^(3-idx)]`
    pub fn forward_from(&self, a: Tensor<4>, idx: usize) -> Tensor<4> {
        self.layers().into_iter().skip(idx + 1).flatten().fold(a, |x, b| b.forward(x))
    }
}
