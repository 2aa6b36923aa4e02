//! Image loading: decode (JPEG/PNG; greyscale and CMYK become RGB), crop + resize to the model's
//! input, optional flip, ImageNet normalisation, and a geometry record per image. Batches are
//! decoded in parallel (rayon) on a background thread that stays a few batches ahead.
//!
//! Transforms (both produce an integer crop region of the original, resized with a triangle
//! filter, which antialiases when shrinking; see [`crate::Geometry`]):
//! - eval: shorter side to `resize`, centre crop `size × size` (or, with `crop = false`, the
//!   whole image squashed to `size × size`, so no part of the bird is cut off);
//! - train: torchvision's `RandomResizedCrop(size, scale, ratio)` and a horizontal flip with
//!   probability ½, drawn from a generator seeded by (seed, epoch, image id) so that a run is
//!   reproducible whatever the thread schedule.

use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, sync_channel};

use image::{DynamicImage, RgbImage, imageops};
use rand::{Rng, SeedableRng, rngs::StdRng};
use rayon::prelude::*;

use crate::dataset::{Dataset, ImageRecord};
use crate::error::{CubError, Result};
use crate::geometry::{CropRegion, Geometry};

/// ImageNet channel means (RGB), applied after scaling pixels to [0, 1].
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations (RGB).
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// An image file's I/O error, naming the image id.
fn unreadable(path: &Path, id: u32) -> impl FnOnce(std::io::Error) -> CubError {
    move |source| CubError::ImageFile { id, path: path.to_path_buf(), source }
}

/// Read and decode an image file. A missing or unreadable file is an error naming the image id
/// and the file; a damaged or truncated one a decode error naming both.
///
/// JPEG decoders fill a truncated scan with grey and succeed, so a JPEG is first walked marker by
/// marker ([`jpeg_truncation`]): one that ends before its end-of-image marker is refused. Bytes
/// after that marker (zero padding, a camera maker's trailer) are ignored, as every common decoder
/// ignores them.
pub fn open_image(path: &Path, id: u32) -> Result<DynamicImage> {
    let bytes = std::fs::read(path).map_err(unreadable(path, id))?;
    let bad = |msg: String| CubError::Decode { id, path: path.to_path_buf(), msg };
    if bytes.starts_with(&[0xFF, 0xD8])
        && let Some(msg) = jpeg_truncation(&bytes)
    {
        return Err(bad(msg));
    }
    image::load_from_memory(&bytes).map_err(|e| bad(e.to_string()))
}

/// Whether a JPEG stream (`bytes` starting with the start-of-image marker `FF D8`) ends before its
/// end-of-image marker `FF D9`: `Some(what ran out)` when it does, `None` when the marker is there
/// (whatever follows it) or the stream is too malformed to tell, which the decoder then reports.
///
/// The walk follows the stream's syntax (ITU-T T.81, annex B) the way libjpeg's marker reader
/// does: a marker is `FF` (any number of `FF` fill bytes) and a code; `00` (a stuffed data byte),
/// `01` (TEM), `D0`–`D7` (restart) and `D8` stand alone; every other marker carries a big-endian
/// length `L ≥ 2` that counts itself and the segment's data, which is skipped whole (so an EXIF
/// thumbnail's own `FF D9` inside `APP1` is never mistaken for the end). Between segments, i.e. in
/// a scan's entropy-coded data and in stray bytes lenient decoders skip, every byte up to the next
/// `FF` is passed over. The stream ends at the first `FF D9` reached this way.
pub fn jpeg_truncation(bytes: &[u8]) -> Option<String> {
    let n = bytes.len();
    let ran_out = |inside: &str| {
        Some(format!(
            "truncated JPEG: the file ends ({n} bytes) inside {inside}, before the end-of-image \
             marker FF D9"
        ))
    };
    let mut inside = "the headers";
    let mut i = 2; // past FF D8
    loop {
        while i < n && bytes[i] != 0xFF {
            i += 1;
        }
        while i < n && bytes[i] == 0xFF {
            i += 1;
        }
        let Some(&code) = bytes.get(i) else { return ran_out(inside) };
        i += 1;
        match code {
            0xD9 => return None,
            0x00 | 0x01 | 0xD0..=0xD8 => {}
            _ => {
                let Some(&[hi, lo]) = bytes.get(i..i + 2) else {
                    return ran_out(&format!("the length of marker FF {code:02X}"));
                };
                let len = usize::from(u16::from_be_bytes([hi, lo]));
                if len < 2 {
                    return None; // a bogus length: the decoder's error says more
                }
                if i + len > n {
                    return ran_out(&format!("the segment of marker FF {code:02X}"));
                }
                i += len;
                inside = if code == 0xDA { "a scan's entropy-coded data" } else { "the headers" };
            }
        }
    }
}

