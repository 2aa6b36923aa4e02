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
pub mod interventions;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use image::{GrayImage, RgbImage};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng, rngs::StdRng};
use rayon::prelude::*;

pub use classes::{Attributes, SynthClass, make_classes, read_discriminative_parts};
pub use interventions::{
    ImageInterventions, InterventionSummary, PartLabels, interventions_made_at, load_render,
    read_interventions, render_interventions,
};

use crate::dataset::{PART_NAMES, PartLoc};
use crate::error::{CubError, Result, io};
use crate::geometry::BBox;
use crate::mask::{DEFAULT_MASK_THRESHOLD, Mask};
use crate::progress::Progress;

/// How hard a SynthCUB is: bird scale, clutter, occlusion and how fine-grained the class pairs
/// are. [`Difficulty::standard`] follows CUB-200-2011's geometry (see `datasets/README.md`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Difficulty {
    /// Mean share of the frame covered by the bird's box (CUB-200-2011's test split: 0.34).
    /// Each image draws its share from a log-normal with this mean and about CUB's spread.
    pub bird_area: f32,
    /// Background clutter, 0 (sky and ground only) to 1 (15–40 blobs and 2–5 branches).
    pub clutter: f32,
    /// Probability that a foreground branch crosses the bird.
    pub occlusion: f32,
    /// Attributes that separate the two classes of a fine-grained pair: 1 (one part only, the
    /// finest) to 4.
    pub pair_differences: u32,
}

impl Difficulty {
    /// Preset names, easiest first.
    pub const PRESETS: [&'static str; 3] = ["easy", "standard", "hard"];

    /// CUB-like birds (box share 0.34), moderate clutter, a third occluded, pairs one part apart.
    pub fn standard() -> Self {
        Difficulty { bird_area: 0.34, clutter: 0.6, occlusion: 0.3, pair_differences: 1 }
    }
    /// Same birds, little clutter, rare occlusion, pairs two parts apart.
    pub fn easy() -> Self {
        Difficulty { bird_area: 0.34, clutter: 0.25, occlusion: 0.1, pair_differences: 2 }
    }
    /// Small birds (box share 0.15), full clutter, half occluded, pairs one part apart.
    pub fn hard() -> Self {
        Difficulty { bird_area: 0.15, clutter: 1.0, occlusion: 0.5, pair_differences: 1 }
    }
    /// A preset by name ([`Difficulty::PRESETS`]).
    pub fn preset(name: &str) -> Result<Self> {
        match name {
            "easy" => Ok(Self::easy()),
            "standard" => Ok(Self::standard()),
            "hard" => Ok(Self::hard()),
            other => Err(CubError::Invalid(format!(
                "unknown SynthCUB difficulty `{other}`; use one of {}",
                Self::PRESETS.join(", ")
            ))),
        }
    }

    fn check(&self) -> Result<()> {
        let bad = |what: &str, v: String, range: &str| {
            Err(CubError::Invalid(format!("SynthCUB {what} = {v} is out of range; use {range}")))
        };
        if !(0.02..=0.8).contains(&self.bird_area) {
            return bad("bird_area", self.bird_area.to_string(), "0.02 to 0.8");
        }
        if !(0.0..=1.0).contains(&self.clutter) {
            return bad("clutter", self.clutter.to_string(), "0 to 1");
        }
        if !(0.0..=1.0).contains(&self.occlusion) {
            return bad("occlusion", self.occlusion.to_string(), "0 to 1");
        }
        if !(1..=4).contains(&self.pair_differences) {
            return bad("pair_differences", self.pair_differences.to_string(), "1 to 4");
        }
        Ok(())
    }
}

impl Default for Difficulty {
    fn default() -> Self {
        Self::standard()
    }
}

/// How big a SynthCUB to make.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SynthConfig {
    /// Number of classes (2–999).
    pub classes: u32,
    /// Images per class (≥ 1); classes × images per class at most [`MAX_IMAGES`].
    pub images_per_class: u32,
    /// Smallest long side in pixels.
    pub min_side: u32,
    /// Largest long side in pixels.
    pub max_side: u32,
    /// The seed; the same seed gives the same bytes.
    pub seed: u64,
    /// Bird scale, clutter, occlusion, pair granularity.
    pub difficulty: Difficulty,
}

/// The most images a SynthCUB may hold (ten times CUB-200-2011's 11,788 would be 117,880).
pub const MAX_IMAGES: u64 = 1_000_000;

impl Default for SynthConfig {
    /// CUB-200-2011's size and geometry: 200 classes × 60 images, long side 440–500 px.
    fn default() -> Self {
        SynthConfig {
            classes: 200,
            images_per_class: 60,
            min_side: 440,
            max_side: 500,
            seed: 0,
            difficulty: Difficulty::standard(),
        }
    }
}

