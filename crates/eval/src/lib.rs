//! Scores heatmaps against CUB's boxes, masks and parts, measures faithfulness in embedding space,
//! and measures the retrieval quality of an embedding.
//!
//! The crate depends only on the data layer (`embcam-cub`'s boxes, masks, parts) and plain arrays:
//! no network code, no printing, no files. Heatmaps are scored in original image pixels; the
//! caller resamples them with `embcam_cub::Geometry::map_to_original`.
//!
//! - [`score_image`] / [`score_all`]: every per-image metric at once ([`ImageScores`]);
//!   [`summarize`] turns them into a [`Report`] (mean, 95% CI, split-level MaxBoxAccV2 and PxAP,
//!   degenerate counts); [`evaluate`] does both.
//! - [`deletion_insertion`]: faithfulness curves with the model as a closure.
//! - [`retrieval_scores`]: Recall@K and MAP@R.
//! - [`paired`]: paired comparisons of two sources over the same images (bootstrap, Wilcoxon).
//! - [`BaselineMap`]: the centre-Gaussian and random baselines, scored like any map source.
//! - [`parts`]: ground truth on SynthCUB's interventions — part importance agreement,
//!   discriminative-part mass and peak hit, counterfactual contrast, background independence.
//! - [`sanity`]: model-randomisation sanity checks (Spearman, SSIM; Adebayo et al. 2018).
//!
//! Each metric's formula is documented where it is computed; `README.md` lists them.

pub mod aggregate;
pub mod baselines;
pub mod error;
pub mod faithfulness;
pub mod localization;
pub mod metric;
pub mod paired;
pub mod parts;
pub mod pointing;
pub mod pxap;
pub mod ratio;
pub mod retrieval;
pub mod sanity;
pub mod score;
pub mod threshold;

pub use aggregate::{DegenerateCounts, Report, Summary, summarize};
pub use baselines::{BaselineMap, centre_gaussian, uniform_random};
pub use error::EvalError;
pub use faithfulness::{
    ClassProxies, Curve, FaithfulnessConfig, FaithfulnessInput, FaithfulnessScores,
    PerturbBaseline, deletion_insertion, mean_curves,
};
pub use localization::{MaxBoxAccV2, MaxBoxAccumulator, ThresholdSweep};
pub use metric::{Level, Metric};
pub use paired::{Paired, paired};
pub use parts::{
    BackgroundIndependence, BackgroundScores, Contrast, DiscriminativePart, PartInput, PartMass,
    PartMetric, PartReport, PartScores, background_independence, counterfactual_contrast,
    discriminative_part, part_importance_agreement, part_masses, peak_tolerance, region_mass,
    score_parts, summarize_parts,
};
pub use pxap::PxapHistogram;
pub use retrieval::{RetrievalScores, retrieval_scores};
pub use sanity::{
    MapSimilarity, RandomisationRow, compare_maps, spearman, ssim, summarize_randomisation,
};
pub use score::{EvalConfig, Heatmap, ImageScores, ImageTruth, score_all, score_image};

use rayon::iter::IntoParallelIterator;

/// Score every image of one map source and summarise: [`score_all`] then [`summarize`].
///
/// # Errors
/// As [`score_image`] and [`summarize`].
pub fn evaluate<'a, I>(source: &str, items: I, cfg: &EvalConfig) -> Result<Report, EvalError>
where
    I: IntoParallelIterator<Item = (&'a Heatmap, &'a ImageTruth)>,
{
    summarize(source, &score_all(items, cfg)?, cfg)
}