/// Decode an image as 8-bit RGB (greyscale, CMYK, 16-bit and alpha images are converted).
pub fn decode_rgb(path: &Path, id: u32) -> Result<RgbImage> {
    Ok(open_image(path, id)?.into_rgb8())
}

/// An image's size from its header, without decoding the pixels.
pub fn image_size(path: &Path, id: u32) -> Result<(u32, u32)> {
    let reader = image::ImageReader::open(path).map_err(unreadable(path, id))?;
    let reader = reader.with_guessed_format().map_err(unreadable(path, id))?;
    reader.into_dimensions().map_err(|e| CubError::Decode {
        id,
        path: path.to_path_buf(),
        msg: e.to_string(),
    })
}

/// The evaluation transform.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EvalTransform {
    /// Output side (the input is `size × size`).
    pub size: u32,
    /// Shorter side before the centre crop (torchvision's 256 for 224); ignored without `crop`.
    pub resize: u32,
    /// Centre crop (`true`) or squash the whole image (`false`).
    pub crop: bool,
}

impl EvalTransform {
    /// Resize + centre crop with torchvision's 256/224 ratio.
    pub fn center_crop(size: u32) -> Self {
        EvalTransform { size, resize: (size as f32 * 256.0 / 224.0).round() as u32, crop: true }
    }
    /// The whole image squashed to `size × size`.
    pub fn squash(size: u32) -> Self {
        EvalTransform { size, resize: size, crop: false }
    }
}

/// The training augmentation: random resized crop and horizontal flip.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainTransform {
    /// Output side.
    pub size: u32,
    /// Range of the crop's area as a fraction of the image (torchvision: 0.08–1).
    pub scale: (f32, f32),
    /// Range of the crop's aspect ratio w/h (torchvision: 3/4–4/3).
    pub ratio: (f32, f32),
    /// Flip horizontally with probability ½.
    pub flip: bool,
    /// Seed of the augmentation; combined with the epoch and the image id.
    pub seed: u64,
}

impl TrainTransform {
    /// Defaults suited to birds (a crop keeps at least 35% of the image).
    pub fn new(size: u32, seed: u64) -> Self {
        TrainTransform { size, scale: (0.35, 1.0), ratio: (3.0 / 4.0, 4.0 / 3.0), flip: true, seed }
    }
}

/// A transform from an original image to a model input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Transform {
    /// Deterministic: resize (+ centre crop).
    Eval(EvalTransform),
    /// Random resized crop + flip, seeded.
    Train(TrainTransform),
}

impl Transform {
    /// Input side.
    pub fn size(&self) -> u32 {
        match self {
            Transform::Eval(t) => t.size,
            Transform::Train(t) => t.size,
        }
    }

