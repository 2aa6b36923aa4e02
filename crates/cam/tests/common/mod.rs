//! Tiny networks implementing `Staged`, built from seeded host random numbers so that every test
//! (and every thread) gets the same weights.

#![allow(dead_code)]

use burn::module::Param;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor, TensorData};
use embcam_cam::Staged;
use embcam_model::ModelError;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub fn device() -> Device {
    Device::flex()
}

pub fn randn(rng: &mut StdRng, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| (rng.random::<f32>() * 2.0 - 1.0) * scale).collect()
}

pub fn tensor<const D: usize>(v: Vec<f32>, shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(v, shape), device)
}

pub fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.try_into_vec_as::<f32>().unwrap()
}

pub fn conv(rng: &mut StdRng, cin: usize, cout: usize, stride: usize, device: &Device) -> Conv2d {
    let mut c = Conv2dConfig::new([cin, cout], [3, 3])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init(device);
    let scale = (2.0 / (cin * 9) as f32).sqrt();
    c.weight =
        Param::from_tensor(tensor(randn(rng, cout * cin * 9, scale), [cout, cin, 3, 3], device));
    c.bias = Some(Param::from_tensor(tensor(randn(rng, cout, 0.1), [cout], device)));
    c
}

pub fn linear(rng: &mut StdRng, din: usize, dout: usize, device: &Device) -> Linear {
    let mut l = LinearConfig::new(din, dout).init(device);
    l.weight = Param::from_tensor(tensor(
        randn(rng, din * dout, (1.0 / din as f32).sqrt()),
        [din, dout],
        device,
    ));
    l.bias = Some(Param::from_tensor(tensor(randn(rng, dout, 0.1), [dout], device)));
    l
}

pub fn gap(a: Tensor<4>) -> Tensor<2> {
    let [b, k, _, _] = a.dims();
    a.mean_dims(&[2, 3]).reshape([b, k])
}

/// `block1 = relu(conv2(relu(conv1 x)))` (stride 2), `block2 = relu(conv3 block1)` (stride 2),
/// head `z = fc(GAP(block2))`, output `z/‖z‖` when `l2`. From `block1` the head is deeper (a conv
/// before the pooling), so the closed form applies at `block2` only.
#[derive(Debug, Clone)]
pub struct TinyNet {
    pub conv1: Conv2d,
    pub conv2: Conv2d,
    pub conv3: Conv2d,
    pub fc: Linear,
    pub l2: bool,
    /// Report a wrong `linear_head` (to test the closed form's own check).
    pub lie_about_head: bool,
}

impl TinyNet {
    /// 3 → c1 → c2 → c3 channels, embedding dimension `d`.
    pub fn new(seed: u64, [c1, c2, c3]: [usize; 3], d: usize, l2: bool, device: &Device) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        TinyNet {
            conv1: conv(&mut rng, 3, c1, 2, device),
            conv2: conv(&mut rng, c1, c2, 1, device),
            conv3: conv(&mut rng, c2, c3, 2, device),
            fc: linear(&mut rng, c3, d, device),
            l2,
            lie_about_head: false,
        }
    }

    pub fn small(seed: u64, l2: bool) -> Self {
        TinyNet::new(seed, [4, 6, 8], 5, l2, &device())
    }

    fn unknown(stage: &str) -> ModelError {
        ModelError::UnknownStage {
            stage: stage.into(),
            backbone: "tiny".into(),
            available: vec!["block1".into(), "block2".into()],
        }
    }

    pub fn head_raw(&self, a: Tensor<4>) -> Tensor<2> {
        self.fc.forward(gap(a))
    }

    /// The network's output: `z`, or `z/‖z‖` when `l2`.
    pub fn output(&self, x: Tensor<4>) -> Tensor<2> {
        let z = self.forward_from(self.forward_to(x, "block2").unwrap(), "block2").unwrap();
        if self.l2 {
            embcam_cam::Target::dot().on(embcam_cam::Space::Normalized).embed(z)
        } else {
            z
        }
    }
}

impl Staged for TinyNet {
    fn stage_names(&self) -> Vec<&'static str> {
        vec!["block1", "block2"]
    }
    fn forward_to(&self, x: Tensor<4>, stage: &str) -> Result<Tensor<4>, ModelError> {
        let b1 = relu(self.conv2.forward(relu(self.conv1.forward(x))));
        match stage {
            "block1" => Ok(b1),
            "block2" => Ok(relu(self.conv3.forward(b1))),
            s => Err(Self::unknown(s)),
        }
    }
    fn forward_from(&self, a: Tensor<4>, stage: &str) -> Result<Tensor<2>, ModelError> {
        match stage {
            "block1" => Ok(self.head_raw(relu(self.conv3.forward(a)))),
            "block2" => Ok(self.head_raw(a)),
            s => Err(Self::unknown(s)),
        }
    }
    fn linear_head(&self) -> Option<(Tensor<2>, Tensor<1>)> {
        let w = self.fc.weight.val().transpose(); // [d, K]
        let b = self.fc.bias.as_ref().map(|b| b.val())?;
        if self.lie_about_head { Some((w.mul_scalar(2.0), b)) } else { Some((w, b)) }
    }
    fn l2_normalize(&self) -> bool {
        self.l2
    }
}

/// A classifier on top of a `TinyNet` embedding: `Y = W_cls z + b_cls` (logits as "embedding").
#[derive(Debug, Clone)]
pub struct TinyClassifier {
    pub net: TinyNet,
    pub cls: Linear,
}

impl TinyClassifier {
    pub fn new(net: TinyNet, classes: usize, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let d = net.fc.weight.dims()[1];
        TinyClassifier { cls: linear(&mut rng, d, classes, &device()), net }
    }
    /// Rows of `W_cls`, `[C, d]` row-major.
    pub fn weight_rows(&self) -> Vec<f32> {
        to_vec(self.cls.weight.val().transpose())
    }
}

impl Staged for TinyClassifier {
    fn stage_names(&self) -> Vec<&'static str> {
        self.net.stage_names()
    }
    fn forward_to(&self, x: Tensor<4>, stage: &str) -> Result<Tensor<4>, ModelError> {
        self.net.forward_to(x, stage)
    }
    fn forward_from(&self, a: Tensor<4>, stage: &str) -> Result<Tensor<2>, ModelError> {
        Ok(self.cls.forward(self.net.forward_from(a, stage)?))
    }
    fn linear_head(&self) -> Option<(Tensor<2>, Tensor<1>)> {
        None
    }
    fn l2_normalize(&self) -> bool {
        false
    }
}

/// A seeded batch `[b, 3, s, s]`.
pub fn images(seed: u64, b: usize, s: usize) -> Tensor<4> {
    let mut rng = StdRng::seed_from_u64(seed);
    tensor(randn(&mut rng, b * 3 * s * s, 1.0), [b, 3, s, s], &device())
}

/// Max |a − b| / max(max |b|, tiny).
pub fn rel_err(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-20);
    a.iter().zip(b).fold(0.0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}
