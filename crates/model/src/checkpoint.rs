//! Training checkpoints in a run directory, written after every epoch, so that an interrupted run
//! resumes from its last completed epoch and gives the same weights as an uninterrupted one.
//!
//! Layout of `run_dir`:
//! - `config.json`: the [`TrainConfig`](crate::train::TrainConfig) of the run; resuming with a
//!   different config is refused.
//! - `last/`: `model.bpk` (burn format: weights, BatchNorm running statistics and parameter ids),
//!   `optim.bpk` (optimizer state, keyed by parameter id), `state.json` ([`TrainState`]).
//!   Replaced atomically: written to `last.partial/`, then renamed over `last/`.
//! - `best/`: the epoch with the best validation MAP@R, exported with
//!   [`export_safetensors`] (`model.safetensors`,
//!   `model.json`) plus `metrics.json` ([`EpochReport`]).

use std::path::{Path, PathBuf};

use burn::optim::ModuleOptimizer;
use serde::{Deserialize, Serialize};

use crate::ModelError;
use crate::error::io_err;
use crate::nets::Net;
use crate::train::{EpochReport, ValMetrics};
use crate::weights::{export_safetensors, load_burnpack, save_burnpack};

/// Progress of a run, saved with every checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Completed epochs.
    pub epochs_done: usize,
    /// One report per completed epoch.
    pub history: Vec<EpochReport>,
    /// Validation of the untrained network (before the first step).
    pub baseline: Option<ValMetrics>,
    /// 1-based epoch with the best validation MAP@R so far.
    pub best_epoch: Option<usize>,
}

/// A run directory (see the module docs).
#[derive(Clone, Debug)]
pub struct RunDir {
    root: PathBuf,
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), ModelError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|source| ModelError::Json { path: path.to_path_buf(), source })?;
    embcam_cub::atomic::write_atomic(path, text.as_bytes()).map_err(io_err(path))
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, ModelError> {
    let text = std::fs::read_to_string(path).map_err(io_err(path))?;
    serde_json::from_str(&text)
        .map_err(|source| ModelError::Json { path: path.to_path_buf(), source })
}

impl RunDir {
    /// Opens (creating it if needed) a run directory.
    pub fn create(root: &Path) -> Result<Self, ModelError> {
        std::fs::create_dir_all(root).map_err(io_err(root))?;
        Ok(RunDir { root: root.to_path_buf() })
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `best/model.safetensors`.
    pub fn best_weights(&self) -> PathBuf {
        self.root.join("best").join("model.safetensors")
    }

    /// `last/`, falling back to `last.old/` when a crash came between the two renames.
    fn last_dir(&self) -> Option<PathBuf> {
        ["last", "last.old"]
            .into_iter()
            .map(|d| self.root.join(d))
            .find(|d| d.join("state.json").is_file())
    }

    /// Checks `config.json` against `config` (writing it on the first call).
    pub fn check_config<C>(&self, config: &C) -> Result<(), ModelError>
    where
        C: Serialize + for<'de> Deserialize<'de> + PartialEq,
    {
        let path = self.root.join("config.json");
        if path.is_file() {
            let saved: C = read_json(&path)?;
            if saved != *config {
                return Err(ModelError::Checkpoint {
                    path: self.root.clone(),
                    message: "holds a run with another training config (config.json differs); \
                              use another run directory, or delete this one to start over"
                        .into(),
                });
            }
            Ok(())
        } else {
            write_json(&path, config)
        }
    }

    /// Saves the state after an epoch, replacing `last/`.
    pub fn save_last(
        &self,
        net: &Net,
        optim: &ModuleOptimizer,
        state: &TrainState,
    ) -> Result<(), ModelError> {
        let partial = self.root.join("last.partial");
        if partial.exists() {
            std::fs::remove_dir_all(&partial).map_err(io_err(&partial))?;
        }
        std::fs::create_dir_all(&partial).map_err(io_err(&partial))?;
        save_burnpack(net, &partial.join("model.bpk"))?;
        let optim_path = partial.join("optim.bpk");
        optim.save(&optim_path).map_err(|e| ModelError::Store {
            path: optim_path.clone(),
            message: format!("{e:?}"),
        })?;
        write_json(&partial.join("state.json"), state)?;
        let last = self.root.join("last");
        let old = self.root.join("last.old");
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(io_err(&old))?;
        }
        if last.exists() {
            std::fs::rename(&last, &old).map_err(io_err(&last))?;
        }
        std::fs::rename(&partial, &last).map_err(io_err(&partial))?;
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(io_err(&old))?;
        }
        Ok(())
    }

    /// Loads the last checkpoint into `net` and `optim` (built from the run's config), or returns
    /// `None` when the directory holds none.
    pub fn load_last(
        &self,
        net: Net,
        optim: ModuleOptimizer,
    ) -> Result<Option<(Net, ModuleOptimizer, TrainState)>, ModelError> {
        let Some(dir) = self.last_dir() else {
            return Ok(None);
        };
        let state: TrainState = read_json(&dir.join("state.json"))?;
        let net = load_burnpack(net, &dir.join("model.bpk"))?;
        let optim_path = dir.join("optim.bpk");
        let optim = optim.load(&optim_path).map_err(|e| ModelError::Store {
            path: optim_path.clone(),
            message: format!("{e:?}"),
        })?;
        Ok(Some((net, optim, state)))
    }

    /// Exports `net` as the best checkpoint with its epoch report.
    pub fn save_best(&self, net: &Net, report: &EpochReport) -> Result<(), ModelError> {
        let dir = self.root.join("best");
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        export_safetensors(net, &dir.join("model.safetensors"))?;
        write_json(&dir.join("metrics.json"), report)
    }
}
