//! CUB-200-2011's index files, parsed line by line and joined **by image id** (never by line order).
//!
//! Layout (`CUB_200_2011/`): `images.txt` (`id path`), `classes.txt` (`id name`),
//! `image_class_labels.txt` (`id class`), `train_test_split.txt` (`id is_train`),
//! `bounding_boxes.txt` (`id x y w h`), `images/<class>/<file>.jpg`, optionally `parts/parts.txt`
//! (`id name`) and `parts/part_locs.txt` (`image part x y visible`). Segmentations are a separate
//! root: `segmentations/<class>/<file>.png`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;

use crate::error::{CubError, Result, io};
use crate::geometry::BBox;

/// CUB's 15 part names, in id order (part id = index + 1).
pub const PART_NAMES: [&str; 15] = [
    "back",
    "beak",
    "belly",
    "breast",
    "crown",
    "forehead",
    "left eye",
    "left leg",
    "left wing",
    "nape",
    "right eye",
    "right leg",
    "right wing",
    "tail",
    "throat",
];

/// One class: CUB's id and name (`001.Black_footed_Albatross` form).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Class {
    /// Class id (1-based in CUB).
    pub id: u32,
    /// Class name as in `classes.txt`.
    pub name: String,
}

/// One part annotation of one image (`parts/part_locs.txt`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PartLoc {
    /// Part id, 1..=15 in CUB (see [`PART_NAMES`]).
    pub part_id: u32,
    /// Horizontal position in original pixels.
    pub x: f32,
    /// Vertical position in original pixels.
    pub y: f32,
    /// Whether the part is visible; invisible parts have x = y = 0 in CUB.
    pub visible: bool,
}

/// Everything the index files say about one image.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageRecord {
    /// Image id.
    pub id: u32,
    /// Path relative to `images/` (and, with `.png`, to the segmentation root).
    pub rel_path: String,
    /// Class id.
    pub class_id: u32,
    /// The official split's flag (`train_test_split.txt`).
    pub is_train: bool,
    /// Ground-truth box in original pixels.
    pub bbox: BBox,
    /// Part annotations (empty when the dataset has no `parts/` folder).
    pub parts: Vec<PartLoc>,
}

/// A parsed CUB-format dataset.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// The `CUB_200_2011` folder.
    pub root: PathBuf,
    /// The segmentation root (the folder holding `<class>/<file>.png`), when given.
    pub segmentations: Option<PathBuf>,
    /// Classes, sorted by id.
    pub classes: Vec<Class>,
    /// Images, sorted by id.
    pub images: Vec<ImageRecord>,
    /// Part ids and names (empty without `parts/`).
    pub parts: Vec<(u32, String)>,
    /// Line of each image's box in `bounding_boxes.txt`, for error messages.
    bbox_lines: HashMap<u32, usize>,
}

/// The index files [`Dataset::open`] reads, relative to the `CUB_200_2011` folder.
pub const INDEX_FILES: [&str; 7] = [
    "images.txt",
    "classes.txt",
    "image_class_labels.txt",
    "train_test_split.txt",
    "bounding_boxes.txt",
    "parts/parts.txt",
    "parts/part_locs.txt",
];

impl Dataset {
    /// Parse and join a dataset's index files; fails on the first problem (with a count of the
    /// others: [`crate::validate()`] lists them all).
    ///
    /// `root` is the `CUB_200_2011` folder; `segmentations` the separate mask root, if any.
    pub fn open(root: &Path, segmentations: Option<&Path>) -> Result<Dataset> {
        let mut problems = Vec::new();
        let ds = Dataset::read(root, segmentations, &mut problems);
        let more = problems.len().saturating_sub(1);
        match problems.into_iter().next() {
            None => Ok(ds),
            Some(first) if more == 0 => Err(first),
            Some(first) => Err(CubError::Several { first: Box::new(first), more }),
        }
    }

