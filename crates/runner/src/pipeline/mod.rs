//! The stages of one experiment (one grid cell, one seed), each cached in a content-keyed folder:
//!
//! ```text
//! data ─► train (checkpoints, history) ─► explain (heatmaps .npy, embeddings, gallery)
//!                                     ─► evaluate (per-image rows, split-level metrics, curves)
//! ```
//! One file per stage; the untrained network and the map baselines go through the same scoring.
//! The stages take the experiment [`resolve`](crate::config::resolve)d into the libraries' types
//! ([`Job`]); the work itself is the libraries'.

mod cam;
mod data;
mod evaluate;
mod explain;
mod ground_truth;
mod sanity;
mod train;

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use burn::tensor::Device;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::config::{Experiment, Resolved};
use crate::store::{Stage, write_atomic};

pub use data::{Data, check_against_data, data, device};
pub use evaluate::{evaluate, stored_key};
pub use explain::{explain, galleries};
pub use ground_truth::ground_truth;
pub use sanity::{SanityRow, sanity};
pub use train::{Trained, trained};

/// One experiment's run through the stages: what every stage reads.
pub struct Job<'a> {
    /// `<output.dir>/<name>/`, holding `stages/`.
    pub exp_dir: &'a Path,
    /// The experiment (its cell, seed and file).
    pub exp: &'a Experiment,
    /// The experiment in the libraries' types.
    pub resolved: &'a Resolved,
    /// The data stage's result.
    pub data: &'a Data,
    /// Where the networks run.
    pub device: &'a Device,
    /// Recompute finished stages instead of reusing them: all, or one (`--force=STAGE`).
    pub force: Option<crate::cli::ForceStage>,
}

/// A stage's result and whether it was reused.
pub struct Cached<T> {
    /// The stage folder.
    pub stage: Stage,
    /// Its result.
    pub value: T,
    /// Whether a finished stage was reused.
    pub reused: bool,
}

impl Job<'_> {
    /// The cache preamble of every stage: the folder of stage `name` keyed by `inputs`; a finished
    /// one (unless `--force`) is read back from its `file`, otherwise `compute` fills the folder
    /// and its result is written to `file` before the `DONE` marker. `resume` keeps what an
    /// interrupted run left in the folder (training resumes from its last checkpoint).
    ///
    /// The stage is locked while it is looked at and computed (`stages/<stage>-<key>.lock`,
    /// [`crate::lock`]): a second process running the same stage waits, then reuses it. A
    /// finished stage is checked against its manifest (every file's size and quick hash, written
    /// before `DONE`); a damaged one is recomputed, alone, with a message.
    pub fn cached<T: Serialize + DeserializeOwned>(
        &self,
        name: &str,
        inputs: &impl Serialize,
        file: &str,
        resume: bool,
        compute: impl FnOnce(&Stage) -> Result<T>,
    ) -> Result<Cached<T>> {
        let stage = Stage::new(self.exp_dir, name, inputs)?;
        let _lock =
            crate::lock::acquire(&stage.dir.with_extension("lock"), &format!("the {name} stage"))?;
        let path = stage.file(file);
        let mut damaged = false;
        if stage.is_done() && !self.force.is_some_and(|f| f.covers(name)) {
            match stage.damage() {
                None => {
                    let value = read_json(&path)?;
                    return Ok(Cached { stage, value, reused: true });
                }
                Some(why) => {
                    eprintln!("  {name}: {why}; recomputing this stage");
                    damaged = true;
                }
            }
        }
        if resume && !stage.is_done() && !damaged {
            std::fs::create_dir_all(&stage.dir)
                .with_context(|| format!("creating {}", stage.dir.display()))?;
        } else {
            stage.reset()?;
        }
        let started = Instant::now();
        let value = compute(&stage)?;
        write_atomic(&path, &serde_json::to_vec(&value)?)?;
        stage.write_manifest()?;
        stage.finish(started.elapsed().as_secs_f64())?;
        Ok(Cached { stage, value, reused: false })
    }
}

/// A stage's JSON result; an error names the file and says how to recover.
fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| {
        format!("{} is damaged; rerun with --force to recompute its stage", path.display())
    })
}
