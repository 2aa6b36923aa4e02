//! Throughput measurement (images/s) of training steps and inference on random inputs, for the
//! runner's `bench` subcommand and `examples/bench.rs`. Measured, not timed elsewhere: results go
//! to `results/bench-model.md` with the command and machine.
//!
//! A training step is forward + triplet loss (all triplets, P×K labels) + backward + Adam step, on
//! the autodiff device, BatchNorm in training mode; inference is [`Net::forward`] in eval mode,
//! as it is and with the BatchNorms folded into the convolutions ([`Net::fold_batchnorm`]).
//! Data loading is not included. Each measurement runs `warmup` untimed iterations first.

use std::time::Instant;

use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::ModelError;
use crate::loss::{Mining, TripletLoss};
use crate::nets::{Net, NetConfig};

/// What to measure.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BenchConfig {
    /// The network.
    pub net: NetConfig,
    /// Input side in pixels.
    pub input_size: usize,
    /// Batch size (a multiple of 4: labels are 4 images per class).
    pub batch: usize,
    /// Untimed iterations.
    pub warmup: usize,
    /// Timed iterations.
    pub iters: usize,
}

/// Measured throughput.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BenchResult {
    /// Training images per second.
    pub train_images_per_sec: f64,
    /// Inference images per second.
    pub infer_images_per_sec: f64,
    /// Inference images per second with the BatchNorms folded ([`Net::fold_batchnorm`]).
    pub infer_folded_images_per_sec: f64,
}

fn input(cfg: &BenchConfig, device: &Device) -> Tensor<4> {
    let n = cfg.batch * 3 * cfg.input_size * cfg.input_size;
    let v: Vec<f32> = (0..n).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
    Tensor::from_data(TensorData::new(v, [cfg.batch, 3, cfg.input_size, cfg.input_size]), device)
}

/// Measures training and inference throughput of `cfg.net` on `device` (plain; autodiff is added
/// for training).
pub fn measure(cfg: &BenchConfig, device: &Device) -> Result<BenchResult, ModelError> {
    if cfg.batch < 4 || cfg.iters == 0 {
        return Err(ModelError::InvalidConfig("bench needs batch ≥ 4 and iters ≥ 1".into()));
    }
    let labels: Vec<u32> = (0..cfg.batch).map(|i| (i / 4) as u32).collect();
    let loss = TripletLoss::new(0.2, Mining::All);
    let ad = device.clone().autodiff();
    let mut net: Net = cfg.net.init(&ad, 0)?;
    let mut optim = AdamConfig::new().init();
    let x = input(cfg, &ad);
    let mut step = |net: Net| -> Result<Net, ModelError> {
        let out = loss.forward(net.forward(x.clone()), &labels)?;
        let grads = GradientsParams::from_grads(out.loss.backward(), &net);
        let net = optim.step(1e-4, net, grads);
        sync(&net, device)?;
        Ok(net)
    };
    for _ in 0..cfg.warmup {
        net = step(net)?;
    }
    let start = Instant::now();
    for _ in 0..cfg.iters {
        net = step(net)?;
    }
    let train = (cfg.batch * cfg.iters) as f64 / start.elapsed().as_secs_f64();

    let x = input(cfg, device);
    let eval = net.valid();
    let infer = infer_rate(&eval, &x, cfg)?;
    let infer_folded = infer_rate(&eval.fold_batchnorm(), &x, cfg)?;
    Ok(BenchResult {
        train_images_per_sec: train,
        infer_images_per_sec: infer,
        infer_folded_images_per_sec: infer_folded,
    })
}

/// Images per second of `net.forward` on `x`, read back to the host each time.
fn infer_rate(net: &Net, x: &Tensor<4>, cfg: &BenchConfig) -> Result<f64, ModelError> {
    let infer = || -> Result<(), ModelError> {
        net.forward(x.clone())
            .try_into_vec_as::<f32>()
            .map_err(|e| ModelError::TensorRead(e.to_string()))
            .map(|_| ())
    };
    for _ in 0..cfg.warmup {
        infer()?;
    }
    let start = Instant::now();
    for _ in 0..cfg.iters {
        infer()?;
    }
    Ok((cfg.batch * cfg.iters) as f64 / start.elapsed().as_secs_f64())
}

/// Waits for the device to finish the queued work (reads one parameter back).
fn sync(net: &Net, device: &Device) -> Result<(), ModelError> {
    device.sync().map_err(|e| ModelError::TensorRead(format!("{e:?}")))?;
    let (_, b) = net.head.weight_bias();
    b.try_into_vec_as::<f32>().map_err(|e| ModelError::TensorRead(e.to_string())).map(|_| ())
}
