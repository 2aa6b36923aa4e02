//! Part-level ground truth on SynthCUB's interventions (docs/metrics.md, "Ground truth on
//! SynthCUB's interventions"; the interventions are `embcam_cub::synth::render_interventions`'s,
//! the part regions its
//! [`PartLabels`]). Per image, every score beside what a uniform map gets:
//!
//! - **Part-mass ratio** of a region `R` ([`region_mass`]): `r(R) = (Σ_{p∈R} H / Σ_p H) /
//!   (|R| / N)`, the region's share of the heatmap over its share of the image. A uniform map
//!   (and an all-zero map, scored as uniform) has `r = 1` on every region.
//! - **Part importance agreement** ([`part_importance_agreement`], FunnyBirds' single-deletion
//!   test, Hesse et al. ICCV 2023): Spearman's ρ, over the removed parts, between the map's mass
//!   per pixel of part `k` and the target-score drop per pixel, `Δ_k / |R_k|` with
//!   `Δ_k = s(x) − s(x without part k)` measured by the caller. Both per pixel: a map whose mass
//!   on each part is proportional to that part's drop (a complete attribution) scores 1, and a
//!   uniform map — constant per pixel, all tied — scores exactly 0 (the ties rule of
//!   [`spearman`]). Raw masses against raw drops would rank the parts by area for a uniform map,
//!   scoring ρ > 0 whenever larger parts matter more; masses per pixel against raw drops would
//!   reward a centre prior whenever the central (body) parts, the largest, move the score most.
//!   FunnyBirds' own protocol (`single_deletion_protocol` in visinf/funnybirds-framework) sums
//!   the attribution over each part dilated by 2 px against the raw drop, over five whole parts of
//!   similar size (beak, eye, foot, tail, wing), skips images where ρ is NaN and reports
//!   `(ρ + 1)/2`; here the 15 CUB regions differ in size by two orders of magnitude, hence per
//!   pixel, and a constant side scores 0 instead of being skipped.
//! - **Discriminative-part mass** ([`discriminative_part`]): `r` on the discriminative part's
//!   region (1 = uniform), and whether the peak lands in the region or within a tolerance tied
//!   to the bird's scale ([`peak_tolerance`]), beside the chance a uniform map has.
//! - **Counterfactual contrast** ([`counterfactual_contrast`]): `r_pair − r_own` on the
//!   discriminative part, for the map of the pair class's proxy and the map of the image's own
//!   target on the same image: how the map's mass on the part that separates the pair moves when
//!   the target turns to the pair class. Identical or uniform maps score 0. Reading the sign: the
//!   part is evidence *for* the image's own class and *against* the pair class, so a map of
//!   positive evidence that follows the model moves off it (< 0); pass the map of a contrastive
//!   target (`p_own − p_pair`) as `pair_map` to ask instead whether that map lands on it (> 0).
//!   Whether the model uses the part at all is the target change on the `counterfactual`
//!   render, `s(x) − s(x_cf)`, which the caller measures.
//! - **Background independence** ([`background_independence`]): how much the target depends on
//!   the bird rather than the background, `I = 1 − |Δ_bg| / (|Δ_bg| + |Δ_bird|)` with
//!   `Δ_bg = s(x) − s(x, background swapped)` and `Δ_bird = s(x) − s(x, bird removed)`, against
//!   the map's mass share on the bird; a uniform map's share is the bird's area share.
//!
//! [`score_parts`] runs them all on one image ([`PartInput`]); [`summarize_parts`] aggregates
//! a map source's images into a [`PartReport`].
//!
//! These replace the former "part hit" (the keypoint nearest the peak is the discriminative part),
//! which a uniform random map won (its peak falls off the bird, where the nearest keypoint is
//! as often the discriminative one as not) and which never credited the wing of a bird facing
//! left (part 13, not 9).

use embcam_cub::synth::PartLabels;

use crate::sanity::spearman;
use crate::score::{Heatmap, checked_map};
use crate::{EvalError, Summary, pointing};

/// The fraction of `√(bird area)` used as the peak tolerance ([`peak_tolerance`]).
pub const PEAK_TOLERANCE_FRACTION: f32 = 0.1;

/// A region's share of the heatmap beside its share of the image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PartMass {
    /// `Σ_{p∈R} H / Σ_p H`; for an all-zero map, the area share (scored as uniform).
    pub mass_share: f64,
    /// `|R| / N`, what a uniform map's mass share is.
    pub area_share: f64,
    /// `mass_share / area_share`: 1 for a uniform map, `1 / area_share` for a map entirely on
    /// the region (the maximum).
    pub ratio: f64,
}

