//! Fuzzing every parser a user's files reach: the index files (through `Dataset::open` and
//! `validate`), segmentation masks, SynthCUB's class table and the images themselves.
//!
//! Inputs are damaged copies of a SynthCUB generated once per test process: structure-aware
//! edits of the index files (lines deleted, duplicated, swapped; fields replaced by numbers out of
//! range, NaN, unicode, nothing; CRLF, BOM, stray whitespace; truncation, random bytes) and of the
//! binary files (truncation, flipped bytes, headers that lie about the size, re-encoding at another
//! size or colour type, random bytes). Each case must return, within [`CASE_TIMEOUT_MS`], and every
//! error must say where the problem is: `file:line:` for a line of an index file, the image id and
//! the file for an image or a mask.
//!
//! Budget: `EMBCAM_FUZZ_CASES` cases per test, or each test's default (2–4 s in a debug build on
//! a 2-core machine); run with `--nocapture` to see how many inputs each test tried.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use embcam_cub::load::{decode_rgb, image_size, open_image};
use embcam_cub::synth::read_discriminative_parts;
use embcam_cub::{CubError, Dataset, INDEX_FILES, Silent, validate};
use image::{DynamicImage, ImageFormat};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestCaseError};

use crate::fixture::Fixture;

/// A case that runs longer than this fails the test (proptest runs the cases in a child process
/// and kills it).
const CASE_TIMEOUT_MS: u32 = 10_000;

/// The `CUB_200_2011` folder, relative to the tree [`pristine`] holds.
const ROOT: &str = "synth/CUB_200_2011";
/// The segmentation root, relative to the same tree.
const SEG: &str = "synth/segmentations";

/// One fuzz test's state: a scratch copy of the pristine dataset and the inputs tried.
///
/// The cases run one after another in a child process (for the timeout) that exits without
/// returning, so the count is printed, and the scratch copy removed, after the last case. Each case
/// writes the files it damages into the scratch copy and puts the originals back afterwards:
/// creating and deleting a whole tree per case costs more than the parsing.
struct Campaign {
    name: &'static str,
    /// Cases when `EMBCAM_FUZZ_CASES` is unset.
    default_cases: u32,
    tried: AtomicU32,
    rejected: AtomicU32,
    start: OnceLock<Instant>,
    scratch: OnceLock<tempfile::TempDir>,
}

impl Campaign {
    const fn new(name: &'static str, default_cases: u32) -> Campaign {
        Campaign {
            name,
            default_cases,
            tried: AtomicU32::new(0),
            rejected: AtomicU32::new(0),
            start: OnceLock::new(),
            scratch: OnceLock::new(),
        }
    }

    fn cases(&self) -> u32 {
        std::env::var("EMBCAM_FUZZ_CASES")
            .map(|s| s.parse().expect("EMBCAM_FUZZ_CASES must be a whole number"))
            .unwrap_or(self.default_cases)
    }

    /// [`Campaign::cases`] cases, each within [`CASE_TIMEOUT_MS`]; a failure is shrunk to a
    /// minimal input and printed (and kept as a plain `#[test]` once fixed, not in a file).
    fn config(&self) -> Config {
        Config {
            cases: self.cases(),
            timeout: CASE_TIMEOUT_MS,
            max_shrink_time: 60_000,
            failure_persistence: None,
            ..Config::default()
        }
    }

    /// The scratch copy: `CUB_200_2011/` and `segmentations/` lie under `synth/`.
    fn dir(&self) -> &Path {
        self.scratch
            .get_or_init(|| {
                let dir = tempfile::tempdir().unwrap();
                copy_pristine(dir.path());
                dir
            })
            .path()
    }

