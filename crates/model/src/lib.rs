//! burn networks for the EmbeddingCAM harness (arXiv 2402.00909): backbones with named stages,
//! embedding and classifier heads, triplet-loss training, and weights in and out.
//!
//! - [`nets`]: [`NetConfig`] → [`Net`] (small CNN, ResNet-18/34/50 with torchvision names; GAP →
//!   linear → optional L2 head, or a classifier head).
//! - [`Staged`]: forward to a named stage and continue from it (what the CAM crate uses).
//! - [`loss`]: triplet margin loss with `all` / `semi-hard` / `batch-hard` mining (PML semantics),
//!   cross-entropy; [`sampler`]: the seeded P×K batch sampler.
//! - [`train`]: Adam/SGD, cosine/step schedules, validation Recall@K and MAP@R each epoch,
//!   [`checkpoint`]s with resume and best-epoch selection.
//! - [`weights`]: torchvision `.pth`/`.safetensors` import, `.safetensors` + JSON export.
//! - [`device`]: `flex`, `tch-cpu`, `tch-cuda` chosen at run time ([`parse_device`]).
//! - [`bench`](mod@bench): training and inference throughput.
//! - [`randomize`]: re-draw chosen layers' weights for saliency sanity checks (Adebayo et al.).
//!
//! The crate never prints; long operations report to an [`embcam_cub::Progress`] from the caller.

pub mod bench;
pub mod checkpoint;
pub mod device;
mod error;
pub mod kernels;
pub mod loss;
pub mod nets;
pub mod randomize;
pub mod sampler;
mod staged;
pub mod train;
pub mod weights;

pub use device::{DeviceSpec, parse_device};
pub use error::{ModelError, WeightsReport};
pub use nets::{BackboneKind, HeadConfig, Net, NetConfig};
pub use staged::Staged;
