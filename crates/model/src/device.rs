//! Run-time choice of the compute device: `flex` (burn's pure-Rust CPU backend, always built),
//! `tch-cpu` and `tch-cuda[:N]` (LibTorch through burn-tch, only with the crate's `tch` feature;
//! see the crate README for the LibTorch install).

use burn::tensor::Device;

use crate::ModelError;

/// The device names [`parse_device`] accepts.
pub const DEVICE_NAMES: [&str; 3] = ["flex", "tch-cpu", "tch-cuda"];

/// Whether this build includes the LibTorch backend (cargo feature `tch`).
pub const HAS_TCH: bool = cfg!(feature = "tch");

/// Parses `flex`, `tch-cpu`, `tch-cuda` or `tch-cuda:N` (GPU index, default 0).
///
/// # Errors
/// [`ModelError::Device`] for an unknown name, and for `tch-*` in a build without the `tch`
/// feature ("rebuild with --features tch; see crates/model/README.md"). Whether CUDA is present is
/// only known when the first tensor is created on the device.
pub fn parse_device(name: &str) -> Result<Device, ModelError> {
    let err = |reason: String| ModelError::Device { name: name.to_string(), reason };
    match name {
        "flex" => Ok(Device::flex()),
        "tch-cpu" => libtorch(None).map_err(err),
        _ => match name.strip_prefix("tch-cuda") {
            Some("") => libtorch(Some(0)).map_err(err),
            Some(rest) => match rest.strip_prefix(':').and_then(|i| i.parse::<usize>().ok()) {
                Some(index) => libtorch(Some(index)).map_err(err),
                None => Err(err("expected tch-cuda or tch-cuda:N with N a GPU index".into())),
            },
            None => {
                Err(err(format!("unknown device; expected one of {}", DEVICE_NAMES.join(", "))))
            }
        },
    }
}

#[cfg(feature = "tch")]
#[allow(deprecated)] // burn marks burn-tch deprecated; it is the LibTorch backend this crate offers
fn libtorch(cuda: Option<usize>) -> Result<Device, String> {
    Ok(match cuda {
        None => Device::libtorch(),
        Some(index) => Device::libtorch_cuda(index),
    })
}

#[cfg(not(feature = "tch"))]
fn libtorch(_cuda: Option<usize>) -> Result<Device, String> {
    Err("this build has no LibTorch backend: rebuild with --features tch; see crates/model/README.md".into())
}
