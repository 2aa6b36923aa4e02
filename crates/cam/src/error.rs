//! The crate's one error type: what went wrong and where (image id, class, stage, file).

use std::path::PathBuf;

/// Everything that can go wrong in `embcam-cam`.
#[derive(Debug, thiserror::Error)]
pub enum CamError {
    /// A stage name the network does not have.
    #[error("unknown stage `{stage}`; the network's stages are: {}", available.join(", "))]
    UnknownStage {
        /// The name asked for.
        stage: String,
        /// The stages that exist, in forward order.
        available: Vec<String>,
    },
    /// A proxy (or embedding) whose dimension differs from the embedding's.
    #[error("{what}: proxy has dimension {got}, but the embedding has dimension {expected}")]
    ProxyDim {
        /// Which image / class / proxy column.
        what: String,
        /// The embedding dimension.
        expected: usize,
        /// The proxy's dimension.
        got: usize,
    },
    /// A class with no embeddings to build a proxy from.
    #[error("class {class}: no embeddings to build a proxy from ({detail})")]
    EmptyClass {
        /// The class id.
        class: u32,
        /// Why (not in the proxy set, only the left-out query, ...).
        detail: String,
    },
    /// A NaN or infinite value in an embedding, a proxy or a map.
    #[error("{what}: non-finite value (NaN or infinity)")]
    NonFinite {
        /// Which image / class / proxy, and in what.
        what: String,
    },
    /// Sizes that do not fit together (batch vs proxies, embeddings vs labels, ...).
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// The closed form was required but does not apply to this network and stage.
    #[error("closed form does not apply: {0}; use ClosedForm::Auto or ClosedForm::Off")]
    ClosedFormUnavailable(String),
    /// An argument that cannot work (k = 0, empty input, ...).
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// Reading a tensor back from the device failed.
    #[error("reading a tensor back from the device: {0}")]
    TensorRead(String),
    /// An error from the network.
    #[error(transparent)]
    Model(#[from] embcam_model::ModelError),
    /// An I/O error on a named file.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Encoding an image failed.
    #[error("{}: {source}", path.display())]
    Image {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: image::ImageError,
    },
}

/// `Result` with [`CamError`].
pub type Result<T, E = CamError> = std::result::Result<T, E>;
