//! The crate's error type: what went wrong, for which image or row, and what to do about it.

use std::error::Error as StdError;

/// Everything that can make a metric refuse to compute.
///
/// Degenerate but meaningful inputs (an all-zero map, an empty mask, a box outside the image) are
/// not errors: they are scored by a documented rule and counted in the report.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A paired comparison got unusable input.
    #[error("paired comparison: {0}")]
    Paired(String),
    /// The embedding array is not a whole number of rows.
    #[error(
        "embeddings hold {len} values, which is not a multiple of dim = {dim}: pass a row-major \
         n × dim array"
    )]
    EmbeddingShape {
        /// Number of values passed.
        len: usize,
        /// Row length passed.
        dim: usize,
    },
    /// One label per embedding row is needed.
    #[error("{rows} embedding rows but {labels} labels: pass exactly one label per row")]
    LabelCount {
        /// Rows in the embedding array.
        rows: usize,
        /// Labels passed.
        labels: usize,
    },
    /// An embedding row holds NaN or an infinity.
    #[error(
        "embedding row {row} holds a non-finite value ({value}) at column {col}: check the \
         network for a diverged or uninitialised output"
    )]
    NonFiniteEmbedding {
        /// Row index.
        row: usize,
        /// Column index.
        col: usize,
        /// The offending value.
        value: f32,
    },
    /// Retrieval needs at least two points (each query is compared with the others).
    #[error("retrieval needs at least 2 embeddings, got {n}")]
    TooFewEmbeddings {
        /// Rows passed.
        n: usize,
    },
    /// A heatmap value is NaN or infinite.
    #[error(
        "image {id}: heatmap value at (x = {x}, y = {y}) is {value}; heatmaps must be finite, \
         check the CAM for a 0/0 or an overflow"
    )]
    NonFiniteMap {
        /// Image id.
        id: u32,
        /// Column.
        x: u32,
        /// Row.
        y: u32,
        /// The offending value.
        value: f32,
    },
    /// A heatmap value is negative.
    #[error(
        "image {id}: heatmap value at (x = {x}, y = {y}) is {value} < 0; the metrics expect \
         H ≥ 0, apply the ReLU before scoring"
    )]
    NegativeMap {
        /// Image id.
        id: u32,
        /// Column.
        x: u32,
        /// Row.
        y: u32,
        /// The offending value.
        value: f32,
    },
    /// Heatmap, mask and image must share one pixel grid.
    #[error(
        "image {id}: {what} is {got_w}×{got_h} (or holds the wrong number of values) but the \
         image is {width}×{height}; resample heatmaps to original pixels with \
         Geometry::map_to_original"
    )]
    SizeMismatch {
        /// Image id.
        id: u32,
        /// Which array: "heatmap", "mask", "image tensor".
        what: &'static str,
        /// Its width.
        got_w: u32,
        /// Its height.
        got_h: u32,
        /// The image's width.
        width: u32,
        /// The image's height.
        height: u32,
    },
    /// The ground-truth box has a NaN or infinite coordinate.
    #[error(
        "image {id}: the ground-truth box has a non-finite coordinate; check bounding_boxes.txt"
    )]
    NonFiniteBox {
        /// Image id.
        id: u32,
    },
    /// An image with no pixels cannot be scored.
    #[error("image {id} has size {width}×{height}; every metric needs at least one pixel")]
    EmptyImage {
        /// Image id.
        id: u32,
        /// Width.
        width: u32,
        /// Height.
        height: u32,
    },
    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Aggregation over zero images.
    #[error("no images to aggregate: score at least one image before summarising")]
    NoImages,
    /// Two inputs that must have the same length do not.
    #[error("{what}: {left} ≠ {right}")]
    LengthMismatch {
        /// What was compared.
        what: &'static str,
        /// First length.
        left: usize,
        /// Second length.
        right: usize,
    },
    /// The model closure of a faithfulness curve failed.
    #[error("image {id}: the model failed on a perturbed batch")]
    Model {
        /// Image id.
        id: u32,
        /// The model's error.
        #[source]
        source: Box<dyn StdError + Send + Sync + 'static>,
    },
    /// The model closure returned the wrong number or size of embeddings, or non-finite values.
    #[error("image {id}: the model returned {what}")]
    ModelOutput {
        /// Image id.
        id: u32,
        /// What was wrong.
        what: String,
    },
}