/// The generator's version, in the stamp: bumped whenever the same settings would draw other
/// pixels, so that a cached dataset from an older generator is never taken for a new one.
pub const GENERATOR_VERSION: &str = "2";

/// The file, in the `CUB_200_2011` folder, that records how a SynthCUB was made.
pub const STAMP: &str = "synthcub.txt";

impl SynthConfig {
    /// The text of the [`STAMP`] file for this configuration: two datasets with the same stamp
    /// are byte-for-byte identical.
    pub fn stamp(&self) -> String {
        format!(
            "SynthCUB: procedurally drawn birds in CUB-200-2011's layout (not real data).\n\
             generator={} classes={} images_per_class={} min_side={} max_side={} seed={}\n\
             difficulty: bird_area={} clutter={} occlusion={} pair_differences={}\n",
            GENERATOR_VERSION,
            self.classes,
            self.images_per_class,
            self.min_side,
            self.max_side,
            self.seed,
            self.difficulty.bird_area,
            self.difficulty.clutter,
            self.difficulty.occlusion,
            self.difficulty.pair_differences,
        )
    }

    /// Whether `out` holds a complete SynthCUB made with exactly this configuration.
    pub fn made_at(&self, out: &Path) -> bool {
        std::fs::read_to_string(out.join("CUB_200_2011").join(STAMP))
            .is_ok_and(|s| s == self.stamp())
    }

    /// Check every setting's range (done by [`generate`] before any work).
    pub fn validate(&self) -> Result<()> {
        if !(2..=999).contains(&self.classes) {
            return Err(CubError::Invalid(format!(
                "SynthCUB needs 2 to 999 classes, asked for classes = {}",
                self.classes
            )));
        }
        if self.images_per_class == 0 {
            return Err(CubError::Invalid("images_per_class must be at least 1".into()));
        }
        if self.classes as u64 * self.images_per_class as u64 > MAX_IMAGES {
            return Err(CubError::Invalid(format!(
                "classes × images_per_class = {} × {} is more than {MAX_IMAGES} images; ask for \
                 fewer",
                self.classes, self.images_per_class
            )));
        }
        if self.min_side < 48 || self.min_side > self.max_side || self.max_side > 4096 {
            return Err(CubError::Invalid(format!(
                "min_side = {} and max_side = {} are invalid; use 48 ≤ min_side ≤ max_side ≤ 4096",
                self.min_side, self.max_side
            )));
        }
        self.difficulty.check()?;
        Ok(())
    }
}

/// What a generation wrote.
#[derive(Debug, Clone, PartialEq)]
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
    /// Mean share of the frame covered by the box.
    pub mean_box_share: f32,
    /// Mean box centre, relative to the frame (x, y).
    pub mean_box_centre: (f32, f32),
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
    size: (u32, u32),
}

fn seed_for(seed: u64, id: u64) -> u64 {
    let mut z = seed ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z ^ (z >> 31)
}

/// Generate a SynthCUB dataset into `out` (which must not exist, or be empty). Writes into a
/// temporary sibling folder and renames it into place at the end, so an interrupted generation
/// never leaves a half-written dataset at `out`. `progress` advances once per image.
pub fn generate(out: &Path, cfg: &SynthConfig, progress: &dyn Progress) -> Result<SynthSummary> {
    cfg.validate()?;
    if out.exists() && std::fs::read_dir(out).map_err(io(out))?.next().is_some() {
        return Err(CubError::Invalid(format!(
            "{} already exists and is not empty; remove it or choose another folder",
            out.display()
        )));
    }
    let classes = make_classes(cfg.classes, cfg.difficulty.pair_differences, cfg.seed)?;
    let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    remove_abandoned_partials(out, &name)?;
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
    progress.start(n as u64);
    let made: Vec<Made> = (1..=n)
        .into_par_iter()
        .map(|id| make_image(id, &classes, cfg, &root, &seg))
        .inspect(|_| progress.advance(1))
        .collect::<Result<_>>()?;

    write_index(&root, &classes, &made, cfg)?;
    if out.exists() {
        std::fs::remove_dir(out).map_err(io(out))?;
    }
    std::fs::rename(&tmp, out).map_err(io(out))?;
    let n = made.len().max(1) as f32;
    let mean = |f: &dyn Fn(&Made) -> f32| made.iter().map(f).sum::<f32>() / n;
    let rel = |m: &Made| (m.size.0 as f32, m.size.1 as f32);
    Ok(SynthSummary {
        mean_box_share: mean(&|m| m.bbox.w * m.bbox.h / (rel(m).0 * rel(m).1)),
        mean_box_centre: (
            mean(&|m| (m.bbox.x + m.bbox.w / 2.0) / rel(m).0),
            mean(&|m| (m.bbox.y + m.bbox.h / 2.0) / rel(m).1),
        ),
        root: out.join("CUB_200_2011"),
        segmentations: out.join("segmentations"),
        images: made.len(),
        greyscale: made.iter().filter(|m| m.greyscale).count(),
        occluded: made.iter().filter(|m| m.occluded).count(),
    })
}

