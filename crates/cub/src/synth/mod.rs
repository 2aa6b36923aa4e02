//! SynthCUB: a generator that writes a complete CUB-200-2011-format dataset of procedurally drawn
//! birds, so that every stage of the harness runs and is tested on data made here.
//!
//! Output, under the chosen folder:
//! ```text
//! CUB_200_2011/images.txt, classes.txt, image_class_labels.txt, train_test_split.txt,
//!              bounding_boxes.txt, parts/parts.txt, parts/part_locs.txt,
//!              images/<class>/<file>.jpg, synthcub_classes.csv, synthcub.txt
//! segmentations/<class>/<file>.png
//! ```
//! Classes are attribute combinations in fine-grained pairs ([`classes`]). Birds are placed
//! anywhere in the frame (not mostly centred), at varied scale, rotation and facing, sometimes
//! behind a branch, over clutter drawn from the same palette; ~2% of the images are greyscale, as
//! in CUB. The box is the tight box of the mask at CUB's threshold (128); masks have soft edges in
//! steps of 51 (five simulated annotators). Every image draws from its own generator seeded by
//! (seed, image id), so a seed reproduces the dataset byte for byte whatever the thread count.

pub mod classes;
mod draw;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use image::{GrayImage, RgbImage};
use indicatif::{ParallelProgressIterator, ProgressBar};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng, rngs::StdRng};
use rayon::prelude::*;

pub use classes::{Attributes, SynthClass, make_classes, read_discriminative_parts};

use crate::dataset::{PART_NAMES, PartLoc};
use crate::error::{CubError, Result, io};
use crate::geometry::BBox;
use crate::mask::{DEFAULT_MASK_THRESHOLD, Mask};

/// How big a SynthCUB to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SynthConfig {
    /// Number of classes (2–999).
    pub classes: u32,
    /// Images per class (≥ 1).
    pub images_per_class: u32,
    /// Smallest long side in pixels.
    pub min_side: u32,
    /// Largest long side in pixels.
    pub max_side: u32,
    /// The seed; the same seed gives the same bytes.
    pub seed: u64,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig { classes: 20, images_per_class: 40, min_side: 160, max_side: 256, seed: 0 }
    }
}

/// The file, in the `CUB_200_2011` folder, that records how a SynthCUB was made.
pub const STAMP: &str = "synthcub.txt";

impl SynthConfig {
    /// The text of the [`STAMP`] file for this configuration: two datasets with the same stamp
    /// are byte-for-byte identical.
    pub fn stamp(&self) -> String {
        format!(
            "SynthCUB: procedurally drawn birds in CUB-200-2011's layout (not real data).\n\
             generator={} classes={} images_per_class={} min_side={} max_side={} seed={}\n",
            env!("CARGO_PKG_VERSION"),
            self.classes,
            self.images_per_class,
            self.min_side,
            self.max_side,
            self.seed
        )
    }

    /// Whether `out` holds a complete SynthCUB made with exactly this configuration.
    pub fn made_at(&self, out: &Path) -> bool {
        std::fs::read_to_string(out.join("CUB_200_2011").join(STAMP))
            .is_ok_and(|s| s == self.stamp())
    }

    fn check(&self) -> Result<()> {
        if self.images_per_class == 0 {
            return Err(CubError::Invalid("images per class must be at least 1".into()));
        }
        if self.min_side < 48 || self.min_side > self.max_side || self.max_side > 4096 {
            return Err(CubError::Invalid(format!(
                "image size range {}–{} is invalid; use 48 ≤ min ≤ max ≤ 4096",
                self.min_side, self.max_side
            )));
        }
        Ok(())
    }
}

/// What a generation wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthSummary {
    /// The `CUB_200_2011` folder.
    pub root: PathBuf,
    /// The segmentation folder.
    pub segmentations: PathBuf,
    /// Images written.
    pub images: usize,
    /// Of which greyscale.
    pub greyscale: usize,
    /// Of which partly occluded by a foreground branch.
    pub occluded: usize,
}

/// One generated image's records.
struct Made {
    id: u32,
    class: u32,
    rel_path: String,
    bbox: BBox,
    parts: Vec<PartLoc>,
    greyscale: bool,
    occluded: bool,
}

fn seed_for(seed: u64, id: u64) -> u64 {
    let mut z = seed ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z ^ (z >> 31)
}