/// Check that `map` is finite, ≥ 0 and on the grid of `labels`; its total mass.
fn check(id: u32, map: &Heatmap, labels: &PartLabels) -> Result<f64, EvalError> {
    let (w, h) = (labels.width, labels.height);
    if w == 0 || h == 0 {
        return Err(EvalError::EmptyImage { id, width: w, height: h });
    }
    let n = w as usize * h as usize;
    if labels.labels.len() != n {
        return Err(EvalError::LengthMismatch {
            what: "part label map: values vs width · height",
            left: labels.labels.len(),
            right: n,
        });
    }
    checked_map(id, "heatmap", map, w, h)?;
    Ok(map.values.iter().map(|&v| f64::from(v)).sum())
}

/// The part-mass ratio of every region `k` whose pixels satisfy `inside(label)`; `None` when the
/// region is empty.
fn mass_where(
    map: &Heatmap,
    labels: &PartLabels,
    total: f64,
    inside: impl Fn(u8) -> bool,
) -> Option<PartMass> {
    let (mut mass, mut area) = (0.0f64, 0usize);
    for (&v, &l) in map.values.iter().zip(&labels.labels) {
        if inside(l) {
            mass += f64::from(v);
            area += 1;
        }
    }
    if area == 0 {
        return None;
    }
    let area_share = area as f64 / labels.labels.len() as f64;
    let mass_share = if total > 0.0 { mass / total } else { area_share };
    Some(PartMass { mass_share, area_share, ratio: mass_share / area_share })
}

/// The part-mass ratio of part `part`'s region (module docs); `None` when the region is empty
/// (the part is hidden, or not drawn on this side of the bird).
///
/// # Errors
/// A map of another size than the labels, or with a negative or non-finite value.
pub fn region_mass(
    id: u32,
    map: &Heatmap,
    labels: &PartLabels,
    part: u32,
) -> Result<Option<PartMass>, EvalError> {
    let total = check(id, map, labels)?;
    Ok(mass_where(map, labels, total, |l| u32::from(l) == part))
}

/// The part-mass share of every CUB part region (ids 1..=15) with at least one pixel, in one pass
/// over the map: `(part id, mass)` by part id. What the per-part importance plot shows beside each
/// part's score drop; a uniform (or all-zero) map's `mass_share` is the region's `area_share`.
///
/// # Errors
/// As [`region_mass`].
pub fn part_masses(
    id: u32,
    map: &Heatmap,
    labels: &PartLabels,
) -> Result<Vec<(u32, PartMass)>, EvalError> {
    let total = check(id, map, labels)?;
    let (mut mass, mut area) = ([0.0f64; 16], [0usize; 16]);
    for (&v, &l) in map.values.iter().zip(&labels.labels) {
        if (1..=15).contains(&l) {
            mass[usize::from(l)] += f64::from(v);
            area[usize::from(l)] += 1;
        }
    }
    let n = labels.labels.len() as f64;
    Ok((1..=15u32)
        .filter(|&k| area[k as usize] > 0)
        .map(|k| {
            let area_share = area[k as usize] as f64 / n;
            let mass_share = if total > 0.0 { mass[k as usize] / total } else { area_share };
            (k, PartMass { mass_share, area_share, ratio: mass_share / area_share })
        })
        .collect())
}

/// Part importance agreement: Spearman's ρ between the parts' mass ratios `r(R_k)` (mass per
/// pixel, up to a constant) and their target-score drops per pixel `Δ_k / |R_k|`, for
/// `drops` = `(part id, Δ_k = s(x) − s(x without part k))`, one per removed part (every
/// `remove_part` intervention). Parts whose region is empty are left out; `None` when fewer than
/// 3 remain (too few to rank). A map with mass `∝ Δ_k` on each part scores 1; a uniform or
/// all-zero map scores 0, and so does a map whose ratios are all tied, or drops per pixel that are
/// all equal ([`spearman`]).
///
/// # Errors
/// As [`region_mass`]; a non-finite drop; a part listed twice.
pub fn part_importance_agreement(
    id: u32,
    map: &Heatmap,
    labels: &PartLabels,
    drops: &[(u32, f64)],
) -> Result<Option<f64>, EvalError> {
    let total = check(id, map, labels)?;
    let (mut ratios, mut deltas) = (Vec::new(), Vec::new());
    for (k, &(part, drop)) in drops.iter().enumerate() {
        if !drop.is_finite() {
            return Err(EvalError::ModelOutput {
                id,
                what: format!("a non-finite target-score drop ({drop}) for part {part}"),
            });
        }
        if drops[..k].iter().any(|&(p, _)| p == part) {
            return Err(EvalError::Config(format!(
                "image {id}: part {part} is listed twice among the score drops; pass one drop per \
                 removed part"
            )));
        }
        if let Some(m) = mass_where(map, labels, total, |l| u32::from(l) == part) {
            ratios.push(m.ratio);
            deltas.push(drop / m.area_share);
        }
    }
    if ratios.len() < 3 {
        return Ok(None);
    }
    spearman(&ratios, &deltas).map(Some)
}

