//! Interventions on a SynthCUB: the same scenes rendered again with one thing changed, with exact
//! part regions — ground truth for what a network uses, beyond boxes (FunnyBirds, Hesse,
//! Schaub-Meyer & Roth, ICCV 2023, does this for classifiers). Rendered only when asked
//! ([`render_interventions`]); a dataset made by [`generate`](super::generate) is not touched.
//!
//! Output, beside `CUB_200_2011/` and `segmentations/` (paths in `index.csv` are relative to
//! `interventions/`):
//! ```text
//! interventions/index.csv                      one row per rendered file (below)
//! interventions/synthcub_interventions.txt     the dataset's stamp + the interventions' version
//!                                              + `images=` the ids rendered (a run renders only
//!                                              the images it scores)
//! interventions/<class>/<file>/parts.png       part label map of the dataset's image
//! interventions/<class>/<file>/remove_part_KK.jpg          part region KK left out
//! interventions/<class>/<file>/counterfactual.jpg          discriminative part from the pair class
//! interventions/<class>/<file>/counterfactual_parts.png    its part label map
//! interventions/<class>/<file>/background.jpg              another background, bird kept
//! interventions/<class>/<file>/no_bird.jpg                 background kept, bird left out
//! ```
//! A **part label map** is an 8-bit greyscale PNG the size of the image: each pixel holds the CUB
//! part id (1–15) of the region it belongs to, 0 off the bird. Regions are disjoint, lie inside
//! the segmentation's foreground (≥ 128), and follow the drawn shapes exactly: beak 2, eye 7 (11
//! on a bird facing left), legs 8 and 12, wing 9 (13 facing left), tail 14; the body is split
//! among back 1, belly 3 and breast 4, the head among crown 5, forehead 6, nape 10 and throat 15,
//! by nearest keypoint. The far-side wing and eye are not drawn: their regions are empty.
//!
//! **Every intervention** keeps the scene's pixel grain, light and foreground branches, so pixels
//! it does not change are the dataset image's (up to JPEG blocks next to a change):
//! - `remove_part` (one per part region with at least one pixel): the bird's shapes are left out
//!   inside that region; what lies below shows through (the background, or the body under a
//!   wing). Its part labels are the dataset image's with that region cleared (not written).
//! - `counterfactual`: the bird drawn with the pair class's variant of the discriminative
//!   attribute (beak length, head colour, tail shape or wing pattern), every other attribute its
//!   own — even when the pair differs in more attributes (`pair_differences` > 1).
//! - `background`: sky, ground, blobs and background branches drawn from another seed; same bird.
//! - `no_bird`: the bird left out.
//!
//! `index.csv` has the header `image_id,discriminative_part,kind,part_id,image,part_labels`:
//! `discriminative_part` is the image's discriminative part **as visible** (the class table's
//! part, with the wing as 13 on a bird facing left); `kind` is `original` (the dataset's image,
//! `image` = `../CUB_200_2011/images/...`), `remove_part` (with its `part_id`),
//! `counterfactual`, `background` or `no_bird`; `part_id` is 0 except for `remove_part`;
//! `part_labels` is empty where the rendered image has no label map of its own.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use rand::{SeedableRng, rngs::StdRng};
use rayon::prelude::*;

use super::draw::{Scene, Variant};
use super::{Drawn, SynthConfig, draw_image, make_classes, save_grey, save_rgb, seed_for};
use crate::error::{CubError, Result, io};
use crate::load::{LoadedImage, Transform, apply, decode_rgb, normalize};
use crate::progress::Progress;

/// The folder, beside `CUB_200_2011/`, that holds the interventions.
pub const INTERVENTIONS_DIR: &str = "interventions";
/// The index file in [`INTERVENTIONS_DIR`].
pub const INDEX: &str = "index.csv";
/// The stamp file in [`INTERVENTIONS_DIR`].
pub const STAMP: &str = "synthcub_interventions.txt";
/// The interventions' version, in their stamp: bumped whenever the same dataset would render
/// other intervention pixels.
pub const INTERVENTIONS_VERSION: &str = "1";
/// Salt for the seed of a replaced background.
const BACKGROUND_SALT: u64 = 0xBAC6_7200;
const HEADER: &str = "image_id,discriminative_part,kind,part_id,image,part_labels";

/// What a rendering of interventions wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct InterventionSummary {
    /// The `interventions` folder.
    pub root: PathBuf,
    /// Dataset images covered.
    pub images: usize,
    /// Intervention images written (every kind).
    pub renders: usize,
}

/// The stamp of the interventions of the dataset made with `cfg`.
fn stamp(cfg: &SynthConfig) -> String {
    format!("{}interventions={INTERVENTIONS_VERSION}\n", cfg.stamp())
}

