//! Integration tests of `embcam-cam` (one binary; `finite_diff.rs` is separate because it needs
//! the flex device configured for f64, a per-process setting).

#![allow(clippy::unwrap_used)]
// Index loops mirror the formulas being checked.
#![allow(clippy::needless_range_loop)]

mod common;

mod batch;
mod chen;
mod closed_form;
mod errors;
mod methods;
mod outputs;
mod proxies;
mod reduction;
mod sanity;
mod single_point;
mod trained;