/// The peak tolerance for [`discriminative_part`], tied to the bird's scale:
/// [`PEAK_TOLERANCE_FRACTION`] `· √(bird area in pixels)` (bird = every labelled pixel). A
/// SynthCUB bird of scale `s` covers about 2.6 `s²` (body ellipse `π · 1 · 0.62 s²`, head, wing and
/// tail), so the tolerance is about 0.16 `s`: the radius of the eye, half the beak's length.
pub fn peak_tolerance(labels: &PartLabels) -> f32 {
    let bird = labels.labels.iter().filter(|&&l| l != 0).count();
    PEAK_TOLERANCE_FRACTION * (bird as f32).sqrt()
}

/// Discriminative-part mass and peak hit of one map.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DiscriminativePart {
    /// The part scored (as visible: 13 for the wing of a bird facing left).
    pub part: u32,
    /// Its part-mass ratio (1 = uniform).
    pub mass: PartMass,
    /// Whether `argmax H` lies within the tolerance of the region, tied maxima counting
    /// fractionally ([`crate::pointing`]'s rule: an all-zero map's every pixel is a peak).
    pub peak_hit: f64,
    /// What a uniform map scores on `peak_hit`: the share of pixels within the tolerance of the
    /// region (the area share at tolerance 0).
    pub peak_chance: f64,
    /// The tolerance used, pixels.
    pub tolerance: f32,
}

/// Discriminative-part mass and peak-in-part hit (module docs) for part `part` (the image's
/// discriminative part as visible; `ImageInterventions::discriminative_part`), with peak
/// tolerance `tolerance` pixels (pass [`peak_tolerance`]). `None` when the region is empty.
///
/// # Errors
/// As [`region_mass`]; a negative or non-finite tolerance.
pub fn discriminative_part(
    id: u32,
    map: &Heatmap,
    labels: &PartLabels,
    part: u32,
    tolerance: f32,
) -> Result<Option<DiscriminativePart>, EvalError> {
    if !(tolerance >= 0.0 && tolerance.is_finite()) {
        return Err(EvalError::Config(format!("peak tolerance {tolerance} must be ≥ 0")));
    }
    let total = check(id, map, labels)?;
    let Some(mass) = mass_where(map, labels, total, |l| u32::from(l) == part) else {
        return Ok(None);
    };
    let (w, h) = (labels.width, labels.height);
    let region = labels.mask(part);
    let max = map.values.iter().fold(0.0f32, |m, &v| m.max(v));
    let peak_hit =
        pointing::pointing_mask(&pointing::peaks(&map.values, max), &region, w, h, tolerance);
    let all: Vec<usize> = (0..region.len()).collect();
    let peak_chance = pointing::pointing_mask(&all, &region, w, h, tolerance);
    Ok(Some(DiscriminativePart { part, mass, peak_hit, peak_chance, tolerance }))
}

/// Counterfactual contrast on the discriminative part.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Contrast {
    /// The part-mass ratio of the map for the image's own target.
    pub own: PartMass,
    /// The part-mass ratio of the map for the pair class's proxy.
    pub pair: PartMass,
    /// `pair.ratio − own.ratio`: the shift of the map's mass ratio on the part that separates the
    /// pair when the target turns from the own class to the pair's (module docs for the sign);
    /// 0 for identical or uniform maps.
    pub contrast: f64,
}

/// Counterfactual contrast (module docs): `own_map` explains the image's own target, `pair_map`
/// the pair class's proxy (or a contrastive target), both on the same image; `part` is the discriminative part as visible.
/// `None` when the region is empty.
///
/// # Errors
/// As [`region_mass`], for either map.
pub fn counterfactual_contrast(
    id: u32,
    own_map: &Heatmap,
    pair_map: &Heatmap,
    labels: &PartLabels,
    part: u32,
) -> Result<Option<Contrast>, EvalError> {
    let own = region_mass(id, own_map, labels, part)?;
    let pair = region_mass(id, pair_map, labels, part)?;
    Ok(own.zip(pair).map(|(own, pair)| Contrast { own, pair, contrast: pair.ratio - own.ratio }))
}

/// The target score `s = e·p` on three renders of one scene.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackgroundScores {
    /// On the dataset's image.
    pub original: f64,
    /// With the background swapped (`background` intervention).
    pub background_swapped: f64,
    /// With the bird removed (`no_bird` intervention).
    pub bird_removed: f64,
}