/// The image ids whose interventions `out` (a SynthCUB folder) holds for the dataset made with
/// `cfg`: `None` when it holds none of this dataset (no folder, other settings, incomplete).
fn rendered_ids(out: &Path, cfg: &SynthConfig) -> Option<BTreeSet<u32>> {
    let text = std::fs::read_to_string(out.join(INTERVENTIONS_DIR).join(STAMP)).ok()?;
    let ids = text.strip_prefix(&stamp(cfg))?.strip_prefix("images=")?;
    ids.split_whitespace().map(|t| t.parse().ok()).collect()
}

/// Whether `out` (a SynthCUB folder) holds complete interventions of the dataset made with
/// `cfg` for every image in `ids` (`None`: every image of the dataset).
pub fn interventions_made_at(out: &Path, cfg: &SynthConfig, ids: Option<&[u32]>) -> bool {
    let n = cfg.classes * cfg.images_per_class;
    rendered_ids(out, cfg).is_some_and(|have| match ids {
        Some(ids) => ids.iter().all(|id| have.contains(id)),
        None => (1..=n).all(|id| have.contains(&id)),
    })
}

/// Render the interventions of the images `ids` (`None`: every image) into `out/interventions/`
/// (layout in the module docs). `out` must hold the SynthCUB made by
/// [`generate`](super::generate) with exactly `cfg` (its stamp is checked); the dataset's files
/// are not changed. An image's renders depend only on `cfg` and its id, so the bytes are the same
/// whatever else is rendered and whatever the thread count. Returns at once when those images'
/// interventions are already there; otherwise renders them together with the ones already there
/// into a temporary sibling folder and swaps it into place (so a run that scores 80 images renders
/// 80, not the whole dataset). `progress` advances once per image.
///
/// # Errors
/// `out` is not this configuration's SynthCUB; an id is not one of its images;
/// `out/interventions` exists but belongs to other settings or is incomplete; a file cannot be
/// written.
pub fn render_interventions(
    out: &Path,
    cfg: &SynthConfig,
    ids: Option<&[u32]>,
    progress: &dyn Progress,
) -> Result<InterventionSummary> {
    cfg.validate()?;
    let root = out.join(INTERVENTIONS_DIR);
    let n = cfg.classes * cfg.images_per_class;
    if !cfg.made_at(out) {
        return Err(CubError::Invalid(format!(
            "{} does not hold the SynthCUB of these settings (its {} differs or is missing); \
             generate the dataset first with the same settings",
            out.display(),
            super::STAMP
        )));
    }
    let mut want: BTreeSet<u32> = match ids {
        Some(ids) => ids.iter().copied().collect(),
        None => (1..=n).collect(),
    };
    if let Some(bad) = want.iter().find(|&&id| !(1..=n).contains(&id)) {
        return Err(CubError::Invalid(format!(
            "image id {bad} is not in {} (its ids are 1–{n})",
            out.display()
        )));
    }
    let have = rendered_ids(out, cfg);
    if let Some(have) = &have {
        if want.is_subset(have) {
            let renders = read_index(&root)?.iter().filter(|r| r.kind != "original").count();
            return Ok(InterventionSummary { root, images: have.len(), renders });
        }
        want.extend(have);
    } else if root.exists() {
        return Err(CubError::Invalid(format!(
            "{} exists but was not rendered from this dataset's settings (or is incomplete); \
             remove it and render again",
            root.display()
        )));
    }
    let classes = make_classes(cfg.classes, cfg.difficulty.pair_differences, cfg.seed)?;
    let tmp = out.join(format!(".{INTERVENTIONS_DIR}.partial-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
    }
    progress.start(want.len() as u64);
    let want: Vec<u32> = want.into_iter().collect();
    let rows: Vec<String> = want
        .par_iter()
        .copied()
        .map(|id| render_image(id, &classes, cfg, &tmp))
        .inspect(|_| progress.advance(1))
        .collect::<Result<_>>()?;
    let renders = rows.iter().map(|r| r.lines().count() - 1).sum();
    let index = tmp.join(INDEX);
    std::fs::write(&index, format!("{HEADER}\n{}", rows.concat())).map_err(io(&index))?;
    let stamp_path = tmp.join(STAMP);
    let listed: Vec<String> = want.iter().map(u32::to_string).collect();
    let text = format!("{}images={}\n", stamp(cfg), listed.join(" "));
    std::fs::write(&stamp_path, text).map_err(io(&stamp_path))?;
    if have.is_some() {
        // The earlier, smaller rendering: moved aside, replaced, then removed.
        let old = out.join(format!(".{INTERVENTIONS_DIR}.old-{}", std::process::id()));
        std::fs::rename(&root, &old).map_err(io(&root))?;
        std::fs::rename(&tmp, &root).map_err(io(&root))?;
        std::fs::remove_dir_all(&old).map_err(io(&old))?;
    } else {
        std::fs::rename(&tmp, &root).map_err(io(&root))?;
    }
    Ok(InterventionSummary { root, images: want.len(), renders })
}

/// Render one image's interventions under `dir/<class>/<file>/`; its index rows.
fn render_image(
    id: u32,
    classes: &[super::SynthClass],
    cfg: &SynthConfig,
    dir: &Path,
) -> Result<String> {
    let Drawn { class, scene, rendered: original, stem, .. } = draw_image(id, classes, cfg)?;
    let size = (scene.width, scene.height);
    let folder = dir.join(&stem);
    std::fs::create_dir_all(&folder).map_err(io(&folder))?;
    let disc = class.differs.visible_part_id(scene.facing_left());
    let mut rows = String::new();
    let mut row = |kind: &str, part: u32, image: String, labels: &str| {
        let _ = writeln!(rows, "{id},{disc},{kind},{part},{image},{labels}");
    };
    let save = |name: &str, scene: &Scene, variant: Variant| -> Result<String> {
        let r = scene.render_variant(variant);
        save_rgb(&folder.join(name), id, size, r.rgb, scene.greyscale)?;
        Ok(format!("{stem}/{name}"))
    };

    let mut present = [false; 16];
    for &l in &original.labels {
        present[l as usize] = true;
    }
    let labels = format!("{stem}/parts.png");
    save_grey(&dir.join(&labels), id, size, original.labels)?;
    row("original", 0, format!("../CUB_200_2011/images/{stem}.jpg"), &labels);
    for part in (1..=15u32).filter(|&k| present[k as usize]) {
        let name = format!("remove_part_{part:02}.jpg");
        let path = save(&name, &scene, Variant { without_part: Some(part), without_bird: false })?;
        row("remove_part", part, path, "");
    }

    let pair = &classes[class.nearest as usize - 1];
    let counter = scene.with_attrs(scene.attrs().with_part_of(class.differs, &pair.attrs));
    let r = counter.render();
    let image = format!("{stem}/counterfactual.jpg");
    save_rgb(&dir.join(&image), id, size, r.rgb, scene.greyscale)?;
    let labels = format!("{stem}/counterfactual_parts.png");
    save_grey(&dir.join(&labels), id, size, r.labels)?;
    row("counterfactual", 0, image, &labels);

    let mut rng = StdRng::seed_from_u64(seed_for(cfg.seed ^ BACKGROUND_SALT, id as u64));
    let other = Scene::sample(class.attrs, size.0, size.1, &cfg.difficulty, &mut rng);
    let path = save("background.jpg", &scene.with_background_of(&other), Variant::default())?;
    row("background", 0, path, "");
    let path = save("no_bird.jpg", &scene, Variant { without_part: None, without_bird: true })?;
    row("no_bird", 0, path, "");
    Ok(rows)
}

/// One parsed row of `index.csv`.
struct Row {
    image_id: u32,
    discriminative_part: u32,
    kind: String,
    part_id: u32,
    image: PathBuf,
    part_labels: Option<PathBuf>,
}

fn read_index(root: &Path) -> Result<Vec<Row>> {
    let path = root.join(INDEX);
    let mut rows = Vec::new();
    for (line, text) in crate::dataset::read_lines(&path)?.into_iter().skip(1) {
        let text = text?;
        let bad = |msg: String| CubError::Parse { path: path.clone(), line, msg };
        let f: Vec<&str> = text.split(',').collect();
        if f.len() != 6 {
            return Err(bad(format!(
                "expected 6 comma-separated fields ({HEADER}), found {}",
                f.len()
            )));
        }
        let num = |s: &str| s.parse::<u32>().map_err(|_| bad(format!("`{s}` is not a number")));
        rows.push(Row {
            image_id: num(f[0])?,
            discriminative_part: num(f[1])?,
            kind: f[2].to_string(),
            part_id: num(f[3])?,
            image: root.join(f[4]),
            part_labels: (!f[5].is_empty()).then(|| root.join(f[5])),
        });
    }
    Ok(rows)
}

/// One dataset image's interventions, with absolute paths.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageInterventions {
    /// The dataset's image id.
    pub image_id: u32,
    /// The discriminative part as visible on this image: the class table's part, with the wing
    /// as 13 on a bird facing left.
    pub discriminative_part: u32,
    /// The dataset image's part label map ([`PartLabels`]).
    pub part_labels: PathBuf,
    /// `(part id, image)` with that part region left out, by part id: every region with at least
    /// one pixel.
    pub removed: Vec<(u32, PathBuf)>,
    /// The discriminative part swapped for the pair class's variant.
    pub counterfactual: PathBuf,
    /// The counterfactual's part label map.
    pub counterfactual_part_labels: PathBuf,
    /// The background replaced, bird kept.
    pub background: PathBuf,
    /// The bird left out, background kept.
    pub no_bird: PathBuf,
}

