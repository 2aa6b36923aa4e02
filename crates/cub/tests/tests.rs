//! Integration tests of the data layer, on SynthCUB datasets generated in temp dirs.
#![allow(clippy::unwrap_used, missing_docs)]

mod fixture;
mod fuzz;
mod malformed;
mod roundtrip;
mod synth;