/// Background independence of the model and of the map.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackgroundIndependence {
    /// `I = 1 − |Δ_bg| / (|Δ_bg| + |Δ_bird|)`: 1 when swapping the background leaves the target
    /// unchanged, ½ when it moves it as much as removing the bird, 0 when only the background
    /// counts. When neither change moves the target, 1 (the background did not matter).
    pub model: f64,
    /// The map's mass share on the bird (every labelled pixel); for an all-zero map, the bird's
    /// area share (scored as uniform).
    pub map: f64,
    /// The bird's area share: what a uniform map scores on `map`.
    pub map_chance: f64,
    /// `map − model`: 0 when the map's background mass matches how much the target depends on
    /// the background; > 0 when the map hides a dependence on the background, < 0 when it shows
    /// background mass the model does not use.
    pub gap: f64,
}

/// Background independence (module docs) of one image's map and target scores. `None` when the
/// label map has no bird pixel.
///
/// # Errors
/// As [`region_mass`]; a non-finite score.
pub fn background_independence(
    id: u32,
    map: &Heatmap,
    labels: &PartLabels,
    scores: BackgroundScores,
) -> Result<Option<BackgroundIndependence>, EvalError> {
    let total = check(id, map, labels)?;
    let BackgroundScores { original, background_swapped, bird_removed } = scores;
    if let Some(bad) = [original, background_swapped, bird_removed].iter().find(|s| !s.is_finite())
    {
        return Err(EvalError::ModelOutput {
            id,
            what: format!("a non-finite target score ({bad})"),
        });
    }
    let Some(bird) = mass_where(map, labels, total, |l| l != 0) else { return Ok(None) };
    let (bg, gone) = ((original - background_swapped).abs(), (original - bird_removed).abs());
    let model = if bg + gone > 0.0 { 1.0 - bg / (bg + gone) } else { 1.0 };
    Ok(Some(BackgroundIndependence {
        model,
        map: bird.mass_share,
        map_chance: bird.area_share,
        gap: bird.mass_share - model,
    }))
}

/// What the caller measured on one image's interventions for one map source and target: the
/// input of [`score_parts`]. Leave out (empty, `None`) what was not measured.
#[derive(Debug, Clone, Copy)]
pub struct PartInput<'a> {
    /// The dataset's image id (named in errors).
    pub id: u32,
    /// The map of the image's own target (proxy), in original pixels.
    pub map: &'a Heatmap,
    /// The image's part label map (`ImageInterventions::part_labels`).
    pub labels: &'a PartLabels,
    /// The discriminative part as visible (`ImageInterventions::discriminative_part`).
    pub discriminative_part: u32,
    /// `(part id, s(x) − s(x without the part))` per `remove_part` intervention.
    pub drops: &'a [(u32, f64)],
    /// The map of the pair class's proxy on the same image, for the counterfactual contrast.
    pub pair_map: Option<&'a Heatmap>,
    /// Target scores on the original, background-swapped and bird-removed renders.
    pub background: Option<BackgroundScores>,
}

/// Every part-level score of one image; `None` where the input was not given or the metric does
/// not apply (fewer than 3 non-empty removed parts, a hidden discriminative part).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PartScores {
    /// Image id.
    pub id: u32,
    /// [`part_importance_agreement`].
    pub importance: Option<f64>,
    /// [`discriminative_part`] at [`peak_tolerance`].
    pub discriminative: Option<DiscriminativePart>,
    /// [`counterfactual_contrast`].
    pub contrast: Option<Contrast>,
    /// [`background_independence`].
    pub background: Option<BackgroundIndependence>,
}

/// All part-level scores of one image (module docs).
///
/// # Errors
/// As the metrics it runs.
pub fn score_parts(input: &PartInput<'_>) -> Result<PartScores, EvalError> {
    let PartInput { id, map, labels, discriminative_part: part, drops, pair_map, background } =
        *input;
    let importance = part_importance_agreement(id, map, labels, drops)?;
    let discriminative = discriminative_part(id, map, labels, part, peak_tolerance(labels))?;
    let contrast = match pair_map {
        Some(pair) => counterfactual_contrast(id, map, pair, labels, part)?,
        None => None,
    };
    let background = match background {
        Some(scores) => background_independence(id, map, labels, scores)?,
        None => None,
    };
    Ok(PartScores { id, importance, discriminative, contrast, background })
}

/// Part-level scores of one map source over a split: mean and 95% CI over the images each
/// applies to, each beside what a uniform map scores.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PartReport {
    /// Images scored.
    pub images: usize,
    /// Part importance agreement ρ (uniform: 0).
    pub importance: Option<Summary>,
    /// Discriminative-part mass ratio (uniform: 1).
    pub part_mass: Option<Summary>,
    /// Peak-in-part hit rate.
    pub peak_hit: Option<Summary>,
    /// What a uniform map's peak hit rate is, image by image.
    pub peak_chance: Option<Summary>,
    /// Counterfactual contrast (uniform: 0).
    pub contrast: Option<Summary>,
    /// The model's background independence `I`.
    pub background_model: Option<Summary>,
    /// The map's mass share on the bird.
    pub background_map: Option<Summary>,
    /// The bird's area share (a uniform map's `background_map`).
    pub background_chance: Option<Summary>,
    /// `background_map − background_model`.
    pub background_gap: Option<Summary>,
}

