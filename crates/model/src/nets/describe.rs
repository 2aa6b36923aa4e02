//! The network as a list of operations, read off the built modules (their strides, paddings,
//! pooling and BatchNorm ε as they are, not as a second copy of the constructors): what
//! `model.json` carries so that another tool can rebuild the network from the JSON and the
//! tensors alone. Names are the exported (torchvision) tensor prefixes, so `{name}.weight` is the
//! tensor to load.

use burn::nn::conv::Conv2d;
use burn::nn::pool::MaxPool2d;
use burn::nn::{BatchNorm, PaddingConfig2d};
use serde::{Deserialize, Serialize};

use super::resnet::{ResBlock, ResNet};
use super::small_cnn::SmallCnn;
use super::{Backbone, Net};

/// One operation, applied in list order to `[B, C, H, W]` activations (NCHW, f32).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// `torch.nn.Conv2d` semantics; weight `{name}.weight` `[out, in/groups, kh, kw]`,
    /// bias `{name}.bias` when `bias`.
    Conv2d {
        /// Tensor prefix.
        name: String,
        /// Input channels.
        in_channels: usize,
        /// Output channels.
        out_channels: usize,
        /// `[kh, kw]`.
        kernel: [usize; 2],
        /// `[sh, sw]`.
        stride: [usize; 2],
        /// Zero padding `[top, left, bottom, right]`.
        padding: [usize; 4],
        /// `[dh, dw]`.
        dilation: [usize; 2],
        /// Groups.
        groups: usize,
        /// Whether `{name}.bias` exists.
        bias: bool,
    },
    /// Eval-mode BatchNorm: `(x − running_mean) / √(running_var + eps) · weight + bias`, per
    /// channel, from `{name}.{running_mean,running_var,weight,bias}`.
    BatchNorm {
        /// Tensor prefix.
        name: String,
        /// Channels.
        channels: usize,
        /// ε.
        eps: f64,
        /// Running-average momentum used in training (PyTorch's convention).
        momentum: f64,
    },
    /// `max(x, 0)`.
    Relu,
    /// `torch.nn.MaxPool2d` semantics (padding with −∞).
    MaxPool2d {
        /// `[kh, kw]`.
        kernel: [usize; 2],
        /// `[sh, sw]`.
        stride: [usize; 2],
        /// `[top, left, bottom, right]`.
        padding: [usize; 4],
        /// `[dh, dw]`.
        dilation: [usize; 2],
        /// Output size rounded up.
        ceil_mode: bool,
    },
    /// `relu(body(x) + shortcut(x))`; an empty `shortcut` is the identity.
    Residual {
        /// The block's prefix (`layer2.0`).
        name: String,
        /// The main path.
        body: Vec<Op>,
        /// The projection shortcut (`downsample.0` conv, `downsample.1` BatchNorm), or empty.
        shortcut: Vec<Op>,
    },
    /// The activation here is the named stage's output (what CAM methods read).
    Stage {
        /// `block4`, `layer4`, ...
        name: String,
    },
    /// Mean over H and W: `[B, C, H, W] → [B, C]`.
    GlobalAvgPool,
    /// `x · weightᵀ + bias` with `{name}.weight` `[out, in]` and `{name}.bias` `[out]`.
    Linear {
        /// Tensor prefix.
        name: String,
        /// Input features.
        in_features: usize,
        /// Output features.
        out_features: usize,
    },
    /// Row-wise `z / max(‖z‖₂, 1e-12)`.
    L2Normalize,
}

fn padding(p: &PaddingConfig2d, kernel: [usize; 2]) -> [usize; 4] {
    match *p {
        PaddingConfig2d::Valid => [0; 4],
        PaddingConfig2d::Explicit(top, left, bottom, right) => [top, left, bottom, right],
        // Odd kernels only in these networks: (k − 1)/2 on every side.
        PaddingConfig2d::Same => {
            let (h, w) = ((kernel[0] - 1) / 2, (kernel[1] - 1) / 2);
            [h, w, kernel[0] - 1 - h, kernel[1] - 1 - w]
        }
    }
}