    /// The crop region and flip for an image of `w × h`, the `epoch`-th time image `id` is drawn.
    pub fn plan(&self, w: u32, h: u32, id: u32, epoch: u64) -> (CropRegion, bool) {
        match *self {
            Transform::Eval(t) if !t.crop => (CropRegion { x: 0, y: 0, w, h }, false),
            Transform::Eval(t) => {
                let s = t.resize as f32 / w.min(h) as f32;
                let cw = ((t.size as f32 / s).round() as u32).clamp(1, w);
                let ch = ((t.size as f32 / s).round() as u32).clamp(1, h);
                (CropRegion { x: (w - cw) / 2, y: (h - ch) / 2, w: cw, h: ch }, false)
            }
            Transform::Train(t) => {
                let mut rng = StdRng::seed_from_u64(mix(t.seed ^ mix(epoch ^ mix(id as u64))));
                let region = random_resized_crop(&mut rng, w, h, t.scale, t.ratio);
                (region, t.flip && rng.random_bool(0.5))
            }
        }
    }

    /// Where the model input of image `id` (`w × h`) comes from in the original image, the
    /// `epoch`-th time it is drawn: the loader's [`Transform::plan`] and geometry, without
    /// decoding the image.
    pub fn geometry(&self, w: u32, h: u32, id: u32, epoch: u64) -> Geometry {
        let (region, flip) = self.plan(w, h, id, epoch);
        let size = self.size();
        Geometry::from_crop(w, h, region, size, size, flip)
    }
}

/// SplitMix64's finaliser: decorrelates nearby seeds.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// torchvision's `RandomResizedCrop.get_params`: ten tries at a random area and log-uniform
/// aspect ratio, then a centre crop clamped to the ratio range.
fn random_resized_crop(
    rng: &mut StdRng,
    w: u32,
    h: u32,
    scale: (f32, f32),
    ratio: (f32, f32),
) -> CropRegion {
    let area = (w * h) as f32;
    let (lr0, lr1) = (ratio.0.ln(), ratio.1.ln());
    for _ in 0..10 {
        let target = area * rng.random_range(scale.0..=scale.1);
        let aspect = rng.random_range(lr0..=lr1).exp();
        let cw = (target * aspect).sqrt().round() as u32;
        let ch = (target / aspect).sqrt().round() as u32;
        if cw > 0 && ch > 0 && cw <= w && ch <= h {
            let x = rng.random_range(0..=w - cw);
            let y = rng.random_range(0..=h - ch);
            return CropRegion { x, y, w: cw, h: ch };
        }
    }
    let in_ratio = w as f32 / h as f32;
    let (cw, ch) = if in_ratio < ratio.0 {
        (w, ((w as f32 / ratio.0).round() as u32).clamp(1, h))
    } else if in_ratio > ratio.1 {
        (((h as f32 * ratio.1).round() as u32).clamp(1, w), h)
    } else {
        (w, h)
    };
    CropRegion { x: (w - cw) / 2, y: (h - ch) / 2, w: cw, h: ch }
}

/// One image ready for a model.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedImage {
    /// Image id.
    pub id: u32,
    /// Class id.
    pub class_id: u32,
    /// `[3, size, size]` pixels, ImageNet-normalised, row-major per channel.
    pub chw: Vec<f32>,
    /// How the input relates to the original image.
    pub geometry: Geometry,
}

/// Apply a planned crop/flip to a decoded image: the transformed RGB image and its geometry.
pub fn apply(img: &RgbImage, region: CropRegion, flip: bool, size: u32) -> (RgbImage, Geometry) {
    let crop = imageops::crop_imm(img, region.x, region.y, region.w, region.h).to_image();
    let mut out = imageops::resize(&crop, size, size, imageops::FilterType::Triangle);
    if flip {
        imageops::flip_horizontal_in_place(&mut out);
    }
    (out, Geometry::from_crop(img.width(), img.height(), region, size, size, flip))
}

/// RGB bytes → `[3, H, W]` floats, `(v/255 − mean) / std` per channel.
pub fn normalize(img: &RgbImage) -> Vec<f32> {
    let n = (img.width() * img.height()) as usize;
    let mut out = vec![0.0; 3 * n];
    for (k, px) in img.pixels().enumerate() {
        for c in 0..3 {
            out[c * n + k] = (px[c] as f32 / 255.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c];
        }
    }
    out
}