    /// Parse everything that parses, pushing every problem found to `problems`.
    pub(crate) fn read(
        root: &Path,
        segmentations: Option<&Path>,
        problems: &mut Vec<CubError>,
    ) -> Dataset {
        let file = |name: &str| root.join(name);
        let mut ds = Dataset {
            root: root.to_path_buf(),
            segmentations: segmentations.map(Path::to_path_buf),
            classes: Vec::new(),
            images: Vec::new(),
            parts: Vec::new(),
            bbox_lines: HashMap::new(),
        };
        if let Some(seg) = segmentations
            && !seg.is_dir()
        {
            problems.push(CubError::Invalid(format!(
                "segmentation folder {} does not exist; pass the folder that holds \
                 <class>/<file>.png (see datasets/README.md) or leave it out",
                seg.display()
            )));
            ds.segmentations = None;
        }

        let classes_path = file("classes.txt");
        let classes = keyed(&classes_path, "id name", "class", problems, |f| Ok(f.to_string()));
        ds.classes =
            classes.iter().map(|(&id, (_, name))| Class { id, name: name.clone() }).collect();

        let images_path = file("images.txt");
        let paths = keyed(&images_path, "id path", "image", problems, relative_path);
        let labels_path = file("image_class_labels.txt");
        let labels = keyed(&labels_path, "id class_id", "image", problems, |f| {
            parse_field::<u32>(f, "class id")
        });
        let split_path = file("train_test_split.txt");
        let flags = keyed(&split_path, "id is_train", "image", problems, |f| match f {
            "1" => Ok(true),
            "0" => Ok(false),
            _ => Err(format!("is_train must be 0 or 1, found `{f}`")),
        });
        let boxes_path = file("bounding_boxes.txt");
        let boxes = keyed(&boxes_path, "id x y w h", "image", problems, parse_box);

        let (parts, mut locs) = read_parts(root, &paths, &images_path, problems);
        ds.parts = parts;

        // Every id in a side file must be an image.
        for (side, ids) in [
            (&labels_path, labels.keys().copied().collect::<Vec<_>>()),
            (&split_path, flags.keys().copied().collect()),
            (&boxes_path, boxes.keys().copied().collect()),
        ] {
            for id in ids.into_iter().filter(|id| !paths.contains_key(id)) {
                problems.push(CubError::MissingId {
                    id,
                    present_in: side.clone(),
                    missing_from: images_path.clone(),
                });
            }
        }

        for (&id, (_, rel_path)) in &paths {
            let mut lookup = |path: &Path, present: bool| {
                if !present {
                    problems.push(CubError::MissingId {
                        id,
                        present_in: images_path.clone(),
                        missing_from: path.to_path_buf(),
                    });
                }
                present
            };
            let ok = lookup(&labels_path, labels.contains_key(&id))
                & lookup(&split_path, flags.contains_key(&id))
                & lookup(&boxes_path, boxes.contains_key(&id));
            if !ok {
                continue;
            }
            let (label_line, class_id) = labels[&id];
            if !classes.contains_key(&class_id) {
                problems.push(CubError::UnknownRef {
                    path: labels_path.clone(),
                    line: label_line,
                    what: "class",
                    id: class_id,
                    defined_in: classes_path.clone(),
                });
                continue;
            }
            let (bbox_line, bbox) = boxes[&id];
            ds.bbox_lines.insert(id, bbox_line);
            ds.images.push(ImageRecord {
                id,
                rel_path: rel_path.clone(),
                class_id,
                is_train: flags[&id].1,
                bbox,
                parts: locs.remove(&id).unwrap_or_default(),
            });
        }
        ds
    }

    /// The image file of a record.
    pub fn image_path(&self, rec: &ImageRecord) -> PathBuf {
        self.root.join("images").join(&rec.rel_path)
    }

    /// The mask file of a record, when the dataset has a segmentation root.
    pub fn mask_path(&self, rec: &ImageRecord) -> Option<PathBuf> {
        self.segmentations.as_ref().map(|seg| seg.join(&rec.rel_path).with_extension("png"))
    }

    /// Read a record's mask (`None` without a segmentation root), checking its size against the
    /// image's.
    pub fn read_mask(&self, rec: &ImageRecord) -> Result<Option<crate::Mask>> {
        let Some(mask_path) = self.mask_path(rec) else { return Ok(None) };
        let mask = crate::Mask::read(&mask_path, rec.id)?;
        let image_path = self.image_path(rec);
        let (w, h) = crate::load::image_size(&image_path, rec.id)?;
        mask.check_size(rec.id, &mask_path, &image_path, w, h)?;
        Ok(Some(mask))
    }