/// Aggregate [`score_parts`]'s results of one map source.
///
/// # Errors
/// No images.
pub fn summarize_parts(scores: &[PartScores]) -> Result<PartReport, EvalError> {
    if scores.is_empty() {
        return Err(EvalError::NoImages);
    }
    let of = |f: &dyn Fn(&PartScores) -> Option<f64>| {
        Summary::of(&scores.iter().filter_map(f).collect::<Vec<_>>())
    };
    Ok(PartReport {
        images: scores.len(),
        importance: of(&|s| s.importance),
        part_mass: of(&|s| s.discriminative.map(|d| d.mass.ratio)),
        peak_hit: of(&|s| s.discriminative.map(|d| d.peak_hit)),
        peak_chance: of(&|s| s.discriminative.map(|d| d.peak_chance)),
        contrast: of(&|s| s.contrast.map(|c| c.contrast)),
        background_model: of(&|s| s.background.map(|b| b.model)),
        background_map: of(&|s| s.background.map(|b| b.map)),
        background_chance: of(&|s| s.background.map(|b| b.map_chance)),
        background_gap: of(&|s| s.background.map(|b| b.gap)),
    })
}

/// The part-level schema (as [`crate::Metric`] for the per-image metrics): each reported value
/// of a [`PartScores`], its column name, label, and the metric holding what a uniform map scores
/// beside it. Tables and data files iterate over [`PartMetric::ALL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PartMetric {
    /// Part importance agreement ρ (uniform: 0).
    Importance,
    /// Discriminative-part mass ratio (uniform: 1).
    PartMass,
    /// Peak in the discriminative part, within [`peak_tolerance`].
    PeakHit,
    /// A uniform map's peak hit.
    PeakChance,
    /// Counterfactual contrast `r_pair − r_own` (uniform: 0).
    Contrast,
    /// The model's background independence `I`.
    BackgroundModel,
    /// The map's mass share on the bird.
    BirdMass,
    /// The bird's area share (a uniform map's bird mass).
    BirdArea,
}

impl PartMetric {
    /// Every part-level value, in column order.
    pub const ALL: [PartMetric; 8] = [
        PartMetric::Importance,
        PartMetric::PartMass,
        PartMetric::PeakHit,
        PartMetric::PeakChance,
        PartMetric::Contrast,
        PartMetric::BackgroundModel,
        PartMetric::BirdMass,
        PartMetric::BirdArea,
    ];

