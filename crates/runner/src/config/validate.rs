//! Checks serde cannot express: ranges, repeats, combinations. Each error names its key and says
//! what to give instead; the caller adds the file.

use std::collections::HashSet;
use std::fmt::Display;

use anyhow::{Context, Result, bail, ensure};

use super::file::{DatasetKind, ExperimentFile};
use super::vocab::{Head, MethodName, ProxyName};

/// The first item seen a second time.
pub(super) fn first_repeat<T: Eq + std::hash::Hash>(
    items: impl IntoIterator<Item = T>,
) -> Option<T> {
    let mut seen = HashSet::new();
    for x in items {
        if seen.contains(&x) {
            return Some(x);
        }
        seen.insert(x);
    }
    None
}

/// A list whose entries each run once: a repeat would run, and count, its images twice.
fn distinct<T: Eq + std::hash::Hash + Display>(key: &str, items: &[T]) -> Result<()> {
    if let Some(x) = first_repeat(items) {
        bail!("{key} lists `{x}` twice; its images would be counted twice. List it once");
    }
    Ok(())
}

/// A number inside its documented range.
fn within(key: &str, value: usize, range: std::ops::RangeInclusive<usize>) -> Result<()> {
    ensure!(
        range.contains(&value),
        "{key} = {value} is out of range: it must be {}–{}",
        range.start(),
        range.end()
    );
    Ok(())
}

/// An optional count that, when given, must be at least 1 (absent means "all").
fn positive_or_absent(key: &str, value: Option<usize>) -> Result<()> {
    ensure!(
        value != Some(0),
        "{key} = 0 would keep nothing: give 1 or more, or leave the key out to keep all"
    );
    Ok(())
}

/// The smallest input side a backbone takes: its downsampling factor (the small CNN halves the
/// side four times, a ResNet five), so that its last feature map is at least 1×1.
pub fn min_input_side(backbone: embcam_model::BackboneKind) -> usize {
    use embcam_model::BackboneKind::*;
    match backbone {
        SmallCnn => 16,
        Resnet18 | Resnet34 | Resnet50 => 32,
    }
}

/// Checks that serde cannot express: ranges, repeats, combinations.
pub(super) fn validate(f: &ExperimentFile) -> Result<()> {
    let d = &f.dataset;
    within("dataset.image_size", d.image_size as usize, 16..=1024)?;
    positive_or_absent("dataset.max_classes", d.max_classes)?;
    positive_or_absent("dataset.max_per_class", d.max_per_class)?;
    ensure!(
        d.synth.is_none() || d.kind == DatasetKind::Synth,
        "[dataset.synth] only applies to kind = \"synth\""
    );
    if let Some(s) = &d.synth {
        s.config().validate().context("[dataset.synth]")?;
    }
    let m = &f.model;
    ensure!(
        m.widths.iter().all(|w| (1..=4096).contains(w)),
        "model.widths must be four channel counts of 1–4096"
    );
    let min_side = min_input_side(m.backbone);
    ensure!(
        d.image_size as usize >= min_side,
        "dataset.image_size = {} is too small for model.backbone = \"{}\", which downsamples by \
         {min_side}: it must be at least {min_side}",
        d.image_size,
        m.backbone
    );
    // model.device is checked when the run starts (it depends on how the binary was built).
    within("model.embedding_dim", m.embedding_dim, 1..=4096)?;
    let t = &f.train;
    within("train.epochs", t.epochs, 1..=10_000)?;
    let [lo, hi] = t.crop_scale;
    ensure!(
        lo > 0.0 && lo <= hi && hi <= 1.0,
        "train.crop_scale must be [min, max] with 0 < min ≤ max ≤ 1 (a share of the image's area)"
    );
    within("train.p", t.p, 2..=1024)?;
    within("train.k", t.k, 2..=1024)?;
    ensure!(
        t.p * t.k <= 4096,
        "train.p × train.k = {} × {} = {} images per batch is more than the 4096 allowed",
        t.p,
        t.k,
        t.p * t.k
    );
    ensure!(t.lr.is_finite() && t.lr > 0.0, "train.lr must be a positive number");
    ensure!(t.margin.is_finite() && t.margin >= 0.0, "train.margin must be a number ≥ 0");
    ensure!(
        t.weight_decay.is_finite() && t.weight_decay >= 0.0,
        "train.weight_decay must be a number ≥ 0"
    );
    ensure!((0.0..1.0).contains(&t.momentum), "train.momentum must be in [0, 1)");
    let c = &f.cam;
    ensure!(
        !c.methods.is_empty() && !c.proxies.is_empty(),
        "cam.methods and cam.proxies must not be empty"
    );
    distinct("cam.methods", &c.methods)?;
    distinct("cam.proxies", &c.proxies)?;
    distinct("cam.stages", &c.stages)?;
    ensure!(
        m.head == Head::Classifier || !c.proxies.contains(&ProxyName::ClassScore),
        "cam.proxies: `class-score` is the score of a classifier's class (classic Grad-CAM) and \
         needs model.head = \"classifier\"; an embedding network has no class scores"
    );
    within("cam.batch_size", c.batch_size, 1..=1024)?;
    within("cam.knn", c.knn, 1..=1024)?;
    positive_or_absent("cam.proxy_images_per_class", c.proxy_images_per_class)?;
    if let Some(chen) = &c.chen {
        ensure!(
            c.methods.contains(&MethodName::Chen),
            "[cam.chen] sets Chen et al.'s options, but cam.methods does not list `chen`; add it \
             or remove [cam.chen]"
        );
        within("cam.chen.triplets", chen.triplets, 1..=1024)?;
        within("cam.chen.centres", chen.centres, 1..=4096)?;
    }
    let e = &f.eval;
    distinct("eval.baselines", &e.baselines)?;
    positive_or_absent("eval.max_images", e.max_images)?;
    within("eval.faithfulness_steps", e.faithfulness_steps, 1..=1000)?;
    ensure!((0.0..=1.0).contains(&e.tau), "eval.tau must be in [0, 1]");
    ensure!((0.0..=1.0).contains(&e.iou), "eval.iou must be in [0, 1]");
    ensure!(
        e.pointing_tolerance.is_finite() && e.pointing_tolerance >= 0.0,
        "eval.pointing_tolerance must be a number of pixels ≥ 0"
    );
    let b = &f.benchmark;
    ensure!(
        !b.ground_truth || d.kind == DatasetKind::Synth,
        "benchmark.ground_truth needs dataset.kind = \"synth\": only the SynthCUB generator can \
         render the interventions it scores (each part removed, the background swapped); set it \
         to false for real CUB"
    );
    within("benchmark.ground_truth_images", b.ground_truth_images, 1..=100_000)?;
    within("benchmark.sanity_images", b.sanity_images, 1..=10_000)?;
    Ok(())
}