    /// Write `files` (relative to [`Campaign::dir`]) into the scratch copy until the guard drops.
    fn damage(&self, files: BTreeMap<PathBuf, Vec<u8>>) -> Damaged<'_> {
        for (rel, bytes) in &files {
            std::fs::write(self.dir().join(rel), bytes).unwrap();
        }
        Damaged { dir: self.dir(), files }
    }

    /// Count a case (after putting its damaged files back).
    fn record(&self, damaged: Damaged<'_>, rejected: bool) {
        drop(damaged);
        let start = *self.start.get_or_init(Instant::now);
        let rejected =
            self.rejected.fetch_add(rejected as u32, Ordering::Relaxed) + rejected as u32;
        let tried = self.tried.fetch_add(1, Ordering::Relaxed) + 1;
        if tried == self.cases() {
            println!(
                "fuzz {}: {tried} inputs tried ({rejected} rejected with an error) in {:.1} s",
                self.name,
                start.elapsed().as_secs_f64()
            );
            if let Some(dir) = self.scratch.get() {
                let _ = std::fs::remove_dir_all(dir.path());
            }
        }
    }
}

/// Damaged files in a scratch copy; dropping it restores the pristine bytes.
struct Damaged<'a> {
    dir: &'a Path,
    files: BTreeMap<PathBuf, Vec<u8>>,
}

impl Drop for Damaged<'_> {
    fn drop(&mut self) {
        for rel in self.files.keys() {
            let path = self.dir.join(rel);
            match pristine().get(rel) {
                Some(bytes) => std::fs::write(path, bytes).unwrap(),
                None => std::fs::remove_file(path).unwrap(),
            }
        }
    }
}

/// The pristine SynthCUB (2 classes × 3 images, parts, masks) as relative path → bytes.
fn pristine() -> &'static BTreeMap<PathBuf, Vec<u8>> {
    static TREE: OnceLock<BTreeMap<PathBuf, Vec<u8>>> = OnceLock::new();
    TREE.get_or_init(|| {
        fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(base, &path, out);
                } else {
                    let bytes = std::fs::read(&path).unwrap();
                    out.insert(path.strip_prefix(base).unwrap().to_path_buf(), bytes);
                }
            }
        }
        let fx = Fixture::new(2, 3, 0);
        let mut out = BTreeMap::new();
        walk(fx.dir.path(), fx.dir.path(), &mut out);
        out
    })
}

/// Write the pristine tree under `dir`.
fn copy_pristine(dir: &Path) {
    for (rel, bytes) in pristine() {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
    }
}

/// The pristine bytes of a file of the dataset (`rel` relative to the `CUB_200_2011` folder).
fn original(rel: &str) -> &'static [u8] {
    &pristine()[&Path::new(ROOT).join(rel)]
}

// ---------------------------------------------------------------------------------------------
// Mutations of line-based text files.

/// One structure-aware change to a line-based text file whose fields are separated by `sep`.
#[derive(Debug, Clone)]
enum Edit {
    DeleteLine(Index),
    DuplicateLine(Index),
    SwapLines(Index, Index),
    InsertLine(Index, String),
    SetField(Index, Index, String),
    DeleteField(Index, Index),
    InsertField(Index, Index, String),
    /// Whitespace before, between and after the fields of a line.
    Pad(Index, String),
    Truncate(Index),
    Splice(Index, Vec<u8>),
    FlipByte(Index, u8),
    Crlf,
    /// Carriage returns alone (classic Mac line endings): the file becomes one line.
    LoneCr,
    Bom,
    Random(Vec<u8>),
}

/// Field values that parsers get wrong: signs, overflow, NaN, unicode digits, paths, nothing.
fn nasty_field() -> impl Strategy<Value = String> {
    let fixed = prop::sample::select(vec![
        "",
        "0",
        "-0",
        "-1",
        "+1",
        "1",
        "2",
        "3",
        "15",
        "4294967295",
        "4294967296",
        "18446744073709551616",
        "1e39",
        "-1e39",
        "3.4e38",
        "NaN",
        "nan",
        "inf",
        "-inf",
        "infinity",
        "1.5",
        "0.0",
        "-0.5",
        "1e-45",
        "0x1F",
        "1_000",
        "１",
        "٣",
        "\u{feff}1",
        "1\u{0}",
        "\t",
        "a b",
        "é",
        "🐦",
        "001.Bird/001.jpg",
        "../x.jpg",
        "/x.jpg",
        ".",
        "..",
        "images",
        "\u{202e}",
        "\u{7f}",
    ]);
    prop_oneof![
        4 => fixed.prop_map(String::from),
        1 => any::<u32>().prop_map(|v| v.to_string()),
        1 => any::<i64>().prop_map(|v| v.to_string()),
        1 => any::<f32>().prop_map(|v| v.to_string()),
        1 => any::<f64>().prop_map(|v| format!("{v:e}")),
        2 => "\\PC{0,16}",
        1 => ".{0,16}",
    ]
}

