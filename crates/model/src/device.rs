//! Run-time choice of the compute device: `flex` (burn's pure-Rust CPU backend, always built),
//! `tch-cpu` and `tch-cuda[:N]` (LibTorch through burn-tch, only with the crate's `tch` feature;
//! see the crate README for the LibTorch install).

use burn::tensor::Device;

use crate::ModelError;

/// The device names [`parse_device`] accepts.
pub const DEVICE_NAMES: [&str; 3] = ["flex", "tch-cpu", "tch-cuda"];

/// Whether this build includes the LibTorch backend (cargo feature `tch`).
pub const HAS_TCH: bool = cfg!(feature = "tch");

/// A device name, parsed (whether this build can run it is [`DeviceSpec::device`]'s question):
/// what the runner's scheduling decisions (a GPU per Slurm task or not) are made on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceSpec {
    /// burn's pure-Rust CPU backend.
    Flex,
    /// LibTorch on the CPU.
    TchCpu,
    /// LibTorch on CUDA GPU `N`.
    TchCuda(usize),
}

impl DeviceSpec {
    /// Whether the device is a GPU.
    pub fn is_cuda(self) -> bool {
        matches!(self, DeviceSpec::TchCuda(_))
    }

    /// The device, in this build.
    ///
    /// # Errors
    /// [`ModelError::Device`] for `tch-*` in a build without the `tch` feature.
    pub fn device(self) -> Result<Device, ModelError> {
        let made = match self {
            DeviceSpec::Flex => Ok(Device::flex()),
            DeviceSpec::TchCpu => libtorch(None),
            DeviceSpec::TchCuda(index) => libtorch(Some(index)),
        };
        made.map_err(|reason| ModelError::Device { name: self.to_string(), reason })
    }
}

impl std::fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceSpec::Flex => f.write_str("flex"),
            DeviceSpec::TchCpu => f.write_str("tch-cpu"),
            DeviceSpec::TchCuda(0) => f.write_str("tch-cuda"),
            DeviceSpec::TchCuda(index) => write!(f, "tch-cuda:{index}"),
        }
    }
}

impl std::str::FromStr for DeviceSpec {
    type Err = ModelError;

    /// `flex`, `tch-cpu`, `tch-cuda` or `tch-cuda:N` (GPU index, default 0), in any build.
    fn from_str(name: &str) -> Result<Self, ModelError> {
        let err = |reason: String| ModelError::Device { name: name.to_string(), reason };
        match name {
            "flex" => Ok(DeviceSpec::Flex),
            "tch-cpu" => Ok(DeviceSpec::TchCpu),
            _ => match name.strip_prefix("tch-cuda") {
                Some("") => Ok(DeviceSpec::TchCuda(0)),
                Some(rest) => rest
                    .strip_prefix(':')
                    .and_then(|i| i.parse::<usize>().ok())
                    .map(DeviceSpec::TchCuda)
                    .ok_or_else(
                        || err("expected tch-cuda or tch-cuda:N with N a GPU index".into()),
                    ),
                None => {
                    Err(err(format!("unknown device; expected one of {}", DEVICE_NAMES.join(", "))))
                }
            },
        }
    }
}

/// Parses `flex`, `tch-cpu`, `tch-cuda` or `tch-cuda:N` (GPU index, default 0) into a device of
/// this build ([`DeviceSpec`], then [`DeviceSpec::device`]).
///
/// # Errors
/// [`ModelError::Device`] for an unknown name, and for `tch-*` in a build without the `tch`
/// feature ("rebuild with --features tch; see crates/model/README.md"). Whether CUDA is present is
/// only known when the first tensor is created on the device.
pub fn parse_device(name: &str) -> Result<Device, ModelError> {
    name.parse::<DeviceSpec>()?.device().map_err(|e| match e {
        // The error names the device as the user wrote it (`tch-cuda:0`, not `tch-cuda`).
        ModelError::Device { reason, .. } => ModelError::Device { name: name.to_string(), reason },
        other => other,
    })
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