/// Generate a SynthCUB dataset into `out` (which must not exist, or be empty). Writes into a
/// temporary sibling folder and renames it into place at the end, so an interrupted generation
/// never leaves a half-written dataset at `out`. `progress` advances once per image.
pub fn generate(out: &Path, cfg: &SynthConfig, progress: &ProgressBar) -> Result<SynthSummary> {
    cfg.check()?;
    if out.exists() && std::fs::read_dir(out).map_err(io(out))?.next().is_some() {
        return Err(CubError::Invalid(format!(
            "{} already exists and is not empty; remove it or choose another folder",
            out.display()
        )));
    }
    let classes = make_classes(cfg.classes, cfg.seed)?;
    let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = out.with_file_name(format!(".{name}.partial-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
    }
    let root = tmp.join("CUB_200_2011");
    let seg = tmp.join("segmentations");
    for c in &classes {
        for dir in [root.join("images").join(&c.name), seg.join(&c.name)] {
            std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        }
    }
    std::fs::create_dir_all(root.join("parts")).map_err(io(root.join("parts")))?;

    let n = cfg.classes * cfg.images_per_class;
    progress.set_length(n as u64);
    let made: Vec<Made> = (1..=n)
        .into_par_iter()
        .progress_with(progress.clone())
        .map(|id| make_image(id, &classes, cfg, &root, &seg))
        .collect::<Result<_>>()?;

    write_index(&root, &classes, &made, cfg)?;
    if out.exists() {
        std::fs::remove_dir(out).map_err(io(out))?;
    }
    std::fs::rename(&tmp, out).map_err(io(out))?;
    Ok(SynthSummary {
        root: out.join("CUB_200_2011"),
        segmentations: out.join("segmentations"),
        images: made.len(),
        greyscale: made.iter().filter(|m| m.greyscale).count(),
        occluded: made.iter().filter(|m| m.occluded).count(),
    })
}

fn make_image(
    id: u32,
    classes: &[SynthClass],
    cfg: &SynthConfig,
    root: &Path,
    seg: &Path,
) -> Result<Made> {
    let class = &classes[((id - 1) / cfg.images_per_class) as usize];
    let mut rng = StdRng::seed_from_u64(seed_for(cfg.seed, id as u64));
    let long = rng.random_range(cfg.min_side..=cfg.max_side);
    let short = ((long as f32) * rng.random_range(0.62..0.85)).round() as u32;
    let (w, h) = if rng.random_bool(0.2) { (short, long) } else { (long, short) };
    // A foreground branch can in principle hide the whole bird: draw again (rare).
    for _ in 0..8 {
        let scene = draw::Scene::sample(class.attrs, w, h, &mut rng);
        let r = scene.render();
        let mask = Mask { width: w, height: h, soft: r.mask };
        let Some(bbox) = mask.foreground_box(DEFAULT_MASK_THRESHOLD) else { continue };
        let file = format!("{}_{id:05}", class.name.split_once('.').map_or("", |s| s.1));
        let rel_path = format!("{}/{file}.jpg", class.name);
        let img_path = root.join("images").join(&rel_path);
        let rgb = RgbImage::from_raw(w, h, r.rgb).ok_or_else(|| {
            CubError::Invalid(format!("image id {id}: internal buffer size mismatch"))
        })?;
        let encoded = if scene.greyscale {
            image::DynamicImage::ImageRgb8(rgb).into_luma8().save(&img_path)
        } else {
            rgb.save(&img_path)
        };
        encoded.map_err(|e| CubError::Invalid(format!("{}: {e}", img_path.display())))?;
        let mask_path = seg.join(&class.name).join(format!("{file}.png"));
        GrayImage::from_raw(w, h, mask.soft)
            .ok_or_else(|| CubError::Invalid(format!("image id {id}: mask buffer mismatch")))?
            .save(&mask_path)
            .map_err(|e| CubError::Invalid(format!("{}: {e}", mask_path.display())))?;
        return Ok(Made {
            id,
            class: class.id,
            rel_path,
            bbox,
            parts: r.parts,
            greyscale: scene.greyscale,
            occluded: scene.occluded(),
        });
    }
    Err(CubError::Invalid(format!("image id {id}: could not place a visible bird in 8 tries")))
}

fn write_index(
    root: &Path,
    classes: &[SynthClass],
    made: &[Made],
    cfg: &SynthConfig,
) -> Result<()> {
    let write = |name: &str, text: String| {
        let path = root.join(name);
        std::fs::write(&path, text).map_err(io(&path))
    };
    let lines = |f: &dyn Fn(&Made) -> String| {
        made.iter().fold(String::new(), |mut s, m| {
            s.push_str(&f(m));
            s.push('\n');
            s
        })
    };
    write("images.txt", lines(&|m| format!("{} {}", m.id, m.rel_path)))?;
    write("image_class_labels.txt", lines(&|m| format!("{} {}", m.id, m.class)))?;
    let b = |v: f32| format!("{v:.1}");
    write(
        "bounding_boxes.txt",
        lines(&|m| {
            format!("{} {} {} {} {}", m.id, b(m.bbox.x), b(m.bbox.y), b(m.bbox.w), b(m.bbox.h))
        }),
    )?;
    // Official split: half of each class trains, chosen by a seeded shuffle.
    let mut is_train = vec![false; made.len()];
    for c in classes {
        let mut ids: Vec<usize> =
            made.iter().enumerate().filter(|(_, m)| m.class == c.id).map(|(k, _)| k).collect();
        ids.shuffle(&mut StdRng::seed_from_u64(seed_for(cfg.seed ^ 0x5EED, c.id as u64)));
        let half = ids.len().div_ceil(2);
        for &k in &ids[..half] {
            is_train[k] = true;
        }
    }
    let split: String =
        made.iter().zip(&is_train).map(|(m, &t)| format!("{} {}\n", m.id, t as u8)).collect();
    write("train_test_split.txt", split)?;
    write("classes.txt", classes.iter().map(|c| format!("{} {}\n", c.id, c.name)).collect())?;
    let parts: String =
        PART_NAMES.iter().enumerate().map(|(k, n)| format!("{} {n}\n", k + 1)).collect();
    write("parts/parts.txt", parts)?;
    let mut locs = String::new();
    for m in made {
        for p in &m.parts {
            let _ =
                writeln!(locs, "{} {} {:.1} {:.1} {}", m.id, p.part_id, p.x, p.y, p.visible as u8);
        }
    }
    write("parts/part_locs.txt", locs)?;
    write(classes::CLASS_TABLE, classes::class_table_csv(classes))?;
    write(STAMP, cfg.stamp())
}