/// Load one image of the dataset through a transform.
pub fn load_image(
    ds: &Dataset,
    rec: &ImageRecord,
    transform: &Transform,
    epoch: u64,
) -> Result<LoadedImage> {
    let img = decode_rgb(&ds.image_path(rec), rec.id)?;
    let (region, flip) = transform.plan(img.width(), img.height(), rec.id, epoch);
    let (input, geometry) = apply(&img, region, flip, transform.size());
    Ok(LoadedImage { id: rec.id, class_id: rec.class_id, chw: normalize(&input), geometry })
}

/// A batch of images in one buffer.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Image ids, in batch order.
    pub ids: Vec<u32>,
    /// Class ids.
    pub labels: Vec<u32>,
    /// `[B, 3, H, W]` normalised pixels.
    pub pixels: Vec<f32>,
    /// Input height.
    pub height: u32,
    /// Input width.
    pub width: u32,
    /// One geometry record per image.
    pub geometries: Vec<Geometry>,
}

impl Batch {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.ids.len()
    }
    /// Whether the batch holds no image.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// Load the images `indices` (into [`Dataset::images`]) as one batch, decoding in parallel.
pub fn load_batch(
    ds: &Dataset,
    indices: &[usize],
    transform: &Transform,
    epoch: u64,
) -> Result<Batch> {
    let images: Vec<LoadedImage> = indices
        .par_iter()
        .map(|&k| load_image(ds, &ds.images[k], transform, epoch))
        .collect::<Result<_>>()?;
    let size = transform.size();
    let mut batch = Batch {
        ids: Vec::with_capacity(images.len()),
        labels: Vec::with_capacity(images.len()),
        pixels: Vec::with_capacity(images.len() * 3 * (size * size) as usize),
        height: size,
        width: size,
        geometries: Vec::with_capacity(images.len()),
    };
    for img in images {
        batch.ids.push(img.id);
        batch.labels.push(img.class_id);
        batch.pixels.extend_from_slice(&img.chw);
        batch.geometries.push(img.geometry);
    }
    Ok(batch)
}

/// An iterator over batches, decoded on a background thread that stays `prefetch` batches ahead.
/// Dropping it stops the thread after the batch in flight.
pub struct BatchLoader {
    rx: Receiver<Result<Batch>>,
}

impl BatchLoader {
    /// Load `batches` (each a list of indices into [`Dataset::images`]) in order.
    pub fn new(
        ds: Arc<Dataset>,
        batches: Vec<Vec<usize>>,
        transform: Transform,
        epoch: u64,
        prefetch: usize,
    ) -> Self {
        let (tx, rx) = sync_channel(prefetch.max(1));
        std::thread::spawn(move || {
            for indices in batches {
                if tx.send(load_batch(&ds, &indices, &transform, epoch)).is_err() {
                    break; // the consumer is gone
                }
            }
        });
        BatchLoader { rx }
    }

    /// Consecutive batches of `batch_size` over `indices` (the last one may be shorter).
    pub fn sequential(
        ds: Arc<Dataset>,
        indices: &[usize],
        batch_size: usize,
        transform: Transform,
    ) -> Self {
        let batches = indices.chunks(batch_size.max(1)).map(<[usize]>::to_vec).collect();
        BatchLoader::new(ds, batches, transform, 0, 2)
    }
}

impl Iterator for BatchLoader {
    type Item = Result<Batch>;
    fn next(&mut self) -> Option<Self::Item> {
        self.rx.recv().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 24×16 baseline JPEG of a colour gradient, encoded here.
    fn jpeg() -> Vec<u8> {
        let img =
            RgbImage::from_fn(24, 16, |x, y| image::Rgb([(x * 10) as u8, (y * 15) as u8, 99]));
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Jpeg).expect("encode a JPEG");
        out.into_inner()
    }

