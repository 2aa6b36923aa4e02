//! Command-line arguments (clap). Each subcommand's `--help` explains it with an example.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::DifficultyPreset;
use crate::jobs::Shard;

/// The EmbeddingCAM harness: generate and check datasets in CUB-200-2011's layout, train embedding
/// networks, explain them with EmbeddingCAM and other CAM methods, score the heatmaps against
/// boxes and masks, and make tables and plots.
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
    /// On several processes or machines (a cluster: see `embcam slurm`): `--shard I/N` runs the
    /// I-th of N deterministic shares of the (cell × seed) jobs, each job leaving its record
    /// under `<output>/<name>/jobs/`; `--collect` then assembles one run folder from the records
    /// (the same tables, byte for byte, as one process), refusing while a job has none; `--list`
    /// prints the jobs and their state.
    ///
    /// Example: `embcam run experiments/quickstart.toml`
    ///
    /// Example: `embcam run experiments/ablations/stage.toml --shard 2/4`
    Run(RunCommand),
    /// Only the data and training stages of an experiment file (cached like `run`).
    ///
    /// Example: `embcam train experiments/quickstart.toml`
    Train(RunArgs),
    /// Data, training and heatmaps: every method × proxy × stage of the experiment, stored as
    /// raw maps (`.npy` + CSV index) with a labelled overlay gallery in the explain stage's folder.
    ///
    /// Example: `embcam explain experiments/quickstart.toml`
    Explain(RunArgs),
    /// Everything up to the scores: heatmaps (cached) scored against boxes and masks, with the
    /// baselines; prints the summary table without writing a run folder. A change to `[eval]`
    /// re-scores the stored heatmaps without recomputing them.
    ///
    /// Example: `embcam evaluate experiments/quickstart.toml`
    Evaluate(RunArgs),
    /// Write a Slurm job array for an experiment file: one `embcam run FILE --shard I/N` per
    /// array task, and a collect job that runs once every task has succeeded
    /// (`--dependency=afterok`). `--submit` submits both with `sbatch`; without it the scripts
    /// are written and the command that submits them is printed. Every task shares the
    /// experiment's results folder: put it on a file system all nodes see.
    ///
    /// Example: `embcam slurm experiments/ablations/stage.toml --partition gpu --device tch-cuda
    /// --time 02:00:00 --submit`
    Slurm(SlurmArgs),
    /// Tables and plots from finished run folders: one run's summary and plots remade from its
    /// data files (in place, or into --out), or several runs side by side in one table (--out
    /// needed), each run's cells prefixed with `<experiment>/<run-id>`.
    ///
    /// Example: `embcam report results/quickstart/runs/run-001`
    ///
    /// Example: `embcam report results/a/runs/run-001 results/b/runs/run-002 --out results/a-vs-b`
    Report(ReportArgs),
    /// Throughput on a device: training steps, inference, EmbeddingCAM heatmaps (autodiff and
    /// closed form) and metric scoring, as a markdown table with the machine and the command.
    ///
    /// Example: `embcam bench --device flex --backbone small-cnn --size 128 --out results/bench-flex.md`
    Bench(BenchArgs),
}

/// `embcam report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Finished run folders (`<output>/<experiment>/runs/run-NNN`).
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// Where to write the tables and plots. Default with one run: the run folder itself (its
    /// summary and plots are remade from its own data files). Needed with several runs.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Write into an --out folder that already holds a report.
    #[arg(long)]
    pub force: bool,
}

/// `embcam bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// `flex`, `tch-cpu` or `tch-cuda[:N]` (the last two need a build with `--features tch`).
    #[arg(long, default_value = "flex")]
    pub device: String,
    /// `small-cnn`, `resnet18`, `resnet34` or `resnet50`.
    #[arg(long, default_value = "small-cnn")]
    pub backbone: String,
    /// Input side in pixels: 16–1024 for small-cnn, 32–1024 for a ResNet (the networks
    /// downsample by 16 and 32).
    #[arg(long, default_value_t = 128)]
    pub size: usize,
    /// Images per batch (a multiple of 4, 4–1024).
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    /// Embedding dimension (1–4096).
    #[arg(long, default_value_t = 128)]
    pub dim: usize,
    /// Timed iterations per measurement, after one untimed (1–1000).
    #[arg(long, default_value_t = 3)]
    pub iters: usize,
    /// Proxies per image for the heatmap measurements, each 1–1024 (repeat for several).
    #[arg(long, default_values_t = [1, 10])]
    pub proxies: Vec<usize>,
    /// Also write the report to this file (must not exist).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `embcam train`, `explain`, `evaluate`, and the common part of `embcam run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The experiment file (TOML; keys in experiments/README.md).
    pub experiment: PathBuf,
    /// Recompute every stage instead of reusing cached results; `--force=STAGE` recomputes that
    /// stage alone (later stages are still reused while their inputs are unchanged).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "all")]
    #[arg(value_name = "STAGE")]
    pub force: Option<ForceStage>,
    /// Run on this device instead of every cell's `model.device`: `flex`, `tch-cpu` or
    /// `tch-cuda[:N]` (the last two need a build with `--features tch`).
    #[arg(long, value_name = "DEVICE")]
    pub device: Option<String>,
}

