//! The data stage: make sure the dataset exists (generating SynthCUB when needed), open it, split
//! it; and what the later stages read from it (the evaluation images and their ground truth).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail, ensure};
use burn::tensor::Device;
use embcam_cub::synth::generate;
use embcam_cub::{Dataset, Split};
use embcam_eval::ImageTruth;

use crate::config::vocab::ProxyName;
use crate::config::{DatasetKind, Experiment};
use crate::progress::bar;

/// What the rest of the run needs from the data stage.
pub struct Data {
    /// The dataset.
    pub dataset: Arc<Dataset>,
    /// The split.
    pub split: Split,
    /// A key for everything about the data that feeds later stages.
    pub key: String,
    /// Discriminative part per class (SynthCUB only).
    pub parts: BTreeMap<u32, u32>,
    /// What [`check_inputs`] warned about (boxes past their image's edge).
    pub warnings: Vec<String>,
}

/// Make sure the dataset exists (generating SynthCUB when needed), open it, split it, and check
/// every file the run will read ([`check_inputs`]) before any stage starts.
pub fn data(exp: &Experiment) -> Result<Data> {
    let d = &exp.file.dataset;
    let (root, seg, stamp) = match d.kind {
        DatasetKind::Synth => {
            let s = d.synth.clone().unwrap_or_default();
            let cfg = s.config();
            // Generated under a lock beside the folder: a second run waits, then reads it.
            let _lock = if cfg.made_at(&d.path) {
                None
            } else {
                Some(crate::lock::acquire(&crate::lock::beside(&d.path), "SynthCUB generation")?)
            };
            if !cfg.made_at(&d.path) {
                let listed = || {
                    std::fs::read_dir(&d.path)
                        .with_context(|| format!("listing {}", d.path.display()))
                };
                if d.path.exists() && listed()?.next().is_some() {
                    bail!(
                        "{} holds something other than the SynthCUB this experiment asks for \
                         ({}); remove it, or point dataset.path elsewhere",
                        d.path.display(),
                        cfg.stamp().lines().nth(1).unwrap_or_default()
                    );
                }
                let pb = bar("synth");
                generate(&d.path, &cfg, &pb)
                    .with_context(|| format!("generating SynthCUB in {}", d.path.display()))?;
                pb.finish_and_clear();
            }
            (d.path.join("CUB_200_2011"), Some(d.path.join("segmentations")), cfg.stamp())
        }
        DatasetKind::Cub => {
            ensure!(
                d.path.join("images.txt").is_file(),
                "{} holds no CUB-200-2011 (no images.txt there). Download CUB_200_2011.tgz and \
                 segmentations.tgz and extract them into datasets/ as datasets/README.md says, \
                 then run `embcam validate {}`",
                d.path.display(),
                d.path.display()
            );
            let seg = d.segmentations.clone().or_else(|| {
                let beside = d.path.parent()?.join("segmentations");
                beside.is_dir().then_some(beside)
            });
            // Filled in once the dataset is open ([`fingerprint`]).
            (d.path.clone(), seg, String::new())
        }
    };
    let dataset = Dataset::open(&root, seg.as_deref()).with_context(|| {
        format!(
            "reading the dataset at {} (`embcam validate {}` lists every problem)",
            root.display(),
            root.display()
        )
    })?;
    let (kind, subset) = crate::config::split(exp);
    let split = dataset.split(kind, &subset)?;
    let parts = embcam_cub::synth::read_discriminative_parts(&root)?
        .map(|v| v.into_iter().collect())
        .unwrap_or_default();
    let stamp = match d.kind {
        DatasetKind::Synth => stamp,
        DatasetKind::Cub => fingerprint(&dataset)?,
    };
    let key = crate::store::key_of(&(stamp, &d.split, d.max_classes, d.max_per_class))?;
    let mut data = Data { dataset: Arc::new(dataset), split, key, parts, warnings: Vec::new() };
    data.warnings = check_inputs(&data)?;
    Ok(data)
}

/// A fingerprint of everything a real dataset feeds the stages: every index file (`images.txt`,
/// `classes.txt`, `image_class_labels.txt`, `train_test_split.txt`, `bounding_boxes.txt`,
/// `parts/parts.txt`, `parts/part_locs.txt`), the segmentation folder's path, and every image's
/// and mask's path, size and modification time (nanoseconds). Replacing or editing any of them,
/// or pointing `dataset.segmentations` elsewhere, changes the data key and so recomputes every
/// stage. Size + modification time rather than a content hash: a stat of the 23,576 files of
/// CUB-200-2011 takes a fraction of a second where hashing 1.2 GB takes many; the price is that
/// a file rewritten with the same size and its old modification time (`touch -r`, some copy
/// tools) is not noticed — rerun with `--force` then.
fn fingerprint(ds: &Dataset) -> Result<String> {
    // A file that cannot be read is `missing` here; `check_inputs` names it.
    let stat = |path: &Path| -> String {
        let Ok(m) = std::fs::metadata(path) else { return "missing".into() };
        let t = m.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
        format!("{}:{}", m.len(), t.map_or(0, |d| d.as_nanos()))
    };
    let mut parts = Vec::new();
    for f in embcam_cub::INDEX_FILES {
        parts.push(format!("{f}:{}", stat(&ds.root.join(f))));
    }
    parts.push(format!("segmentations:{:?}", ds.segmentations));
    for rec in &ds.images {
        parts.push(format!("{}:{}", rec.rel_path, stat(&ds.image_path(rec))));
        if let Some(mask) = ds.mask_path(rec) {
            parts.push(format!("mask:{}", stat(&mask)));
        }
    }
    crate::store::key_of(&parts)
}

