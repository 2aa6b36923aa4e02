//! Integration tests of `embcam-model`, one binary (modules below). Tests that need the f64 float
//! type live in `tests/f64.rs`: the dtype is a per-device, per-process setting.

mod common;
mod device;
mod kernels;
mod loss;
mod nets;
mod sampler;
#[cfg(feature = "tch")]
mod tch;
mod train;
mod weights;