fn conv(name: &str, c: &Conv2d) -> Op {
    let [out_channels, in_per_group, _, _] = c.weight.dims();
    Op::Conv2d {
        name: name.to_string(),
        in_channels: in_per_group * c.groups,
        out_channels,
        kernel: c.kernel_size,
        stride: c.stride,
        padding: padding(&c.padding, c.kernel_size),
        dilation: c.dilation,
        groups: c.groups,
        bias: c.bias.is_some(),
    }
}

fn bn(name: &str, b: &BatchNorm) -> Op {
    let [channels] = b.gamma.dims();
    Op::BatchNorm { name: name.to_string(), channels, eps: b.epsilon, momentum: b.momentum }
}

fn max_pool(p: &MaxPool2d) -> Op {
    Op::MaxPool2d {
        kernel: p.kernel_size,
        stride: p.stride,
        padding: padding(&p.padding, p.kernel_size),
        dilation: p.dilation,
        ceil_mode: p.ceil_mode,
    }
}

fn small_cnn(net: &SmallCnn, stages: &[&str]) -> Vec<Op> {
    let mut ops = Vec::new();
    for (block, stage) in [&net.block1, &net.block2, &net.block3, &net.block4].iter().zip(stages) {
        if let Some(pool) = &block.pool {
            ops.push(max_pool(pool));
        }
        ops.push(conv(&format!("{stage}.conv"), &block.conv));
        ops.push(bn(&format!("{stage}.bn"), &block.bn));
        ops.push(Op::Relu);
        ops.push(Op::Stage { name: stage.to_string() });
    }
    ops
}

fn resnet(net: &ResNet, stages: &[&str]) -> Vec<Op> {
    let mut ops =
        vec![conv("conv1", &net.conv1), bn("bn1", &net.bn1), Op::Relu, max_pool(&net.maxpool)];
    for (layer, stage) in [&net.layer1, &net.layer2, &net.layer3, &net.layer4].iter().zip(stages) {
        for (j, block) in layer.iter().enumerate() {
            let p = format!("{stage}.{j}");
            // conv → BN pairs with a ReLU between them (the block's last ReLU follows the sum).
            let (pairs, downsample): (Vec<(&Conv2d, &BatchNorm)>, _) = match block {
                ResBlock::Basic(b) => (vec![(&b.conv1, &b.bn1), (&b.conv2, &b.bn2)], &b.downsample),
                ResBlock::Bottleneck(b) => (
                    vec![(&b.conv1, &b.bn1), (&b.conv2, &b.bn2), (&b.conv3, &b.bn3)],
                    &b.downsample,
                ),
            };
            let mut body = Vec::new();
            for (i, (c, n)) in pairs.into_iter().enumerate() {
                if i > 0 {
                    body.push(Op::Relu);
                }
                body.push(conv(&format!("{p}.conv{}", i + 1), c));
                body.push(bn(&format!("{p}.bn{}", i + 1), n));
            }
            let shortcut = downsample.as_ref().map_or_else(Vec::new, |d| {
                vec![
                    conv(&format!("{p}.downsample.0"), &d.conv),
                    bn(&format!("{p}.downsample.1"), &d.bn),
                ]
            });
            ops.push(Op::Residual { name: p, body, shortcut });
        }
        ops.push(Op::Stage { name: stage.to_string() });
    }
    ops
}

/// The whole network, input to output, as [`Op`]s: the backbone, then global average pooling,
/// the head's linear map `fc`, and the L2 normalisation when the head has it.
pub fn operations(net: &Net) -> Vec<Op> {
    let stages = net.backbone.stage_names();
    let mut ops = match &net.backbone {
        Backbone::SmallCnn(b) => small_cnn(b, stages),
        Backbone::ResNet(b) => resnet(b, stages),
    };
    let [in_features, out_features] = net.head.fc.weight.dims();
    ops.push(Op::GlobalAvgPool);
    ops.push(Op::Linear { name: "fc".into(), in_features, out_features });
    if net.head.l2 {
        ops.push(Op::L2Normalize);
    }
    ops
}