    /// A segmentation folder that holds none of `images`' masks (the wrong folder, or an empty
    /// one) as one error naming the folder, rather than one missing file per image. `Ok` without
    /// a segmentation folder, or when at least one mask is there (missing ones are then each
    /// their image's problem).
    pub fn check_segmentation_folder<'a>(
        &self,
        images: impl IntoIterator<Item = &'a ImageRecord>,
    ) -> Result<()> {
        let Some(seg) = &self.segmentations else { return Ok(()) };
        let mut first = None;
        let mut n = 0usize;
        for rec in images {
            let path = seg.join(&rec.rel_path).with_extension("png");
            if path.is_file() {
                return Ok(());
            }
            first.get_or_insert((rec.id, path));
            n += 1;
        }
        let Some((id, path)) = first else { return Ok(()) };
        Err(CubError::Invalid(format!(
            "segmentation folder {} holds none of the {n} masks the images need (image id {id}'s \
             would be {}); it is the wrong folder or empty: pass the folder of segmentations.tgz \
             that holds <class>/<file>.png (`--segmentations`, or `dataset.segmentations` in an \
             experiment file; see datasets/README.md)",
            seg.display(),
            path.display()
        )))
    }

    /// The class with this id.
    pub fn class(&self, id: u32) -> Option<&Class> {
        self.classes.binary_search_by_key(&id, |c| c.id).ok().map(|k| &self.classes[k])
    }

    /// The record of an image id.
    pub fn image(&self, id: u32) -> Option<&ImageRecord> {
        self.images.binary_search_by_key(&id, |r| r.id).ok().map(|k| &self.images[k])
    }

    /// The error for a box that does not fit its `width × height` image, naming the line.
    pub fn box_outside(&self, rec: &ImageRecord, width: u32, height: u32) -> CubError {
        CubError::BoxOutside {
            id: rec.id,
            path: self.root.join("bounding_boxes.txt"),
            line: self.bbox_lines.get(&rec.id).copied().unwrap_or(0),
            bbox: rec.bbox,
            width,
            height,
        }
    }
}

/// Parse one field, saying what was expected on failure.
fn parse_field<T: FromStr>(s: &str, what: &str) -> std::result::Result<T, String> {
    s.parse().map_err(|_| format!("`{s}` is not a valid {what}"))
}

/// An image path from `images.txt`: it must stay inside `images/` (and the segmentation root),
/// so an absolute path or a `..` is refused before anything is read from it.
fn relative_path(f: &str) -> std::result::Result<String, String> {
    let inside =
        Path::new(f).components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if inside {
        Ok(f.to_string())
    } else {
        Err(format!("image path `{f}` must be relative to images/, without `..`"))
    }
}

fn parse_box(rest: &str) -> std::result::Result<BBox, String> {
    let f: Vec<&str> = rest.split_whitespace().collect();
    let [x, y, w, h] = f[..] else {
        return Err(format!("expected 4 numbers `x y w h` after the id, found {}", f.len()));
    };
    let num = |s: &str, name: &str| -> std::result::Result<f32, String> {
        let v: f32 = parse_field(s, name)?;
        if v.is_finite() { Ok(v) } else { Err(format!("{name} `{s}` is not finite")) }
    };
    let b = BBox { x: num(x, "x")?, y: num(y, "y")?, w: num(w, "width")?, h: num(h, "height")? };
    if b.w < 0.0 || b.h < 0.0 {
        return Err(format!("negative box size w={} h={}", b.w, b.h));
    }
    Ok(b)
}

/// The non-blank lines of a text file, trimmed: `(1-based line number, line)`. A leading UTF-8
/// byte-order mark is ignored; a line that is not UTF-8 is an error naming its line (the rest of
/// the file still reads). `Err` when the file cannot be read at all.
pub(crate) fn read_lines(path: &Path) -> Result<Vec<(usize, Result<String>)>> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    let text = |line: usize, bytes: &[u8]| match std::str::from_utf8(bytes) {
        Ok(text) => Ok(text.trim().to_string()),
        Err(e) => Err(CubError::Parse {
            path: path.to_path_buf(),
            line,
            msg: format!(
                "not UTF-8 text (byte {} of the line); save the file as UTF-8",
                e.valid_up_to() + 1
            ),
        }),
    };
    Ok(bytes
        .split(|&b| b == b'\n')
        .enumerate()
        .map(|(k, bytes)| (k + 1, text(k + 1, bytes)))
        .filter(|(_, l)| !l.as_ref().is_ok_and(String::is_empty))
        .collect())
}

/// The lines of an index file as [`read_lines`] gives them, every problem pushed to `problems`.
fn lines(path: &Path, problems: &mut Vec<CubError>) -> Vec<(usize, String)> {
    match read_lines(path) {
        Ok(lines) => lines
            .into_iter()
            .filter_map(|(k, l)| l.map(|l| (k, l)).map_err(|e| problems.push(e)).ok())
            .collect(),
        Err(e) => {
            problems.push(e);
            Vec::new()
        }
    }
}

