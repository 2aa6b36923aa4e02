//! Integration tests of `embcam-eval`: every metric against an independent, slow reference
//! computation, the properties the metrics must have, and the degenerate-input rules.

#![allow(clippy::unwrap_used, missing_docs)]

mod agreement;
mod degenerate;
mod fixtures;
mod interventions;
mod properties;
mod reference;