fn edit() -> impl Strategy<Value = Edit> {
    let ix = any::<Index>;
    prop_oneof![
        3 => ix().prop_map(Edit::DeleteLine),
        2 => ix().prop_map(Edit::DuplicateLine),
        2 => (ix(), ix()).prop_map(|(a, b)| Edit::SwapLines(a, b)),
        2 => (ix(), prop::collection::vec(nasty_field(), 0..7).prop_map(|f| f.join(" ")))
            .prop_map(|(i, s)| Edit::InsertLine(i, s)),
        8 => (ix(), ix(), nasty_field()).prop_map(|(i, f, s)| Edit::SetField(i, f, s)),
        3 => (ix(), ix()).prop_map(|(i, f)| Edit::DeleteField(i, f)),
        3 => (ix(), ix(), nasty_field()).prop_map(|(i, f, s)| Edit::InsertField(i, f, s)),
        2 => (ix(), "[ \t\u{a0}\u{3000}\r\u{b}\u{c}]{1,3}").prop_map(|(i, s)| Edit::Pad(i, s)),
        2 => ix().prop_map(Edit::Truncate),
        1 => (ix(), prop::collection::vec(any::<u8>(), 1..8)).prop_map(|(i, b)| Edit::Splice(i, b)),
        2 => (ix(), 1..=255u8).prop_map(|(i, x)| Edit::FlipByte(i, x)),
        1 => Just(Edit::Crlf),
        1 => Just(Edit::LoneCr),
        1 => Just(Edit::Bom),
        1 => prop::collection::vec(any::<u8>(), 0..200).prop_map(Edit::Random),
    ]
}

impl Edit {
    fn apply(&self, bytes: &mut Vec<u8>, sep: u8) {
        let mut lines: Vec<Vec<u8>> = bytes.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
        let n = lines.len(); // ≥ 1: splitting yields at least one (maybe empty) line
        let mut fields = |i: &Index, f: &mut dyn FnMut(&mut Vec<Vec<u8>>)| {
            let line = &mut lines[i.index(n)];
            let mut parts: Vec<Vec<u8>> = line.split(|&b| b == sep).map(<[u8]>::to_vec).collect();
            f(&mut parts);
            *line = parts.join(&sep);
        };
        match self {
            Edit::DeleteLine(i) => drop(lines.remove(i.index(n))),
            Edit::DuplicateLine(i) => {
                let k = i.index(n);
                lines.insert(k, lines[k].clone());
            }
            Edit::SwapLines(a, b) => lines.swap(a.index(n), b.index(n)),
            Edit::InsertLine(i, s) => lines.insert(i.index(n + 1), s.as_bytes().to_vec()),
            Edit::SetField(i, k, s) => fields(i, &mut |p| {
                let k = k.index(p.len());
                p[k] = s.as_bytes().to_vec();
            }),
            Edit::DeleteField(i, k) => fields(i, &mut |p| drop(p.remove(k.index(p.len())))),
            Edit::InsertField(i, k, s) => {
                fields(i, &mut |p| p.insert(k.index(p.len() + 1), s.as_bytes().to_vec()));
            }
            Edit::Pad(i, ws) => {
                let ws = ws.as_bytes();
                let line = &mut lines[i.index(n)];
                let mut padded = ws.to_vec();
                for (k, part) in line.split(|&b| b == sep).enumerate() {
                    if k > 0 {
                        padded.push(sep);
                        padded.extend_from_slice(ws);
                    }
                    padded.extend_from_slice(part);
                }
                padded.extend_from_slice(ws);
                *line = padded;
            }
            Edit::Truncate(i) => lines = vec![bytes[..i.index(bytes.len() + 1)].to_vec()],
            Edit::Splice(i, b) => {
                let k = i.index(bytes.len() + 1);
                lines = vec![[&bytes[..k], b, &bytes[k..]].concat()];
            }
            Edit::FlipByte(i, x) if !bytes.is_empty() => {
                let mut b = bytes.clone();
                b[i.index(bytes.len())] ^= x;
                lines = vec![b];
            }
            Edit::FlipByte(..) => {}
            Edit::Crlf => lines.iter_mut().for_each(|l| l.push(b'\r')),
            Edit::LoneCr => lines = vec![lines.join(&b'\r')],
            Edit::Bom => lines[0] = [&[0xEF, 0xBB, 0xBF][..], &lines[0]].concat(),
            Edit::Random(b) => lines = vec![b.clone()],
        }
        *bytes = lines.join(&b'\n');
    }
}