/// Read `out/interventions/index.csv` (written by [`render_interventions`]): one entry per
/// dataset image, by image id.
///
/// # Errors
/// A missing or malformed index, an unknown kind, or an image without one of the kinds.
pub fn read_interventions(out: &Path) -> Result<Vec<ImageInterventions>> {
    let root = out.join(INTERVENTIONS_DIR);
    let index = root.join(INDEX);
    let mut by_id: BTreeMap<u32, Vec<Row>> = BTreeMap::new();
    for row in read_index(&root)? {
        by_id.entry(row.image_id).or_default().push(row);
    }
    let missing = |id: u32, what: &str| {
        CubError::Invalid(format!(
            "{}: image id {id} has no `{what}` row; render the interventions again",
            index.display()
        ))
    };
    by_id
        .into_iter()
        .map(|(id, rows)| {
            let mut e = ImageInterventions {
                image_id: id,
                discriminative_part: rows[0].discriminative_part,
                part_labels: PathBuf::new(),
                removed: Vec::new(),
                counterfactual: PathBuf::new(),
                counterfactual_part_labels: PathBuf::new(),
                background: PathBuf::new(),
                no_bird: PathBuf::new(),
            };
            for r in rows {
                match (r.kind.as_str(), r.part_labels) {
                    ("original", Some(l)) => e.part_labels = l,
                    ("remove_part", _) => e.removed.push((r.part_id, r.image)),
                    ("counterfactual", Some(l)) => {
                        e.counterfactual = r.image;
                        e.counterfactual_part_labels = l;
                    }
                    ("background", _) => e.background = r.image,
                    ("no_bird", _) => e.no_bird = r.image,
                    (kind, _) => {
                        return Err(CubError::Invalid(format!(
                            "{}: image id {id}: unknown kind `{kind}` (or one without its part \
                             labels); expected original, remove_part, counterfactual, \
                             background or no_bird",
                            index.display()
                        )));
                    }
                }
            }
            for (path, what) in [
                (&e.part_labels, "original"),
                (&e.counterfactual, "counterfactual"),
                (&e.background, "background"),
                (&e.no_bird, "no_bird"),
            ] {
                if path.as_os_str().is_empty() {
                    return Err(missing(id, what));
                }
            }
            Ok(e)
        })
        .collect()
}