/// Parse an index file whose lines are `id <rest>`, keyed by id: the id must be a number and
/// unique; `rest` goes through `parse`. Bad lines are reported and skipped.
fn keyed<T>(
    path: &Path,
    spec: &str,
    what: &'static str,
    problems: &mut Vec<CubError>,
    parse: impl Fn(&str) -> std::result::Result<T, String>,
) -> BTreeMap<u32, (usize, T)> {
    let mut out: BTreeMap<u32, (usize, T)> = BTreeMap::new();
    for (line, text) in lines(path, problems) {
        let bad = |msg: String| CubError::Parse { path: path.to_path_buf(), line, msg };
        let (id, rest) = match text.split_once(char::is_whitespace) {
            Some((id, rest)) => (id, rest.trim()),
            None => {
                problems.push(bad(format!("expected `{spec}`, found only `{text}`")));
                continue;
            }
        };
        let parsed = parse_field::<u32>(id, "id (a positive integer)")
            .and_then(|id| parse(rest).map(|v| (id, v)));
        match parsed {
            Err(msg) => problems.push(bad(format!("{msg}; expected `{spec}`"))),
            Ok((id, value)) => {
                if let Some(&(first_line, _)) = out.get(&id) {
                    problems.push(CubError::DuplicateId {
                        path: path.to_path_buf(),
                        line,
                        first_line,
                        what,
                        id,
                    });
                } else {
                    out.insert(id, (line, value));
                }
            }
        }
    }
    out
}

type PartTables = (Vec<(u32, String)>, HashMap<u32, Vec<PartLoc>>);

/// `parts/parts.txt` and `parts/part_locs.txt`, when the `parts/` folder exists.
fn read_parts(
    root: &Path,
    images: &BTreeMap<u32, (usize, String)>,
    images_path: &Path,
    problems: &mut Vec<CubError>,
) -> PartTables {
    let dir = root.join("parts");
    if !dir.is_dir() {
        return Default::default();
    }
    let parts_path = dir.join("parts.txt");
    let names = keyed(&parts_path, "id name", "part", problems, |f| Ok(f.to_string()));
    let locs_path = dir.join("part_locs.txt");
    let mut locs: HashMap<u32, Vec<PartLoc>> = HashMap::new();
    let mut seen: HashMap<(u32, u32), usize> = HashMap::new();
    let mut unknown_images = std::collections::HashSet::new();
    for (line, text) in lines(&locs_path, problems) {
        let bad = |msg: String| CubError::Parse { path: locs_path.clone(), line, msg };
        let f: Vec<&str> = text.split_whitespace().collect();
        let [id, part, x, y, vis] = f[..] else {
            problems.push(bad(format!(
                "expected 5 fields `image_id part_id x y visible`, found {}",
                f.len()
            )));
            continue;
        };
        let parsed = (|| {
            let id: u32 = parse_field(id, "image id")?;
            let part: u32 = parse_field(part, "part id")?;
            let x: f32 = parse_field(x, "x")?;
            let y: f32 = parse_field(y, "y")?;
            let visible = match vis {
                "1" => true,
                "0" => false,
                _ => return Err(format!("visible must be 0 or 1, found `{vis}`")),
            };
            if !(x.is_finite() && y.is_finite()) {
                return Err("part position is not finite".to_string());
            }
            Ok((id, PartLoc { part_id: part, x, y, visible }))
        })();
        let (id, loc) = match parsed {
            Ok(v) => v,
            Err(msg) => {
                problems.push(bad(msg));
                continue;
            }
        };
        if !names.contains_key(&loc.part_id) {
            problems.push(CubError::UnknownRef {
                path: locs_path.clone(),
                line,
                what: "part",
                id: loc.part_id,
                defined_in: parts_path.clone(),
            });
        } else if !images.contains_key(&id) {
            // Once per image, not once per part line.
            if unknown_images.insert(id) {
                problems.push(CubError::MissingId {
                    id,
                    present_in: locs_path.clone(),
                    missing_from: images_path.to_path_buf(),
                });
            }
        } else if let Some(&first_line) = seen.get(&(id, loc.part_id)) {
            problems.push(CubError::DuplicateId {
                path: locs_path.clone(),
                line,
                first_line,
                what: "part annotation for image",
                id,
            });
        } else {
            seen.insert((id, loc.part_id), line);
            locs.entry(id).or_default().push(loc);
        }
    }
    for v in locs.values_mut() {
        v.sort_by_key(|p| p.part_id);
    }
    (names.into_iter().map(|(id, (_, name))| (id, name)).collect(), locs)
}