// ---------------------------------------------------------------------------------------------
// The oracle: every error says where.

/// Check that an error names its place: `file:line:` for a line, the image id and the file(s)
/// for an image; every file it names lies in the dataset (`dir`).
fn assert_named(e: &CubError, dir: &Path) -> Result<(), TestCaseError> {
    let msg = e.to_string();
    let names = |path: &Path| -> Result<(), TestCaseError> {
        prop_assert!(path.starts_with(dir), "names a file outside the dataset: {msg}");
        prop_assert!(msg.contains(&path.display().to_string()), "does not name {path:?}: {msg}");
        Ok(())
    };
    let at_line = |path: &Path, line: usize| -> Result<(), TestCaseError> {
        names(path)?;
        prop_assert!(line >= 1, "line 0: {msg}");
        prop_assert!(msg.contains(&format!("{}:{line}:", path.display())), "no line: {msg}");
        Ok(())
    };
    let image_id = |id: u32| -> Result<(), TestCaseError> {
        prop_assert!(msg.contains(&format!("image id {id}")), "no image id: {msg}");
        Ok(())
    };
    match e {
        CubError::Parse { path, line, .. }
        | CubError::DuplicateId { path, line, .. }
        | CubError::UnknownRef { path, line, .. } => at_line(path, *line)?,
        CubError::BoxOutside { id, path, line, .. } => {
            at_line(path, *line)?;
            image_id(*id)?;
        }
        CubError::MissingId { id, present_in, missing_from } => {
            image_id(*id)?;
            names(present_in)?;
            names(missing_from)?;
        }
        CubError::Decode { id, path, .. } | CubError::ImageFile { id, path, .. } => {
            image_id(*id)?;
            names(path)?;
        }
        CubError::MaskSize { id, mask, image, .. } => {
            image_id(*id)?;
            names(mask)?;
            names(image)?;
        }
        // An index file that cannot be read at all has no line to name; its content never gives
        // an I/O error (that would be a problem without a line).
        CubError::Io { path, .. } => {
            names(path)?;
            prop_assert!(
                path.extension().is_none_or(|x| x != "txt" && x != "csv"),
                "I/O error for an index file's content, without a line: {msg}"
            );
        }
        CubError::Several { first, more } => {
            prop_assert!(*more >= 1, "{msg}");
            assert_named(first, dir)?;
        }
        CubError::Invalid(_) => {
            prop_assert!(msg.contains(&dir.display().to_string()), "names no file: {msg}");
            prop_assert!(msg.contains("image id"), "names no image: {msg}");
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 1. The index files: `Dataset::open` and `validate`.

static INDEX: Campaign = Campaign::new("index files (Dataset::open + validate)", 512);

fn index_edits() -> impl Strategy<Value = Vec<(&'static str, Vec<Edit>)>> {
    let file_edits = (prop::sample::select(&INDEX_FILES[..]), prop::collection::vec(edit(), 1..=3));
    prop::collection::vec(file_edits, 1..=2)
}

/// Apply edits to the pristine index files: the changed files, relative to the tree.
fn edited(edits: &[(&str, Vec<Edit>)], sep: u8) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    for (name, list) in edits {
        let rel = Path::new(ROOT).join(name);
        let bytes = files.entry(rel).or_insert_with(|| original(name).to_vec());
        for e in list {
            e.apply(bytes, sep);
        }
    }
    files
}

/// Open and validate a damaged dataset; both must agree and name every problem's place.
fn check_index_files(edits: &[(&str, Vec<Edit>)]) -> Result<(), TestCaseError> {
    let damaged = INDEX.damage(edited(edits, b' '));
    let (dir, root, seg) = (INDEX.dir(), INDEX.dir().join(ROOT), INDEX.dir().join(SEG));
    let opened = Dataset::open(&root, Some(&seg));
    let report = validate(&root, Some(&seg), &Silent);
    for p in &report.problems {
        assert_named(p, dir)?;
    }
    match &opened {
        Ok(ds) => prop_assert_eq!(report.summary.images, ds.images.len()),
        Err(e) => {
            assert_named(e, dir)?;
            let first = match e {
                CubError::Several { first, .. } => first.to_string(),
                e => e.to_string(),
            };
            prop_assert_eq!(report.problems.first().map(ToString::to_string), Some(first));
        }
    }
    INDEX.record(damaged, opened.is_err() || !report.is_ok());
    Ok(())
}

proptest! {
    #![proptest_config(INDEX.config())]

    #[test]
    fn index_files_never_panic_and_name_the_line(edits in index_edits()) {
        check_index_files(&edits)?;
    }
}

// ---------------------------------------------------------------------------------------------
// 2.–4. Binary files: masks and images.

/// Colour types a mask or an image may come in.
const COLOURS: [fn(&DynamicImage) -> DynamicImage; 8] = [
    |i| i.to_luma8().into(),
    |i| i.to_luma_alpha8().into(),
    |i| i.to_rgb8().into(),
    |i| i.to_rgba8().into(),
    |i| i.to_luma16().into(),
    |i| i.to_luma_alpha16().into(),
    |i| i.to_rgb16().into(),
    |i| i.to_rgba16().into(),
];

/// One way to damage an image or mask file.
#[derive(Debug, Clone)]
enum Damage {
    Truncate(Index),
    FlipBytes(Vec<(Index, u8)>),
    Splice(Index, Vec<u8>),
    /// The header claims another width and height (PNG: IHDR with its CRC fixed; JPEG: SOF).
    Header(u32, u32),
    /// PNG only: another bit depth and colour type in IHDR (CRC fixed), pixels unchanged.
    PngFormat(u8, u8),
    /// Decoded and written again: resized by (dw, dh), in another colour type, as PNG or JPEG.
    Reencode {
        colour: Index,
        dw: i8,
        dh: i8,
        jpeg: bool,
    },
    Random(Vec<u8>),
}

/// A width or height for a lying header: mostly plausible, sometimes 0 or past any limit.
fn dimension() -> impl Strategy<Value = u32> {
    prop_oneof![
        8 => 1..=1024u32,
        1 => Just(0u32),
        1 => Just(65_535u32),
        1 => Just(u32::MAX),
        1 => any::<u32>(),
    ]
}

/// Mostly the same size (other colour types must still be read), sometimes a pixel or two off.
fn size_change() -> impl Strategy<Value = i8> {
    prop_oneof![2 => Just(0i8), 1 => -2..=2i8]
}

fn damage() -> impl Strategy<Value = Damage> {
    // PNG bit depths and colour types, valid and not.
    let depth = prop::sample::select(vec![0u8, 1, 2, 4, 8, 16, 32]);
    let colour = prop::sample::select(vec![0u8, 1, 2, 3, 4, 6, 7]);
    prop_oneof![
        3 => any::<Index>().prop_map(Damage::Truncate),
        3 => prop::collection::vec((any::<Index>(), 1..=255u8), 1..6).prop_map(Damage::FlipBytes),
        1 => (any::<Index>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(i, b)| Damage::Splice(i, b)),
        2 => (dimension(), dimension()).prop_map(|(w, h)| Damage::Header(w, h)),
        1 => (depth, colour).prop_map(|(d, c)| Damage::PngFormat(d, c)),
        3 => (any::<Index>(), size_change(), size_change(), any::<bool>())
            .prop_map(|(colour, dw, dh, jpeg)| Damage::Reencode { colour, dw, dh, jpeg }),
        1 => prop::collection::vec(any::<u8>(), 0..300).prop_map(Damage::Random),
    ]
}

/// CRC-32 (ISO-HDLC, as PNG chunks use).
fn crc32(bytes: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for &b in bytes {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
        }
    }
    !c
}

/// Rewrite part of a PNG's IHDR (offset within the file, bytes) and fix the chunk's CRC.
fn patch_ihdr(b: &mut [u8], at: usize, new: &[u8]) {
    // signature (8), length (4), "IHDR" (4), 13 data bytes, CRC over type + data.
    if b.len() >= 33 && &b[12..16] == b"IHDR" {
        b[at..at + new.len()].copy_from_slice(new);
        let crc = crc32(&b[12..29]);
        b[29..33].copy_from_slice(&crc.to_be_bytes());
    }
}

impl Damage {
    fn apply(&self, original: &[u8]) -> Vec<u8> {
        let mut b = original.to_vec();
        match self {
            Damage::Truncate(i) => b.truncate(i.index(b.len())),
            Damage::FlipBytes(flips) => {
                flips.iter().for_each(|(i, x)| b[i.index(original.len())] ^= x)
            }
            Damage::Splice(i, bytes) => {
                let k = i.index(b.len() + 1);
                b = [&original[..k], bytes, &original[k..]].concat();
            }
            Damage::Header(w, h) if b.starts_with(b"\x89PNG") => {
                patch_ihdr(&mut b, 16, &[w.to_be_bytes(), h.to_be_bytes()].concat());
            }
            Damage::Header(w, h) => {
                // JPEG start of frame (baseline or progressive): FF C0|C2, length, precision,
                // height, width.
                if let Some(p) = b.windows(2).position(|m| m == [0xFF, 0xC0] || m == [0xFF, 0xC2])
                    && p + 9 <= b.len()
                {
                    b[p + 5..p + 7].copy_from_slice(&(*h as u16).to_be_bytes());
                    b[p + 7..p + 9].copy_from_slice(&(*w as u16).to_be_bytes());
                }
            }
            Damage::PngFormat(depth, colour) => patch_ihdr(&mut b, 24, &[*depth, *colour]),
            Damage::Reencode { colour, dw, dh, jpeg } => {
                let img = image::load_from_memory(original).unwrap();
                let w = (img.width() as i32 + i32::from(*dw)).max(1) as u32;
                let h = (img.height() as i32 + i32::from(*dh)).max(1) as u32;
                let img = img.resize_exact(w, h, image::imageops::FilterType::Nearest);
                let img = COLOURS[colour.index(COLOURS.len())](&img);
                let mut out = Cursor::new(Vec::new());
                // JPEG has no alpha and no 16-bit samples: those stay PNG.
                if !(*jpeg && img.write_to(&mut out, ImageFormat::Jpeg).is_ok()) {
                    out = Cursor::new(Vec::new());
                    img.write_to(&mut out, ImageFormat::Png).unwrap();
                }
                b = out.into_inner();
            }
            Damage::Random(bytes) => b = bytes.clone(),
        }
        b
    }
}

static MASKS: Campaign = Campaign::new("segmentation masks (Dataset::read_mask)", 512);

fn check_mask(record: Index, damage: &Damage) -> Result<(), TestCaseError> {
    let dir = MASKS.dir();
    let ds = Dataset::open(&dir.join(ROOT), Some(&dir.join(SEG))).unwrap();
    let rec = &ds.images[record.index(ds.images.len())];
    let mask_path = ds.mask_path(rec).unwrap();
    let rel = mask_path.strip_prefix(dir).unwrap().to_path_buf();
    let damaged = damage.apply(&pristine()[&rel]);
    let damaged = MASKS.damage(BTreeMap::from([(rel, damaged)]));
    let read = ds.read_mask(rec);
    match &read {
        Ok(mask) => {
            let mask = mask.as_ref().unwrap();
            let (w, h) = image_size(&ds.image_path(rec), rec.id).unwrap();
            prop_assert_eq!((mask.width, mask.height), (w, h));
            prop_assert_eq!(mask.soft.len(), (w * h) as usize);
        }
        Err(e) => {
            assert_named(e, dir)?;
            let msg = e.to_string();
            prop_assert!(msg.contains(&mask_path.display().to_string()), "mask not named: {msg}");
        }
    }
    MASKS.record(damaged, read.is_err());
    Ok(())
}

static IMAGES: Campaign = Campaign::new("images (open_image, decode_rgb, image_size)", 256);

fn check_image(record: Index, png_source: bool, damage: &Damage) -> Result<(), TestCaseError> {
    let ext = if png_source { "png" } else { "jpg" };
    let sources: Vec<&PathBuf> =
        pristine().keys().filter(|p| p.extension().is_some_and(|x| x == ext)).collect();
    let source = sources[record.index(sources.len())];
    let rel = Path::new(ROOT).join("images/damaged.jpg");
    let damaged = IMAGES.damage(BTreeMap::from([(rel.clone(), damage.apply(&pristine()[source]))]));
    let (dir, path) = (IMAGES.dir(), IMAGES.dir().join(rel));
    let id = 4242;
    let named = |e: &CubError| -> Result<(), TestCaseError> {
        assert_named(e, dir)?;
        let msg = e.to_string();
        prop_assert!(msg.contains(&path.display().to_string()), "file not named: {msg}");
        prop_assert!(msg.contains(&format!("image id {id}")), "image id not named: {msg}");
        Ok(())
    };
    let opened = open_image(&path, id);
    let size = image_size(&path, id);
    let rgb = decode_rgb(&path, id);
    for e in [opened.as_ref().err(), size.as_ref().err(), rgb.as_ref().err()].into_iter().flatten()
    {
        named(e)?;
    }
    if let (Ok(img), Ok(size)) = (&opened, &size) {
        prop_assert_eq!((img.width(), img.height()), *size, "header and pixels disagree");
    }
    prop_assert_eq!(opened.is_ok(), rgb.is_ok());
    if let Ok(rgb) = &rgb {
        prop_assert_eq!(rgb.as_raw().len(), 3 * (rgb.width() * rgb.height()) as usize);
    }
    IMAGES.record(damaged, opened.is_err() || size.is_err());
    Ok(())
}

proptest! {
    #![proptest_config(MASKS.config())]

    #[test]
    fn masks_never_panic_and_name_the_image(record in any::<Index>(), damage in damage()) {
        check_mask(record, &damage)?;
    }
}

proptest! {
    #![proptest_config(IMAGES.config())]

    #[test]
    fn images_never_panic_and_name_the_image(
        record in any::<Index>(),
        png_source in any::<bool>(),
        damage in damage(),
    ) {
        check_image(record, png_source, &damage)?;
    }
}

// ---------------------------------------------------------------------------------------------
// 3. SynthCUB's class table.

static CLASS_TABLE: Campaign =
    Campaign::new("synthcub_classes.csv (read_discriminative_parts)", 512);

fn check_class_table(edits: &[Edit]) -> Result<(), TestCaseError> {
    let name = embcam_cub::synth::classes::CLASS_TABLE;
    let mut bytes = original(name).to_vec();
    for e in edits {
        e.apply(&mut bytes, b',');
    }
    let damaged = CLASS_TABLE.damage(BTreeMap::from([(Path::new(ROOT).join(name), bytes)]));
    let dir = CLASS_TABLE.dir();
    let read = read_discriminative_parts(&dir.join(ROOT));
    match &read {
        Ok(parts) => prop_assert!(parts.is_some()),
        Err(e) => {
            assert_named(e, dir)?;
            prop_assert!(matches!(e, CubError::Parse { .. }), "not a line error: {e}");
        }
    }
    CLASS_TABLE.record(damaged, read.is_err());
    Ok(())
}

proptest! {
    #![proptest_config(CLASS_TABLE.config())]

    #[test]
    fn class_table_never_panics_and_names_the_line(edits in prop::collection::vec(edit(), 1..=4)) {
        check_class_table(&edits)?;
    }
}

// ---------------------------------------------------------------------------------------------
// What the fuzzing found, kept as plain tests with the minimal inputs.

/// A copy of the pristine dataset with one file (relative to `CUB_200_2011/`) replaced.
fn copy_with(rel: &str, bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    copy_pristine(dir.path());
    let root = dir.path().join(ROOT);
    std::fs::write(root.join(rel), bytes).unwrap();
    (dir, root)
}

/// Found by `index_files_never_panic_and_name_the_line` (shrunk to byte 0x80 spliced in at the
/// start of `images.txt`): a line that is not UTF-8 was an I/O error naming the file but no line
/// ("stream did not contain valid UTF-8"), and no other line of the file was read.
#[test]
fn a_line_that_is_not_utf8_is_named() {
    let mut bytes = original("image_class_labels.txt").to_vec();
    let second = bytes.iter().position(|&b| b == b'\n').unwrap() + 1;
    bytes.insert(second + 2, 0x80);
    let (_dir, root) = copy_with("image_class_labels.txt", &bytes);
    let err = Dataset::open(&root, None).unwrap_err().to_string();
    assert!(err.contains("image_class_labels.txt:2: not UTF-8 text (byte 3"), "{err}");
    // The other lines still parse: only image 2 lacks its label.
    assert!(err.contains("and 1 more problems"), "{err}");
}

/// Found by `class_table_never_panics_and_names_the_line` (shrunk to byte 0x80 spliced in at
/// the start): the same problem in SynthCUB's class table.
#[test]
fn a_class_table_line_that_is_not_utf8_is_named() {
    let name = embcam_cub::synth::classes::CLASS_TABLE;
    let mut bytes = original(name).to_vec();
    let second = bytes.iter().position(|&b| b == b'\n').unwrap() + 1;
    bytes.insert(second, 0x80);
    let (_dir, root) = copy_with(name, &bytes);
    let err = read_discriminative_parts(&root).unwrap_err().to_string();
    assert!(err.contains("synthcub_classes.csv:2: not UTF-8"), "{err}");
}

/// A byte-order mark (Windows editors write one) is not part of the first id.
#[test]
fn a_byte_order_mark_is_ignored() {
    for name in ["images.txt", embcam_cub::synth::classes::CLASS_TABLE] {
        let bytes = [&[0xEF, 0xBB, 0xBF][..], original(name)].concat();
        let (_dir, root) = copy_with(name, &bytes);
        Dataset::open(&root, None).unwrap();
        assert_eq!(read_discriminative_parts(&root).unwrap().unwrap().len(), 2);
    }
}

/// Found while choosing the fuzz dictionary (the oracle's "every file named lies in the dataset"
/// rejects `/x.jpg`): an image path that leaves `images/` (absolute, or with `..`) was read as
/// given, so `/dev/zero` would have made `validate` read until memory ran out. It is refused at
/// its line before anything is read.
#[test]
fn an_image_path_outside_the_dataset_is_refused() {
    for path in ["/dev/zero", "../../../../dev/zero", "001.Bird/../../x.jpg"] {
        let text = String::from_utf8(original("images.txt").to_vec()).unwrap();
        let (first, rest) = text.split_once('\n').unwrap();
        let line = format!("{} {path}\n{rest}", first.split_once(' ').unwrap().0);
        let (_dir, root) = copy_with("images.txt", line.as_bytes());
        let err = Dataset::open(&root, None).unwrap_err().to_string();
        assert!(err.contains("images.txt:1: image path") && err.contains(path), "{err}");
    }
}
