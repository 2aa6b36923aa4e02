//! EmbeddingCAM (Bachhawat, arXiv 2402.00909, "Generalizing GradCAM for Embedding Networks"):
//! Grad-CAM heatmaps for embedding networks, the proxies they are computed against, the rest of
//! the Grad-CAM family driven by the same target, Chen et al. 2020's triplet baseline, a closed
//! form for GAP → linear (→ L2) heads, and the files heatmaps are kept in.
//!
//! - [`target`]: what is differentiated, `s = sim(e, p)` on `z` or `z/‖z‖`.
//! - [`proxy`]: class means, single point, predicted class, k-NN, wrong class, classifier row,
//!   each with its origin; [`ProxyBatch`] lays them out for a batch.
//! - [`gradcam`]: EmbeddingCAM and the driver [`explain_many`] for every [`Method`].
//! - [`closed_form`]: `α = Wᵀ g / Z` for GAP → linear heads, no backward.
//! - [`methods`]: Grad-CAM++, HiResCAM, XGradCAM, LayerCAM, Score-CAM, Eigen-CAM, Chen et al.
//! - [`maps`]: [`CamMaps`] (raw, ReLU, upsampled, original-image views) and [`CamWarning`].
//! - [`npy`], [`mod@overlay`]: `.npy` + CSV index, overlay PNGs and galleries.
//!
//! Networks come in through [`embcam_model::Staged`], in eval mode (`model.valid()`). The crate
//! never prints and never picks paths: long operations report to an [`embcam_cub::Progress`] from
//! the caller and files go to a folder the caller gives.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod closed_form;
mod error;
pub mod gradcam;
pub mod maps;
pub mod methods;
pub mod npy;
pub mod overlay;
pub mod proxy;
pub mod target;
mod util;

pub use embcam_model::Staged;
pub use error::{CamError, Result};
pub use gradcam::{
    CamOptions, CamOutput, ClosedForm, GradientPath, Method, StageGradients, check_stage, explain,
    explain_many, stage_gradients,
};
pub use maps::{CamMaps, CamWarning, max_normalize};
pub use methods::chen::{ChenConfig, ChenWeights, Triplet};
pub use npy::{HeatmapWriter, read_npy, write_npy};
pub use overlay::{Colormap, OverlayStyle, gallery, gallery_index, overlay, write_png};
pub use proxy::{
    Classifier, Embeddings, Proxy, ProxyBank, ProxyBatch, ProxyKind, ProxyOrigin, ProxySpec, Query,
    WrongClassPick,
};
pub use target::{Similarity, Space, Target};