/// The device named in the experiment (`flex`, `tch-cpu`, `tch-cuda[:N]`).
pub fn device(name: &str) -> Result<Device> {
    Ok(embcam_model::device::parse_device(name)?)
}

impl Data {
    /// The evaluation images: the split's evaluation images, evenly thinned to `max_images`.
    pub fn eval_images(&self, max_images: Option<usize>) -> Vec<usize> {
        let all = &self.split.eval;
        match max_images {
            Some(m) if m < all.len() && m > 0 => (0..m).map(|i| all[i * all.len() / m]).collect(),
            _ => all.clone(),
        }
    }

    /// Image `k`'s ground truth for the metrics.
    pub fn truth(&self, k: usize) -> Result<ImageTruth> {
        let rec = &self.dataset.images[k];
        let mask = self.dataset.read_mask(rec)?;
        let (width, height) = embcam_cub::load::image_size(&self.dataset.image_path(rec), rec.id)?;
        Ok(ImageTruth {
            id: rec.id,
            width,
            height,
            bbox: rec.bbox,
            mask,
            parts: rec.parts.clone(),
            discriminative_part: self.parts.get(&rec.class_id).copied(),
        })
    }
}

/// Checks of the configuration that need the data, made once it is read and before training:
/// the k-nearest-neighbour proxy needs `cam.knn` images in the proxy set besides the query.
pub fn check_against_data(exp: &Experiment, data: &Data) -> Result<()> {
    let c = &exp.file.cam;
    if c.proxies.contains(&ProxyName::Knn) {
        let mut per_class: BTreeMap<u32, usize> = BTreeMap::new();
        for k in data.eval_images(exp.file.eval.max_images) {
            *per_class.entry(data.dataset.images[k].class_id).or_default() += 1;
        }
        let cap = c.proxy_images_per_class.unwrap_or(usize::MAX);
        let n: usize = per_class.values().map(|&m| m.min(cap)).sum();
        ensure!(
            c.knn < n,
            "cam.knn = {} asks for more neighbours than the proxy set holds: it has {n} images \
             (the evaluation images, after eval.max_images and cam.proxy_images_per_class), so \
             an image has {} others; cam.knn must be below {n}",
            c.knn,
            n.saturating_sub(1)
        );
    }
    Ok(())
}

/// Check everything the run will read before the first stage starts, so that a missing mask is
/// not found after training: every training and evaluation image's file and header, and, with a
/// segmentation folder, that the folder holds the masks at all (one error naming the folder when
/// it holds none of them), and every evaluation image's mask file and its size (from the PNG
/// header). Pixels are decoded later, when read (`embcam validate` decodes everything). Returns
/// the warnings: a box past its image's edge (metrics clip it), naming the image id and line.
pub fn check_inputs(data: &Data) -> Result<Vec<String>> {
    use rayon::prelude::*;

    let ds = &data.dataset;
    let mut used: Vec<usize> = data.split.train.iter().chain(&data.split.eval).copied().collect();
    used.sort_unstable();
    used.dedup();
    let mut evaluated = vec![false; ds.images.len()];
    for &k in &data.split.eval {
        evaluated[k] = true;
    }
    let validate = || match &ds.segmentations {
        Some(seg) => format!(
            "`embcam validate {} --segmentations {}` lists every problem",
            ds.root.display(),
            seg.display()
        ),
        None => format!("`embcam validate {}` lists every problem", ds.root.display()),
    };
    ds.check_segmentation_folder(data.split.eval.iter().map(|&k| &ds.images[k]))?;
    let checked: Vec<Result<Option<String>, embcam_cub::CubError>> = used
        .par_iter()
        .map(|&k| {
            let rec = &ds.images[k];
            let image = ds.image_path(rec);
            let (w, h) = embcam_cub::load::image_size(&image, rec.id)?;
            if let (true, Some(mask)) = (evaluated[k], ds.mask_path(rec)) {
                let (mw, mh) = embcam_cub::load::image_size(&mask, rec.id)?;
                if (mw, mh) != (w, h) {
                    return Err(embcam_cub::CubError::MaskSize {
                        id: rec.id,
                        mask,
                        mask_w: mw,
                        mask_h: mh,
                        image,
                        image_w: w,
                        image_h: h,
                    });
                }
            }
            let outside = !rec.bbox.inside(w, h, 1.0) || rec.bbox.area() <= 0.0;
            Ok(outside.then(|| ds.box_outside(rec, w, h).to_string()))
        })
        .collect();
    let mut warnings = Vec::new();
    let mut errors = Vec::new();
    for c in checked {
        match c {
            Ok(w) => warnings.extend(w),
            Err(e) => errors.push(e),
        }
    }
    if let Some(first) = errors.first() {
        let more = match errors.len() - 1 {
            0 => String::new(),
            n => format!(" (and {n} more)"),
        };
        bail!("{first}{more}; nothing was trained or explained yet ({})", validate());
    }
    Ok(warnings)
}