    /// `open_image` on `bytes` written to a file, as image id 7.
    fn open(bytes: &[u8]) -> Result<DynamicImage> {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("x.jpg");
        std::fs::write(&path, bytes).expect("write the file");
        open_image(&path, 7)
    }

    #[test]
    fn bytes_after_the_end_of_image_marker_are_ignored() {
        let whole = jpeg();
        let pixels = open(&whole).expect("a complete JPEG").into_rgb8();
        // Zero padding, and a maker trailer holding markers of its own (even another FF D8).
        let maker = [&b"\xFF\xD8\xFF\xE1maker\xFF\x00\xFF\xC4"[..], &[0xAB; 300]].concat();
        for trailer in [vec![0u8; 100], vec![0u8; 10_000], maker] {
            let padded = [&whole[..], &trailer[..]].concat();
            let img =
                open(&padded).unwrap_or_else(|e| panic!("{} trailing bytes: {e}", trailer.len()));
            assert_eq!(img.into_rgb8(), pixels, "{} trailing bytes", trailer.len());
        }
    }

    #[test]
    fn a_cut_jpeg_is_refused_naming_the_image() {
        let whole = jpeg();
        let n = whole.len();
        // In the middle of the scan; just the final FF D9 missing; cut and then zero-padded back
        // to more than its size (the old test looked only at the last 64 bytes); in the headers.
        for (cut, pad) in [(n / 2, 0), (n - 2, 0), (n / 2, 10_000), (20, 0)] {
            let bytes = [&whole[..cut], &vec![0u8; pad][..]].concat();
            let err = open(&bytes).expect_err("a truncated JPEG must be refused");
            assert!(matches!(err, CubError::Decode { id: 7, .. }), "cut {cut}: {err}");
            assert!(err.to_string().contains("truncated JPEG"), "cut {cut}: {err}");
        }
    }

    #[test]
    fn marker_walk_follows_the_jpeg_syntax() {
        // A hand-made stream (only the structure matters to the walk):
        let stream: Vec<u8> = [
            &[0xFF, 0xD8][..], // SOI
            // APP1, L = 10 (2 + 8 data bytes): a thumbnail with its own SOI … EOI, skipped whole.
            &[0xFF, 0xE1, 0x00, 0x0A, 0xFF, 0xD8, 0x01, 0x02, 0xFF, 0xD9, 0x03, 0x04],
            // SOF2, L = 4: data bytes that look like EOI.
            &[0xFF, 0xC2, 0x00, 0x04, 0xFF, 0xD9],
            // SOS, L = 3; entropy-coded data with a stuffed FF 00 and a restart marker FF D0.
            &[0xFF, 0xDA, 0x00, 0x03, 0x01, 0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD0, 0x56],
            // Fill bytes, then DHT (L = 2) between scans; a second scan.
            &[0xFF, 0xFF, 0xFF, 0xC4, 0x00, 0x02, 0xFF, 0xDA, 0x00, 0x02, 0x78],
            &[0xFF, 0xD9], // EOI
        ]
        .concat();
        assert_eq!(jpeg_truncation(&stream), None);
        let trailer = [&stream[..], &[0u8; 100][..], &[0xFF, 0xD8, 0xFF][..]].concat();
        assert_eq!(jpeg_truncation(&trailer), None);
        // Every cut before the final FF D9 is complete is truncated.
        for cut in 2..stream.len() {
            let msg = jpeg_truncation(&stream[..cut]).unwrap_or_else(|| panic!("cut at {cut}"));
            assert!(msg.starts_with("truncated JPEG"), "{msg}");
        }
        let msg = jpeg_truncation(&stream[..17]).expect("cut inside SOF2");
        assert!(msg.contains("marker FF C2"), "{msg}");
        let msg = jpeg_truncation(&stream[..27]).expect("cut in the scan");
        assert!(msg.contains("entropy-coded data"), "{msg}");
        // A length below 2 is malformed, not truncated: left to the decoder.
        assert_eq!(jpeg_truncation(&[0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x01]), None);
    }

