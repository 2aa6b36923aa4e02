//! The Grad-CAM family beyond Grad-CAM itself, each driven by the same target and proxies (or
//! target-free), with the formulas of pytorch-grad-cam (Gildenblat et al.) and their papers.
//!
//! Gradient methods combine the stage activation `A` (`[N, K, h, w]`) and the gradient
//! `G = ∂s/∂A` (same shape) into a raw map `[N, 1, h, w]`; the caller applies the ReLU.

pub mod chen;
pub mod eigencam;
pub mod gradcam_pp;
pub mod hirescam;
pub mod layercam;
pub mod scorecam;
pub mod xgradcam;
