//! Command-line arguments (clap). Each subcommand's `--help` explains it with an example.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// The EmbeddingCAM harness: generate and check datasets in CUB-200-2011's layout (and, as the
/// project grows, train embedding networks, explain them and score the explanations).
#[derive(Debug, Parser)]
#[command(name = "embcam", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate a SynthCUB dataset (procedurally drawn birds in CUB-200-2011's layout) and
    /// validate it.
    ///
    /// Example: `embcam synth datasets/synthcub --classes 20 --images-per-class 40 --seed 0`
    Synth(SynthArgs),
    /// Check a dataset folder completely and report every problem plus a summary.
    ///
    /// Example: `embcam validate datasets/CUB_200_2011 --segmentations datasets/segmentations`
    Validate(ValidateArgs),
    /// Run an experiment file end to end: data, training, heatmaps, metrics, tables, plots.
    ///
    /// Stages are cached by the configuration parts that feed them: a second run (or an ablation
    /// over CAM settings) reuses what it can. Each run gets a new folder
    /// `<output>/<name>/runs/run-NNN/`; nothing is overwritten.
    ///
    /// Example: `embcam run experiments/quickstart.toml`
    Run(RunArgs),
    /// Only the data and training stages of an experiment file (cached like `run`).
    ///
    /// Example: `embcam train experiments/quickstart.toml`
    Train(RunArgs),
}

/// `embcam run` and `embcam train`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The experiment file (TOML; keys in experiments/README.md).
    pub experiment: PathBuf,
    /// Recompute every stage instead of reusing cached results.
    #[arg(long)]
    pub force: bool,
}

/// `embcam synth`.
#[derive(Debug, Args)]
pub struct SynthArgs {
    /// Output folder; it gets `CUB_200_2011/` and `segmentations/`. Must not exist (or be empty)
    /// unless `--force`.
    pub out: PathBuf,
    /// Number of classes (2–999).
    #[arg(long, default_value_t = 20)]
    pub classes: u32,
    /// Images per class.
    #[arg(long, default_value_t = 40)]
    pub images_per_class: u32,
    /// Smallest long side of an image, in pixels.
    #[arg(long, default_value_t = 160)]
    pub min_side: u32,
    /// Largest long side of an image, in pixels.
    #[arg(long, default_value_t = 256)]
    pub max_side: u32,
    /// Seed: the same seed writes the same bytes.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Replace an existing dataset at OUT.
    #[arg(long)]
    pub force: bool,
}

/// `embcam validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The `CUB_200_2011` folder (the one holding `images.txt`), or a folder containing it.
    pub root: PathBuf,
    /// The segmentation folder (`segmentations/`, shipped as a separate archive). Default:
    /// `segmentations/` beside ROOT when it exists.
    #[arg(long)]
    pub segmentations: Option<PathBuf>,
}