    /// The column name in data files.
    pub fn name(self) -> &'static str {
        match self {
            PartMetric::Importance => "part_importance",
            PartMetric::PartMass => "part_mass",
            PartMetric::PeakHit => "part_peak_hit",
            PartMetric::PeakChance => "part_peak_chance",
            PartMetric::Contrast => "counterfactual_contrast",
            PartMetric::BackgroundModel => "background_independence",
            PartMetric::BirdMass => "bird_mass",
            PartMetric::BirdArea => "bird_area",
        }
    }

    /// The label in tables, with the uniform map's value where it is a constant.
    pub fn label(self) -> &'static str {
        match self {
            PartMetric::Importance => "part importance ρ (uniform 0)",
            PartMetric::PartMass => "part mass ratio (uniform 1)",
            PartMetric::PeakHit => "peak in part",
            PartMetric::PeakChance => "uniform (peak in part)",
            PartMetric::Contrast => "counterfactual contrast (uniform 0)",
            PartMetric::BackgroundModel => "background independence (model)",
            PartMetric::BirdMass => "mass on bird",
            PartMetric::BirdArea => "uniform (bird area)",
        }
    }

    /// An image's value; `None` where the metric does not apply.
    pub fn of(self, s: &PartScores) -> Option<f64> {
        match self {
            PartMetric::Importance => s.importance,
            PartMetric::PartMass => s.discriminative.map(|d| d.mass.ratio),
            PartMetric::PeakHit => s.discriminative.map(|d| d.peak_hit),
            PartMetric::PeakChance => s.discriminative.map(|d| d.peak_chance),
            PartMetric::Contrast => s.contrast.map(|c| c.contrast),
            PartMetric::BackgroundModel => s.background.map(|b| b.model),
            PartMetric::BirdMass => s.background.map(|b| b.map),
            PartMetric::BirdArea => s.background.map(|b| b.map_chance),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// 4 × 2 image: beak (2) on pixels 0 and 1, tail (14) on pixel 4, the rest background.
    fn labels() -> PartLabels {
        PartLabels { width: 4, height: 2, labels: vec![2, 2, 0, 0, 14, 0, 0, 0] }
    }
    fn map(values: &[f32]) -> Heatmap {
        Heatmap { width: 4, height: 2, values: values.to_vec() }
    }

    #[test]
    fn part_masses_are_each_regions_share_and_a_uniform_maps_area_share() {
        // Mass 3 on the beak (pixels 0, 1: 1 + 2) and 1 on the tail (pixel 4) of a total 6:
        // beak 3/6 = 0.5 over area 2/8, tail 1/6 over area 1/8; the background is no part.
        let m = part_masses(1, &map(&[1., 2., 0., 0., 1., 2., 0., 0.]), &labels()).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!((m[0].0, m[0].1.mass_share, m[0].1.area_share), (2, 0.5, 0.25));
        assert_eq!((m[1].0, m[1].1.mass_share, m[1].1.area_share), (14, 1.0 / 6.0, 0.125));
        for values in [[0.5f32; 8], [0.0; 8]] {
            for (_, pm) in part_masses(1, &map(&values), &labels()).unwrap() {
                assert_eq!(pm.mass_share, pm.area_share);
            }
        }
        // Agrees with the one-region function.
        let one = region_mass(1, &map(&[1., 2., 0., 0., 1., 2., 0., 0.]), &labels(), 14).unwrap();
        assert_eq!(one, Some(m[1].1));
    }

    #[test]
    fn a_map_on_the_part_scores_the_maximum_and_a_uniform_map_its_area_share() {
        // On the beak: mass share 1, area share 2/8 → ratio 4 = 1/area share (the maximum);
        // both peaks (pixels 0, 1) in the region → hit 1; chance at tolerance 0 = 2/8.
        let on = discriminative_part(1, &map(&[1., 1., 0., 0., 0., 0., 0., 0.]), &labels(), 2, 0.0)
            .unwrap()
            .unwrap();
        assert_eq!((on.mass.mass_share, on.mass.area_share, on.mass.ratio), (1.0, 0.25, 4.0));
        assert_eq!((on.peak_hit, on.peak_chance), (1.0, 0.25));
        // Uniform (and all-zero, scored as uniform): mass share = area share, ratio 1; every
        // pixel a peak → hit = chance = 2/8.
        for level in [0.0, 3.0] {
            let u = discriminative_part(1, &map(&[level; 8]), &labels(), 2, 0.0).unwrap().unwrap();
            assert_eq!((u.mass.mass_share, u.mass.ratio), (0.25, 1.0), "H ≡ {level}");
            assert_eq!((u.peak_hit, u.peak_chance), (0.25, 0.25), "H ≡ {level}");
        }
        // Tolerance 1 px: pixels within 1 of {0, 1} are 0, 1, 2 (right), 4, 5 (below) → 5/8.
        let u = discriminative_part(1, &map(&[1.0; 8]), &labels(), 2, 1.0).unwrap().unwrap();
        assert_eq!(u.peak_chance, 5.0 / 8.0);
        // The peak on pixel 6 (background, 2 px from the beak) misses at 1 px, hits at 2.
        let off = map(&[0., 0., 0., 0., 0., 0., 1., 0.]);
        assert_eq!(discriminative_part(1, &off, &labels(), 2, 1.0).unwrap().unwrap().peak_hit, 0.0);
        assert_eq!(discriminative_part(1, &off, &labels(), 2, 2.0).unwrap().unwrap().peak_hit, 1.0);
        // An empty region (the far wing) is not scored.
        assert_eq!(discriminative_part(1, &on_map(), &labels(), 9, 0.0).unwrap(), None);
    }

    fn on_map() -> Heatmap {
        map(&[1., 1., 0., 0., 0., 0., 0., 0.])
    }

    #[test]
    fn part_importance_agreement_hand_worked() {
        // 8 × 1: back 1 on pixels 0–1, beak 2 on 2, belly 3 on 3–5, crown 5 on 6, pixel 7 off.
        let labels = PartLabels { width: 8, height: 1, labels: vec![1, 1, 2, 3, 3, 3, 5, 0] };
        let m = |v: [f32; 8]| Heatmap { width: 8, height: 1, values: v.to_vec() };
        // Drops (back 2 px, beak 1, belly 3, crown 1): larger parts matter more. Per pixel:
        // [0.25, 0.1, 0.3, 0.05].
        let drops = [(1, 0.5), (2, 0.1), (3, 0.9), (5, 0.05)];
        // Uniform map: every ratio 1 → all tied → ρ = 0 (the ties rule). Its raw masses would be
        // the areas [2, 1, 3, 1], whose ρ with the raw drops is (ranks [3, 1.5, 4, 1.5] vs
        // [3, 2, 4, 1]) 4.5/√(4.5·5) = 0.95: the reason the metric works per pixel.
        let u = part_importance_agreement(1, &m([1.0; 8]), &labels, &drops).unwrap();
        assert_eq!(u, Some(0.0));
        let raw = spearman(&[2.0, 1.0, 3.0, 1.0], &[0.5, 0.1, 0.9, 0.05]).unwrap();
        assert!((raw - 4.5 / 22.5f64.sqrt()).abs() < 1e-15);
        assert_eq!(part_importance_agreement(1, &m([0.0; 8]), &labels, &drops).unwrap(), Some(0.0));
        // A complete attribution: each part's mass is its drop (0.5 over 2 px, 0.1, 0.9 over
        // 3 px, 0.05) → per pixel the same order as the drops per pixel → ρ = 1.
        let agree = m([0.25, 0.25, 0.1, 0.3, 0.3, 0.3, 0.05, 0.]);
        assert_eq!(part_importance_agreement(1, &agree, &labels, &drops).unwrap(), Some(1.0));
        // Per-pixel values [back 2, beak 3, belly 1, crown 4], ranks [2, 3, 1, 4], against the
        // drops' ranks [3, 2, 4, 1]: each pair sums to 5, the exact reverse → −1.
        let reverse = m([2., 2., 3., 1., 1., 1., 4., 0.]);
        assert_eq!(part_importance_agreement(1, &reverse, &labels, &drops).unwrap(), Some(-1.0));
        // Parts with empty regions drop out; fewer than 3 left → None.
        let few = [(1, 0.5), (2, 0.1), (9, 0.3)];
        assert_eq!(part_importance_agreement(1, &agree, &labels, &few).unwrap(), None);
        assert!(part_importance_agreement(1, &agree, &labels, &[(1, f64::NAN)]).is_err());
        assert!(part_importance_agreement(1, &agree, &labels, &[(1, 0.1), (1, 0.2)]).is_err());
    }

    #[test]
    fn counterfactual_contrast_hand_worked() {
        // Own map uniform (ratio 1 on the beak), pair map on the beak (ratio 4): contrast 3.
        let c = counterfactual_contrast(1, &map(&[1.0; 8]), &on_map(), &labels(), 2).unwrap();
        assert_eq!(c.unwrap().contrast, 3.0);
        // Identical maps → 0.
        let c = counterfactual_contrast(1, &on_map(), &on_map(), &labels(), 2).unwrap();
        assert_eq!(c.unwrap().contrast, 0.0);
    }

    #[test]
    fn background_independence_of_a_network_that_ignores_the_background() {
        // A hand-built network: s(x) = Σ over bird pixels of x (pixels 0, 1, 4), nothing else.
        let bird = labels().bird();
        let s = |x: &[f64; 8]| -> f64 {
            x.iter().zip(&bird).filter(|(_, b)| **b).map(|(v, _)| v).sum()
        };
        let original = [0.9, 0.8, 0.1, 0.2, 0.7, 0.3, 0.4, 0.5];
        let mut swapped = original;
        for (k, v) in swapped.iter_mut().enumerate() {
            if !bird[k] {
                *v = 1.0 - *v; // another background
            }
        }
        let mut removed = original;
        for k in [0, 1, 4] {
            removed[k] = original[6]; // background where the bird was
        }
        let scores = BackgroundScores {
            original: s(&original),
            background_swapped: s(&swapped),
            bird_removed: s(&removed),
        };
        // Δ_bg = 0 exactly, Δ_bird = 2.4 − 1.2 ≠ 0 → I = 1 − 0/1.2 = 1.
        let on_bird = map(&[1., 1., 0., 0., 1., 0., 0., 0.]);
        let b = background_independence(1, &on_bird, &labels(), scores).unwrap().unwrap();
        assert_eq!((b.model, b.map, b.gap), (1.0, 1.0, 0.0));
        // A uniform map puts the bird's area share (3/8) on it: gap −5/8.
        let u = background_independence(1, &map(&[1.0; 8]), &labels(), scores).unwrap().unwrap();
        assert_eq!((u.map, u.map_chance, u.gap), (0.375, 0.375, -0.625));
        // Background as important as the bird: |Δ_bg| = |Δ_bird| = 1 → I = 1/2.
        let half = BackgroundScores { original: 2.0, background_swapped: 1.0, bird_removed: 3.0 };
        let h = background_independence(1, &on_bird, &labels(), half).unwrap().unwrap();
        assert_eq!(h.model, 0.5);
        // Neither change moves the target: 1 by rule.
        let flat = BackgroundScores { original: 1.0, background_swapped: 1.0, bird_removed: 1.0 };
        let f = background_independence(1, &on_bird, &labels(), flat).unwrap().unwrap();
        assert_eq!(f.model, 1.0);
        let nan = BackgroundScores { original: f64::NAN, ..flat };
        assert!(background_independence(1, &on_bird, &labels(), nan).is_err());
    }

    #[test]
    fn the_uniform_random_baseline_scores_its_area_share_and_no_correlation() {
        // 40 × 30 image, five parts as blocks of 6 × 5 to 10 × 5 pixels; 400 random maps
        // (crate::baselines::uniform_random). Expected: ratio 1 (sd of one image's ratio on a
        // 60-pixel part ≈ 0.58/√60 = 0.075, of the mean over 400 ≈ 0.004), ρ ≈ 0 (sd of one
        // image's ρ on 5 parts = 1/√4 = 0.5, of the mean ≈ 0.025), peak hit ≈ chance.
        let (w, h) = (40u32, 30u32);
        let part_of = |i: u32, j: u32| -> u8 {
            match (i / 8, j / 6) {
                (1, 1) => 2,
                (2, 1) => 5,
                (1, 2) | (2, 2) => 3,
                (3, 2) => 14,
                (2, 3) => 9,
                _ => 0,
            }
        };
        let labels = PartLabels {
            width: w,
            height: h,
            labels: (0..h)
                .flat_map(|j| (0..w).map(move |i| (i, j)))
                .map(|(i, j)| part_of(i, j))
                .collect(),
        };
        let drops = [(2, 0.4), (5, 0.1), (3, 0.3), (14, 0.9), (9, 0.2)];
        let (mut ratio, mut rho, mut hit, mut chance) = (0.0, 0.0, 0.0, 0.0);
        let n = 400;
        for id in 0..n {
            let m = crate::baselines::uniform_random(w, h, 7, id);
            let d = discriminative_part(id, &m, &labels, 2, 0.0).unwrap().unwrap();
            ratio += d.mass.ratio / f64::from(n);
            hit += d.peak_hit / f64::from(n);
            chance += d.peak_chance / f64::from(n);
            rho +=
                part_importance_agreement(id, &m, &labels, &drops).unwrap().unwrap() / f64::from(n);
        }
        assert!((ratio - 1.0).abs() < 0.02, "mean ratio {ratio}");
        assert!(rho.abs() < 0.1, "mean ρ {rho}");
        // Chance = 48/1200 = 0.04; over 400 maps the hit rate's sd is ≈ 0.01.
        assert!((chance - 0.04).abs() < 1e-12);
        assert!((hit - chance).abs() < 0.04, "hit {hit} vs chance {chance}");
    }

    #[test]
    fn score_parts_runs_what_was_measured_and_summarises() {
        let labels = labels();
        let uniform = map(&[1.0; 8]);
        let input = PartInput {
            id: 3,
            map: &uniform,
            labels: &labels,
            discriminative_part: 2,
            drops: &[],
            pair_map: Some(&uniform),
            background: None,
        };
        let s = score_parts(&input).unwrap();
        assert_eq!((s.importance, s.background), (None, None));
        assert_eq!(s.contrast.unwrap().contrast, 0.0);
        let d = s.discriminative.unwrap();
        // Bird = 3 px → tolerance 0.1·√3 < 1 px: peak chance = the area share 2/8.
        assert_eq!((d.mass.ratio, d.peak_chance), (1.0, 0.25));
        let on = on_map();
        let s2 = score_parts(&PartInput { map: &on, ..input }).unwrap();
        let r = summarize_parts(&[s, s2]).unwrap();
        // Ratios 1 and 4 → mean 2.5; contrasts: uniform pair map vs own 1 → 0, vs own 4 → −3.
        assert_eq!(r.part_mass.unwrap().mean, 2.5);
        assert_eq!(r.contrast.unwrap().mean, -1.5);
        assert_eq!((r.images, r.importance, r.background_model), (2, None, None));
        assert!(summarize_parts(&[]).is_err());
    }

    #[test]
    fn wrong_sizes_and_values_name_the_image() {
        let small = Heatmap { width: 2, height: 2, values: vec![0.0; 4] };
        let e = region_mass(7, &small, &labels(), 2).unwrap_err().to_string();
        assert!(e.contains("image 7") && e.contains("heatmap"), "{e}");
        let e = region_mass(7, &map(&[-1.0; 8]), &labels(), 2).unwrap_err().to_string();
        assert!(e.contains("image 7"), "{e}");
        assert!(discriminative_part(7, &on_map(), &labels(), 2, -1.0).is_err());
        assert!((peak_tolerance(&labels()) - 0.1 * 3f32.sqrt()).abs() < 1e-7);
    }
}
