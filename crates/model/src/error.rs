//! The crate's error type: every failure a caller can cause, with what went wrong and where.

use std::path::PathBuf;

/// Everything that can go wrong in `embcam-model`.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A stage name that the backbone does not have.
    #[error("unknown stage `{stage}` for backbone {backbone}; stages are: {}", available.join(", "))]
    UnknownStage {
        /// The name asked for.
        stage: String,
        /// The backbone's name (`small-cnn`, `resnet18`, ...).
        backbone: String,
        /// The stage names that exist, in forward order.
        available: Vec<String>,
    },
    /// A configuration value that cannot work (zero dimension, empty batch plan, ...).
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// A tensor whose shape does not fit the operation.
    #[error("shape error: {0}")]
    Shape(String),
    /// A device string that is unknown or not built into this binary.
    #[error("device `{name}`: {reason}")]
    Device {
        /// The string the caller gave.
        name: String,
        /// Why it was refused and how to fix it.
        reason: String,
    },
    /// Weights that do not fit the network (boxed: the report is large).
    #[error("{0}")]
    WeightsMismatch(Box<WeightsReport>),
    /// A weights or checkpoint file that could not be read or written.
    #[error("{}: {message}", path.display())]
    Store {
        /// The file.
        path: PathBuf,
        /// The store's message.
        message: String,
    },
    /// An I/O error on a named file.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A JSON file (architecture, checkpoint state) that could not be parsed or written.
    #[error("{}: {source}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: serde_json::Error,
    },
    /// A checkpoint directory whose contents do not match the run being resumed.
    #[error("checkpoint {}: {message}", path.display())]
    Checkpoint {
        /// The checkpoint folder.
        path: PathBuf,
        /// What does not match and what to do.
        message: String,
    },
    /// Reading a tensor back from the device failed.
    #[error("reading a tensor back from the device: {0}")]
    TensorRead(String),
    /// An error from the data layer.
    #[error(transparent)]
    Data(#[from] embcam_cub::CubError),
    /// An error from the retrieval metrics.
    #[error("validation metrics: {0}")]
    Eval(String),
}

/// What did not fit when loading weights: missing, unexpected and mis-shaped tensors.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WeightsReport {
    /// The weights file.
    pub path: PathBuf,
    /// How many tensors were applied.
    pub applied: usize,
    /// Tensors the network needs that the file lacks (network names).
    pub missing: Vec<String>,
    /// Tensors in the file that the network has no place for (file names after remapping).
    pub unexpected: Vec<String>,
    /// `name: expected [..], found [..]` for tensors of the wrong shape.
    pub mis_shaped: Vec<String>,
    /// Any other per-tensor error (dtype, adapter).
    pub other: Vec<String>,
}

impl std::fmt::Display for WeightsReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "weights in {} do not fit the network ({} tensor(s) applied)",
            self.path.display(),
            self.applied
        )?;
        let lists = [
            ("missing", &self.missing),
            ("unexpected", &self.unexpected),
            ("mis-shaped", &self.mis_shaped),
            ("other errors", &self.other),
        ];
        for (what, list) in lists {
            if !list.is_empty() {
                write!(f, "\n  {what} ({}): {}", list.len(), list.join(", "))?;
            }
        }
        Ok(())
    }
}

/// Attach a path to an I/O error.
pub(crate) fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> ModelError + '_ {
    move |source| ModelError::Io { path: path.to_path_buf(), source }
}