/// `embcam run`.
#[derive(Debug, Args)]
pub struct RunCommand {
    /// The file, `--force` and `--device`.
    #[command(flatten)]
    pub args: RunArgs,
    /// Run only the I-th of N shares of the (cell × seed) jobs (job j is in shard
    /// (j − 1) mod N + 1) and write their records; no run folder (`--collect` makes it).
    #[arg(long, value_name = "I/N", conflicts_with_all = ["collect"])]
    pub shard: Option<Shard>,
    /// Print the jobs (of `--shard I/N` when given) with their state, and run nothing.
    #[arg(long, conflicts_with_all = ["collect", "force"])]
    pub list: bool,
    /// Assemble one run folder from every job's record (after `--shard` runs); refused, naming
    /// the jobs without a record, while a shard is unfinished. Runs no stage.
    #[arg(long, conflicts_with_all = ["force"])]
    pub collect: bool,
}

/// `embcam slurm`.
#[derive(Debug, Args)]
pub struct SlurmArgs {
    /// The experiment file (its results folder must be on storage every node sees).
    pub experiment: PathBuf,
    /// Array tasks: the jobs are split into this many shards (default: one job per task).
    #[arg(long, value_name = "N")]
    pub shards: Option<usize>,
    /// At most this many tasks at once (`--array=1-N%K`).
    #[arg(long, value_name = "K")]
    pub max_parallel: Option<usize>,
    /// Slurm partition (`--partition`); default: the cluster's default partition.
    #[arg(long)]
    pub partition: Option<String>,
    /// Slurm account (`--account`).
    #[arg(long)]
    pub account: Option<String>,
    /// GPUs per array task (`--gres=gpu:G`); default 1 with `--device tch-cuda`, else none.
    #[arg(long, value_name = "G")]
    pub gpus_per_job: Option<u32>,
    /// CPU cores per array task (`--cpus-per-task`).
    #[arg(long, value_name = "C", default_value_t = 4)]
    pub cpus_per_task: u32,
    /// Memory per array task (`--mem`, e.g. `16G`); default: the cluster's.
    #[arg(long)]
    pub mem: Option<String>,
    /// Time limit per array task (`--time`, e.g. `02:00:00` or `1-00:00:00`).
    #[arg(long, value_name = "T", default_value = "04:00:00")]
    pub time: String,
    /// The device every task runs on, passed to `embcam run --device` (e.g. `tch-cuda`; needs
    /// an embcam built with `--features tch`); default: the file's `model.device`.
    #[arg(long)]
    pub device: Option<String>,
    /// A shell line each task runs before embcam (`module load cuda`, exporting LD_LIBRARY_PATH
    /// for LibTorch, …); repeat for several.
    #[arg(long, value_name = "LINE")]
    pub setup: Vec<String>,
    /// The embcam binary the tasks run (default: this one); it must be reachable from every node.
    #[arg(long, value_name = "PATH")]
    pub embcam: Option<PathBuf>,
    /// Where to write the scripts (default: `<output>/<name>/slurm/`).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Submit the array and the collect job with `sbatch` (needs Slurm's commands on PATH).
    #[arg(long)]
    pub submit: bool,
}

/// What `--force` recomputes: every stage, or one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ForceStage {
    /// Every stage.
    All,
    /// Training.
    Train,
    /// The heatmaps.
    Explain,
    /// The scores.
    Evaluate,
    /// Ground truth on SynthCUB's interventions.
    GroundTruth,
    /// Model randomisation sanity checks.
    Sanity,
}

impl ForceStage {
    /// Whether `--force` with this value recomputes the stage named `stage` (as in its folder).
    pub fn covers(self, stage: &str) -> bool {
        let name = match self {
            ForceStage::All => return true,
            ForceStage::Train => "train",
            ForceStage::Explain => "explain",
            ForceStage::Evaluate => "evaluate",
            ForceStage::GroundTruth => "ground-truth",
            ForceStage::Sanity => "sanity",
        };
        name == stage
    }
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
    /// Difficulty preset (bird scale, clutter, occlusion, pair granularity).
    #[arg(long, value_enum, default_value_t = DifficultyPreset::Standard)]
    pub difficulty: DifficultyPreset,
    /// Override the preset's mean box share of the frame (0.02–0.8).
    #[arg(long)]
    pub bird_area: Option<f32>,
    /// Override the preset's background clutter (0–1).
    #[arg(long)]
    pub clutter: Option<f32>,
    /// Override the preset's occlusion probability (0–1).
    #[arg(long)]
    pub occlusion: Option<f32>,
    /// Override the preset's number of attributes separating a pair (1–4).
    #[arg(long)]
    pub pair_differences: Option<u32>,
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
