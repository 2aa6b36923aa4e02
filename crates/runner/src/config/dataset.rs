//! `[dataset]` and `[dataset.synth]` of an experiment file (split from `file.rs`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::vocab::{EvalTransformName, SplitName};

/// `[dataset]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DatasetSection {
    /// `synth` (generate SynthCUB at `path` if absent) or `cub` (real CUB-200-2011 at `path`).
    pub kind: DatasetKind,
    /// For `synth`: the folder to generate into (holding `CUB_200_2011/`); for `cub`: the
    /// `CUB_200_2011` folder. Relative paths are relative to the working directory.
    pub path: PathBuf,
    /// The segmentation root; default `segmentations/` beside the `CUB_200_2011` folder.
    #[serde(default)]
    pub segmentations: Option<PathBuf>,
    /// `class-disjoint` (default) or `official`.
    #[serde(default = "default_split")]
    pub split: SplitName,
    /// Keep only the first N classes (1 or more; all when absent).
    #[serde(default)]
    pub max_classes: Option<usize>,
    /// Keep at most M images per class (1 or more; all when absent).
    #[serde(default)]
    pub max_per_class: Option<usize>,
    /// Model input side in pixels: 16–1024, and at least 32 for a ResNet (the small CNN
    /// downsamples by 16, a ResNet by 32).
    #[serde(default = "default_image_size")]
    pub image_size: u32,
    /// Evaluation transform: `squash` (whole image, default) or `center-crop`.
    #[serde(default = "default_eval_transform")]
    pub eval_transform: EvalTransformName,
    /// SynthCUB settings (`kind = "synth"` only).
    #[serde(default)]
    pub synth: Option<SynthSection>,
}

fn default_split() -> SplitName {
    SplitName::ClassDisjoint
}
fn default_image_size() -> u32 {
    96
}
fn default_eval_transform() -> EvalTransformName {
    EvalTransformName::Squash
}

/// Dataset kinds.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetKind {
    /// Generated SynthCUB.
    Synth,
    /// Real CUB-200-2011.
    Cub,
}

/// `[dataset.synth]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SynthSection {
    /// Classes.
    pub classes: u32,
    /// Images per class.
    pub images_per_class: u32,
    /// Smallest long side.
    pub min_side: u32,
    /// Largest long side.
    pub max_side: u32,
    /// Generator seed (independent of the experiment's seeds: the data stays fixed).
    pub seed: u64,
    /// Difficulty preset: `easy`, `standard` (default: CUB-like geometry) or `hard`.
    pub difficulty: DifficultyPreset,
    /// Overrides the preset's mean box share of the frame (0.02–0.8).
    pub bird_area: Option<f32>,
    /// Overrides the preset's background clutter (0–1).
    pub clutter: Option<f32>,
    /// Overrides the preset's occlusion probability (0–1).
    pub occlusion: Option<f32>,
    /// Overrides the preset's number of attributes separating a pair (1–4).
    pub pair_differences: Option<u32>,
}

impl Default for SynthSection {
    fn default() -> Self {
        SynthSection {
            classes: 20,
            images_per_class: 40,
            min_side: 160,
            max_side: 256,
            seed: 0,
            difficulty: DifficultyPreset::Standard,
            bird_area: None,
            clutter: None,
            occlusion: None,
            pair_differences: None,
        }
    }
}

/// SynthCUB difficulty presets ([`embcam_cub::synth::Difficulty`]).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum DifficultyPreset {
    /// Little clutter, rare occlusion, pairs two attributes apart.
    Easy,
    /// CUB-like geometry, moderate clutter, pairs one attribute apart.
    #[default]
    Standard,
    /// Small birds, full clutter, frequent occlusion.
    Hard,
}

impl SynthSection {
    /// The generator's configuration.
    pub fn config(&self) -> embcam_cub::synth::SynthConfig {
        use embcam_cub::synth::Difficulty;
        let preset = match self.difficulty {
            DifficultyPreset::Easy => Difficulty::easy(),
            DifficultyPreset::Standard => Difficulty::standard(),
            DifficultyPreset::Hard => Difficulty::hard(),
        };
        embcam_cub::synth::SynthConfig {
            classes: self.classes,
            images_per_class: self.images_per_class,
            min_side: self.min_side,
            max_side: self.max_side,
            seed: self.seed,
            difficulty: Difficulty {
                bird_area: self.bird_area.unwrap_or(preset.bird_area),
                clutter: self.clutter.unwrap_or(preset.clutter),
                occlusion: self.occlusion.unwrap_or(preset.occlusion),
                pair_differences: self.pair_differences.unwrap_or(preset.pair_differences),
            },
        }
    }
}