    /// [`Transform::geometry`] computes an image's geometry from its size instead of decoding it;
    /// it must be the loader's, for both evaluation transforms.
    #[test]
    fn geometry_from_the_size_is_the_loaders() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let cfg = crate::synth::SynthConfig {
            classes: 2,
            images_per_class: 3,
            min_side: 60,
            max_side: 90,
            seed: 3,
            ..Default::default()
        };
        let s = crate::synth::generate(dir.path(), &cfg, &crate::Silent).expect("generated");
        let ds = Dataset::open(&s.root, Some(&s.segmentations)).expect("opened");
        let all: Vec<usize> = (0..ds.images.len()).collect();
        for t in [EvalTransform::center_crop(40), EvalTransform::squash(40)] {
            let transform = Transform::Eval(t);
            let batch = load_batch(&ds, &all, &transform, 0).expect("loaded");
            for (k, rec) in ds.images.iter().enumerate() {
                let (width, height) = image_size(&ds.image_path(rec), rec.id).expect("a size");
                let g = transform.geometry(width, height, rec.id, 0);
                assert_eq!(g, batch.geometries[k], "image {}", rec.id);
            }
        }
    }

    #[test]
    fn eval_crop_is_centred_and_square() {
        let t = Transform::Eval(EvalTransform::center_crop(224));
        let (r, flip) = t.plan(500, 375, 1, 0);
        // shorter side 375 → 256: s = 256/375, crop side = 224/s = 328.125 → 328.
        assert_eq!(r, CropRegion { x: 86, y: 23, w: 328, h: 328 });
        assert!(!flip);
    }

    #[test]
    fn train_plan_is_seeded_and_inside() {
        let t = Transform::Train(TrainTransform::new(64, 7));
        let mut flips = 0;
        for id in 0..200 {
            let (r, flip) = t.plan(120, 90, id, 3);
            assert_eq!((r, flip), t.plan(120, 90, id, 3));
            assert!(r.x + r.w <= 120 && r.y + r.h <= 90 && r.w > 0 && r.h > 0);
            let frac = (r.w * r.h) as f32 / (120.0 * 90.0);
            assert!((0.3..=1.0).contains(&frac), "{frac}");
            flips += flip as u32;
        }
        assert!((60..140).contains(&flips), "flip rate off: {flips}/200");
        assert_ne!(t.plan(120, 90, 5, 0), t.plan(120, 90, 5, 1), "epochs must differ");
    }

    #[test]
    fn normalize_is_per_channel() {
        let img = RgbImage::from_raw(2, 1, vec![255, 0, 0, 0, 255, 0]).expect("2×1 buffer");
        let v = normalize(&img);
        assert!((v[0] - (1.0 - 0.485) / 0.229).abs() < 1e-6); // R of pixel 0
        assert!((v[1] - (0.0 - 0.485) / 0.229).abs() < 1e-6); // R of pixel 1
        assert!((v[3] - (1.0 - 0.456) / 0.224).abs() < 1e-6); // G of pixel 1
    }

    #[test]
    fn applied_geometry_matches_pixels() {
        // A single white pixel in a black image must land where the geometry says.
        let mut img = RgbImage::new(200, 100);
        img.put_pixel(150, 40, image::Rgb([255, 255, 255]));
        for flip in [false, true] {
            let region = CropRegion { x: 100, y: 0, w: 100, h: 100 };
            let (out, g) = apply(&img, region, flip, 100);
            let (u, v) = g.to_input(150.5, 40.5);
            let brightest = out
                .enumerate_pixels()
                .max_by_key(|(_, _, p)| p[0])
                .map(|(x, y, _)| (x, y))
                .expect("non-empty");
            assert_eq!(brightest, (u.floor() as u32, v.floor() as u32), "flip={flip}");
        }
    }
}
