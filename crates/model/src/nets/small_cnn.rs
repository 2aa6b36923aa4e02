//! A small CNN for CPU-sized runs: four blocks `block1`..`block4`, each one 3×3 convolution,
//! BatchNorm and ReLU. `block1` convolves with stride 2; `block2`..`block4` start with a 2×2 max
//! pool, so a 128 px input gives 64, 32, 16 and 8 px stage activations.

use crate::kernels::{self, relu};
use burn::module::Module;
use burn::nn::BatchNorm;
use burn::nn::conv::Conv2d;
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::tensor::Tensor;

use super::Init;
use super::fold::{conv_bn, fold};

/// Stage names, in forward order.
pub const STAGES: [&str; 4] = ["block1", "block2", "block3", "block4"];

/// `[maxpool 2×2] → conv 3×3 → BN → ReLU`.
#[derive(Module, Debug)]
pub struct ConvBlock {
    /// 3×3 convolution, no bias.
    pub conv: Conv2d,
    /// BatchNorm after the convolution.
    pub bn: BatchNorm,
    /// 2×2 max pool before the convolution (`block2`..`block4`).
    pub pool: Option<MaxPool2d>,
}

impl ConvBlock {
    /// # Shapes
    /// - `x`: `[B, C_in, H, W]` → `[B, C_out, H/2, W/2]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = match &self.pool {
            Some(pool) => kernels::max_pool2d(pool, x), // [B, C_in, H/2, W/2]
            None => x,
        };
        relu(conv_bn(&self.conv, &self.bn, x))
    }

    fn fold_batchnorm(&mut self) {
        fold(&mut self.conv, &mut self.bn);
    }
}

/// The small CNN backbone.
#[derive(Module, Debug)]
pub struct SmallCnn {
    /// Stride-2 convolution from RGB.
    pub block1: ConvBlock,
    /// Pool + convolution.
    pub block2: ConvBlock,
    /// Pool + convolution.
    pub block3: ConvBlock,
    /// Pool + convolution.
    pub block4: ConvBlock,
}

impl SmallCnn {
    pub(crate) fn new(init: &mut Init, widths: [usize; 4]) -> Self {
        let mut block = |cin: usize, cout: usize, first: bool| ConvBlock {
            conv: init.conv(cin, cout, 3, if first { 2 } else { 1 }, 1),
            bn: init.bn(cout),
            pool: (!first).then(|| MaxPool2dConfig::new([2, 2]).init()),
        };
        SmallCnn {
            block1: block(3, widths[0], true),
            block2: block(widths[0], widths[1], false),
            block3: block(widths[1], widths[2], false),
            block4: block(widths[2], widths[3], false),
        }
    }

    /// Folds every eval-mode BatchNorm into its convolution ([`super::fold`]).
    pub(crate) fn fold_batchnorm(&mut self) {
        for b in [&mut self.block1, &mut self.block2, &mut self.block3, &mut self.block4] {
            b.fold_batchnorm();
        }
    }

    fn blocks(&self) -> [&ConvBlock; 4] {
        [&self.block1, &self.block2, &self.block3, &self.block4]
    }

    /// Input through block `idx` (0-based).
    ///
    /// # Shapes
    /// - `x`: `[B, 3, H, W]` → `[B, widths[idx], H/2^(idx+1), W/2^(idx+1)]`
    pub fn forward_to(&self, x: Tensor<4>, idx: usize) -> Tensor<4> {
        self.blocks().iter().take(idx + 1).fold(x, |x, b| b.forward(x))
    }

    /// From block `idx`'s activation through `block4`.
    ///
    /// # Shapes
    /// - `a`: `[B, widths[idx], h, w]` → `[B, widths[3], h/2^(3-idx), w/2^(3-idx)]`
    pub fn forward_from(&self, a: Tensor<4>, idx: usize) -> Tensor<4> {
        self.blocks().iter().skip(idx + 1).fold(a, |x, b| b.forward(x))
    }
}