/// Load a rendered intervention image through `transform`, exactly as
/// [`load_image`](crate::load::load_image) loads dataset image `id` (of class `class_id`): a render
/// has its image's size, so with the same id and epoch it gets the same crop and flip, and its
/// heatmaps map back to the original pixels through the same geometry.
///
/// # Errors
/// The file cannot be read or decoded (the message names it and the image id).
pub fn load_render(
    path: &Path,
    id: u32,
    class_id: u32,
    transform: &Transform,
    epoch: u64,
) -> Result<LoadedImage> {
    let img = decode_rgb(path, id)?;
    let (region, flip) = transform.plan(img.width(), img.height(), id, epoch);
    let (input, geometry) = apply(&img, region, flip, transform.size());
    Ok(LoadedImage { id, class_id, chw: normalize(&input), geometry })
}

/// A part label map: the CUB part id (1–15) of every pixel's region, 0 off the bird (module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct PartLabels {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `width · height` part ids, row-major.
    pub labels: Vec<u8>,
}

impl PartLabels {
    /// Read a part label PNG. `id` names the image in errors.
    ///
    /// # Errors
    /// The file cannot be read or decoded, or holds a value above 15.
    pub fn read(path: &Path, id: u32) -> Result<PartLabels> {
        let img = crate::load::open_image(path, id)?.into_luma8();
        let (width, height) = img.dimensions();
        let labels = img.into_raw();
        if let Some(bad) = labels.iter().find(|&&l| l > 15) {
            return Err(CubError::Invalid(format!(
                "image id {id}: {} holds the value {bad}, not a CUB part id (0–15); it is not a \
                 part label map — render the interventions again",
                path.display()
            )));
        }
        Ok(PartLabels { width, height, labels })
    }

    /// The region of `part`: one flag per pixel.
    pub fn mask(&self, part: u32) -> Vec<bool> {
        self.labels.iter().map(|&l| u32::from(l) == part).collect()
    }

    /// The bird: every labelled pixel.
    pub fn bird(&self) -> Vec<bool> {
        self.labels.iter().map(|&l| l != 0).collect()
    }

    /// Pixels in each part region, indexed by part id (index 0: off the bird).
    pub fn areas(&self) -> [usize; 16] {
        let mut a = [0; 16];
        for &l in &self.labels {
            a[usize::from(l).min(15)] += 1;
        }
        a
    }
}