/// Remove `.NAME.partial-PID` folders beside `out` left by a generation that was killed (Ctrl-C,
/// SIGKILL): those whose process no longer runs. Whether a process runs is read from `/proc`;
/// where there is no `/proc`, nothing is removed (a folder of a live generation is never touched).
fn remove_abandoned_partials(out: &Path, name: &str) -> Result<()> {
    let parent = match out.parent() {
        Some(p) if p.as_os_str().is_empty() => Path::new("."),
        Some(p) => p,
        None => return Ok(()),
    };
    let proc = Path::new("/proc");
    let (Ok(entries), true) = (std::fs::read_dir(parent), proc.join("self").exists()) else {
        return Ok(());
    };
    let prefix = format!(".{name}.partial-");
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some(pid) = file.to_str().and_then(|f| f.strip_prefix(&prefix)) else { continue };
        if pid.parse::<u32>().is_ok() && !proc.join(pid).exists() {
            let path = entry.path();
            std::fs::remove_dir_all(&path).map_err(io(&path))?;
        }
    }
    Ok(())
}

/// Image `id` as [`generate`] drew it: its class, scene, render, box and path stem.
struct Drawn<'a> {
    class: &'a SynthClass,
    scene: draw::Scene,
    rendered: draw::Rendered,
    bbox: BBox,
    /// `<class>/<attributes>_<id>`, the path below `images/` without extension.
    stem: String,
}

/// Replay image `id` from `(seed, id)` exactly as [`generate`] draws it (a foreground branch can
/// in principle hide the whole bird: the scene is drawn again, at most 8 times).
fn draw_image<'a>(id: u32, classes: &'a [SynthClass], cfg: &SynthConfig) -> Result<Drawn<'a>> {
    let class = &classes[((id - 1) / cfg.images_per_class) as usize];
    let mut rng = StdRng::seed_from_u64(seed_for(cfg.seed, id as u64));
    let long = rng.random_range(cfg.min_side..=cfg.max_side);
    let short = ((long as f32) * rng.random_range(0.62..0.9)).round() as u32;
    let (w, h) = if rng.random_bool(0.2) { (short, long) } else { (long, short) };
    for _ in 0..8 {
        let scene = draw::Scene::sample(class.attrs, w, h, &cfg.difficulty, &mut rng);
        let r = scene.render();
        let mask = Mask { width: w, height: h, soft: r.mask };
        let Some(bbox) = mask.foreground_box(DEFAULT_MASK_THRESHOLD) else { continue };
        let stem =
            format!("{}/{}_{id:05}", class.name, class.name.split_once('.').map_or("", |s| s.1));
        let rendered = draw::Rendered { mask: mask.soft, ..r };
        return Ok(Drawn { class, scene, rendered, bbox, stem });
    }
    Err(CubError::Invalid(format!("image id {id}: could not place a visible bird in 8 tries")))
}

/// Write RGB bytes as a JPEG (or, for a greyscale scene, its luma), the way every SynthCUB image
/// is written.
fn save_rgb(path: &Path, id: u32, (w, h): (u32, u32), rgb: Vec<u8>, greyscale: bool) -> Result<()> {
    let rgb = RgbImage::from_raw(w, h, rgb).ok_or_else(|| {
        CubError::Invalid(format!("image id {id}: internal buffer size mismatch"))
    })?;
    let encoded = if greyscale {
        image::DynamicImage::ImageRgb8(rgb).into_luma8().save(path)
    } else {
        rgb.save(path)
    };
    encoded.map_err(|e| CubError::Invalid(format!("{}: {e}", path.display())))
}

/// Write 8-bit grey values as a PNG.
fn save_grey(path: &Path, id: u32, (w, h): (u32, u32), values: Vec<u8>) -> Result<()> {
    GrayImage::from_raw(w, h, values)
        .ok_or_else(|| CubError::Invalid(format!("image id {id}: mask buffer mismatch")))?
        .save(path)
        .map_err(|e| CubError::Invalid(format!("{}: {e}", path.display())))
}

fn make_image(
    id: u32,
    classes: &[SynthClass],
    cfg: &SynthConfig,
    root: &Path,
    seg: &Path,
) -> Result<Made> {
    let Drawn { class, scene, rendered: r, bbox, stem } = draw_image(id, classes, cfg)?;
    let size = (scene.width, scene.height);
    let rel_path = format!("{stem}.jpg");
    save_rgb(&root.join("images").join(&rel_path), id, size, r.rgb, scene.greyscale)?;
    save_grey(&seg.join(format!("{stem}.png")), id, size, r.mask)?;
    Ok(Made {
        id,
        class: class.id,
        rel_path,
        bbox,
        parts: r.parts,
        greyscale: scene.greyscale,
        occluded: scene.occluded(),
        size,
    })
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
