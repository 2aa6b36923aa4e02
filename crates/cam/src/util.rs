//! Small helpers shared by the modules: reading tensors back to the host, building tensors from
//! host data, atomic file writes.

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};

use crate::error::{CamError, Result};

/// Read a tensor back to the host as `f32`, whatever its dtype.
pub(crate) fn to_vec<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>> {
    t.try_into_vec_as::<f32>().map_err(|e| CamError::TensorRead(e.to_string()))
}

/// Read a tensor back to the host as `f64`, whatever its dtype.
pub(crate) fn to_vec_f64<const D: usize>(t: Tensor<D>) -> Result<Vec<f64>> {
    t.try_into_vec_as::<f64>().map_err(|e| CamError::TensorRead(e.to_string()))
}

/// A float tensor of `shape` from host values (converted to the device's float dtype).
pub(crate) fn tensor<const D: usize>(
    values: Vec<f32>,
    shape: [usize; D],
    device: &Device,
) -> Tensor<D> {
    Tensor::from_data(TensorData::new(values, shape), device)
}

/// Write `bytes` to `path` atomically: a temporary file in the same folder, then a rename.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    embcam_cub::atomic::write_atomic(path, bytes)
        .map_err(|source| CamError::Io { path: path.to_path_buf(), source })
}

/// The temporary sibling `path` is written through before the final rename.
pub(crate) fn temp_path(path: &Path) -> PathBuf {
    embcam_cub::atomic::temp_path(path)
}
