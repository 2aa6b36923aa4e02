//! The data layer of the EmbeddingCAM harness: CUB-200-2011 as distributed, read by image id.
//!
//! - [`Dataset::open`] parses the index files (`images.txt`, `classes.txt`,
//!   `image_class_labels.txt`, `train_test_split.txt`, `bounding_boxes.txt`, and optionally
//!   `parts/parts.txt`, `parts/part_locs.txt`) and joins them by image id.
//! - [`Dataset::split`] makes the class-disjoint (metric-learning) or official split, optionally on
//!   a deterministic subset.
//! - [`load`] decodes images (rayon, prefetching batches) with eval/train transforms and ImageNet
//!   normalisation; every image carries its [`Geometry`] so that input-space heatmaps map back to
//!   the original image where boxes and masks live.
//! - [`Mask`] reads the separate `segmentations/` archive (soft 0–255 PNGs).
//! - [`validate()`] walks a dataset and reports every problem, not only the first.
//! - [`synth`] generates SynthCUB: procedurally drawn birds in exactly this layout.
//!
//! The crate never prints; long operations report to a [`Progress`] from the caller (pass
//! [`Silent`] for none).

pub mod atomic;
mod dataset;
mod error;
mod geometry;
pub mod load;
mod mask;
mod progress;
mod split;
pub mod synth;
mod validate;

pub use dataset::{Class, Dataset, INDEX_FILES, ImageRecord, PART_NAMES, PartLoc};
pub use error::{CubError, Result};
pub use geometry::{BBox, CropRegion, Geometry, bilinear, resize_bilinear};
pub use mask::{DEFAULT_MASK_THRESHOLD, Mask};
pub use progress::{Progress, Silent};
pub use split::{Split, SplitKind, Subset};
pub use validate::{Report, Summary, validate};
