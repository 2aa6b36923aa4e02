//! The train stage: train the network (or reuse a finished training with the same inputs; resume
//! an interrupted one), then load its best checkpoint.

use anyhow::{Context, Result, ensure};
use burn::module::Module;
use embcam_model::Net;
use embcam_model::checkpoint::{RunDir, TrainState};
use embcam_model::train::{EpochReport, Flow, TrainData, train};

use super::Job;
use crate::progress::bar;
use crate::store::Stage;

/// The trained network and its training history.
pub struct Trained {
    /// Best checkpoint (by validation MAP@R), eval mode.
    pub net: Net,
    /// The stage.
    pub stage: Stage,
    /// One report per epoch.
    pub history: Vec<EpochReport>,
    /// Whether a finished training was reused.
    pub reused: bool,
}

/// Train (or reuse a finished training with the same inputs; resume an interrupted one).
pub fn trained(job: &Job<'_>) -> Result<Trained> {
    let cfg = &job.resolved.train;
    if let Some(p) = &cfg.pretrained {
        ensure!(
            p.is_file(),
            "pretrained weights {} not found; put the torchvision checkpoint there as \
             datasets/README.md says, or remove model.pretrained",
            p.display()
        );
    }
    let done = job.cached("train", &(&job.data.key, cfg), "history.json", true, |stage| {
        if stage.file("run").join("last").is_dir() {
            eprintln!("  resuming training from the last checkpoint in {}", stage.dir.display());
        }
        let data = TrainData {
            dataset: job.data.dataset.clone(),
            train: job.data.split.train.clone(),
            eval: job.data.split.eval.clone(),
        };
        let pb = bar("training");
        let mut log = |r: &EpochReport| {
            pb.println(format!(
                "  epoch {:>3}: loss {:.4}, active {:>5.1}%, {:.0} img/s, val R@1 {:.3}, MAP@R {:.3}{}",
                r.epoch,
                r.loss,
                r.active_share.unwrap_or(0.0) * 100.0,
                r.images_per_sec,
                r.val.recall_at_1(),
                r.val.map_at_r,
                if r.is_best { " (best)" } else { "" }
            ));
            Flow::Continue
        };
        let out = train(cfg, &data, job.device, Some(&stage.file("run")), &pb, &mut log)
            .context("training")?;
        pb.finish_and_clear();
        Ok::<TrainState, anyhow::Error>(out.state)
    })?;
    let best = RunDir::create(&done.stage.file("run"))?.best_weights();
    let net = embcam_model::weights::load_exported(&best, job.device)
        .with_context(|| format!("loading {}", best.display()))?;
    Ok(Trained {
        net: net.valid(),
        stage: done.stage,
        history: done.value.history,
        reused: done.reused,
    })
}

/// The untrained network of the same configuration and seed (a baseline).
pub fn untrained(job: &Job<'_>) -> Result<Net> {
    Ok(job.resolved.train.net.init(job.device, job.exp.seed)?.valid())
}
