//! Pictures: a perceptual colormap, heatmaps over the original image with the ground-truth box
//! and mask contour drawn, and galleries (images × method·proxy) for a chosen set of images.
//!
//! Colormaps are matplotlib's viridis and inferno, as the degree-6 polynomial fits of Matt
//! Zucconi / mattz (shadertoy `WlfXRN`, public domain); the tests check them against
//! matplotlib's published values at 0, ½ and 1 to within 4/255.
//!
//! Every file is written atomically (temporary name, then rename) into a folder the caller gives.

use std::io::Cursor;
use std::path::Path;

use embcam_cub::{BBox, DEFAULT_MASK_THRESHOLD, Mask};
use image::imageops::FilterType;
use image::{ImageFormat, Rgb, RgbImage};
use rayon::prelude::*;

use crate::error::{CamError, Result};
use crate::maps::max_normalize;
use crate::util;

/// A perceptually uniform colormap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Colormap {
    /// matplotlib's viridis (dark blue → yellow).
    #[default]
    Viridis,
    /// matplotlib's inferno (black → pale yellow).
    Inferno,
}

const VIRIDIS: [[f64; 3]; 7] = [
    [0.277_727_327_223_417_7, 0.005_407_344_544_966_578, 0.334_099_805_335_306_1],
    [0.105_093_043_108_577_4, 1.404_613_529_898_575, 1.384_590_162_594_685],
    [-0.330_861_828_725_556_3, 0.214_847_559_468_213, 0.095_095_163_028_236_59],
    [-4.634_230_498_983_486, -5.799_100_973_351_585, -19.332_440_956_279_87],
    [6.228_269_936_347_081, 14.179_933_366_805_09, 56.690_552_600_681_05],
    [4.776_384_997_670_288, -13.745_145_377_746_01, -65.353_032_633_372_34],
    [-5.435_455_855_934_631, 4.645_852_612_178_535, 26.312_435_249_583_2],
];

const INFERNO: [[f64; 3]; 7] = [
    [0.000_218_940_369_119_226_5, 0.001_651_004_631_001_012, -0.019_480_898_437_091_84],
    [0.106_513_419_485_611_6, 0.563_956_436_788_409_1, 3.932_712_388_889_277],
    [11.602_493_082_471_87, -3.972_853_965_665_698, -15.942_394_106_291_4],
    [-41.703_996_131_394_59, 17.436_398_882_053_13, 44.354_145_198_728_13],
    [77.162_935_699_427, -33.402_358_942_100_92, -81.807_309_257_389_93],
    [-71.319_428_244_992_14, 32.626_064_263_977_23, 73.209_519_858_032_02],
    [25.131_126_224_773_41, -12.242_668_952_385_67, -23.070_325_002_871_72],
];

impl Colormap {
    /// The colour of `t ∈ [0, 1]` (clamped; NaN maps to 0).
    pub fn rgb(self, t: f32) -> [u8; 3] {
        let t = if t.is_nan() { 0.0 } else { t.clamp(0.0, 1.0) as f64 };
        let c = match self {
            Colormap::Viridis => &VIRIDIS,
            Colormap::Inferno => &INFERNO,
        };
        let mut out = [0u8; 3];
        for (ch, o) in out.iter_mut().enumerate() {
            let v = c.iter().rev().fold(0.0, |acc, coef| acc * t + coef[ch]);
            *o = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
        }
        out
    }
}

/// How an overlay is drawn.
#[derive(Clone, Debug)]
pub struct OverlayStyle {
    /// The colormap.
    pub colormap: Colormap,
    /// Weight of the heatmap colour: `out = (1 − opacity) · image + opacity · colour`.
    pub opacity: f32,
    /// Colour of the ground-truth box outline.
    pub box_color: [u8; 3],
    /// Colour of the mask contour.
    pub contour_color: [u8; 3],
    /// Foreground threshold of the soft mask.
    pub mask_threshold: u8,
    /// Line thickness in pixels.
    pub line: u32,
}

impl Default for OverlayStyle {
    /// Viridis at opacity 0.5, a white box, a red contour, mask threshold 128, 2-pixel lines.
    fn default() -> Self {
        OverlayStyle {
            colormap: Colormap::Viridis,
            opacity: 0.5,
            box_color: [255, 255, 255],
            contour_color: [255, 40, 40],
            mask_threshold: DEFAULT_MASK_THRESHOLD,
            line: 2,
        }
    }
}

/// The heatmap `heat` (original-image pixels, row-major, any non-negative scale: it is
/// max-normalised) over `image`, with the box outline and the mask contour when given.
pub fn overlay(
    image: &RgbImage,
    heat: &[f32],
    bbox: Option<&BBox>,
    mask: Option<&Mask>,
    style: &OverlayStyle,
) -> Result<RgbImage> {
    let (w, h) = image.dimensions();
    if heat.len() != (w * h) as usize {
        return Err(CamError::Shape(format!(
            "heatmap of {} values over a {w}×{h} image",
            heat.len()
        )));
    }
    if let Some(m) = mask
        && (m.width, m.height) != (w, h)
    {
        return Err(CamError::Shape(format!("mask {}×{} over a {w}×{h} image", m.width, m.height)));
    }
    let norm = max_normalize(heat);
    let a = style.opacity.clamp(0.0, 1.0);
    let mut out = image.clone();
    for (i, px) in out.pixels_mut().enumerate() {
        let c = style.colormap.rgb(norm[i]);
        for (v, &cv) in px.0.iter_mut().zip(&c) {
            *v = ((1.0 - a) * *v as f32 + a * cv as f32).round() as u8;
        }
    }
    if let Some(m) = mask {
        let fg = m.binary(style.mask_threshold);
        let at = |x: i64, y: i64| {
            x >= 0 && y >= 0 && x < w as i64 && y < h as i64 && fg[(y * w as i64 + x) as usize]
        };
        let r = style.line.max(1) as i64 - 1;
        let mut edge = Vec::new();
        for y in 0..h as i64 {
            for x in 0..w as i64 {
                if at(x, y) && (!at(x - 1, y) || !at(x + 1, y) || !at(x, y - 1) || !at(x, y + 1)) {
                    edge.push((x, y));
                }
            }
        }
        for (x, y) in edge {
            for dy in -r..=r {
                for dx in -r..=r {
                    let (px, py) = (x + dx, y + dy);
                    if px >= 0 && py >= 0 && px < w as i64 && py < h as i64 {
                        out.put_pixel(px as u32, py as u32, Rgb(style.contour_color));
                    }
                }
            }
        }
    }
    if let Some(b) = bbox {
        draw_box(&mut out, &b.clip(w, h), style.box_color, style.line.max(1));
    }
    Ok(out)
}

/// Outline `b` (pixel-edge coordinates) with `line`-pixel strokes inside the box.
fn draw_box(img: &mut RgbImage, b: &BBox, color: [u8; 3], line: u32) {
    let (w, h) = img.dimensions();
    if w == 0 || h == 0 || b.w <= 0.0 || b.h <= 0.0 {
        return;
    }
    let x0 = (b.x.floor() as u32).min(w - 1);
    let y0 = (b.y.floor() as u32).min(h - 1);
    let x1 = ((b.x1().ceil() as u32).max(1) - 1).min(w - 1);
    let y1 = ((b.y1().ceil() as u32).max(1) - 1).min(h - 1);
    for t in 0..line {
        for x in x0..=x1 {
            img.put_pixel(x, (y0 + t).min(y1), Rgb(color));
            img.put_pixel(x, y1.saturating_sub(t).max(y0), Rgb(color));
        }
        for y in y0..=y1 {
            img.put_pixel((x0 + t).min(x1), y, Rgb(color));
            img.put_pixel(x1.saturating_sub(t).max(x0), y, Rgb(color));
        }
    }
}

/// Encode `img` as PNG and write it atomically to `path`.
pub fn write_png(path: &Path, img: &RgbImage) -> Result<()> {
    let mut bytes = Vec::new();
    img.write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png)
        .map_err(|source| CamError::Image { path: path.to_path_buf(), source })?;
    util::write_atomic(path, &bytes)
}

/// A grid of tiles: `tiles[row][col]`, each resized to `tile × tile` (aspect kept, centred on a
/// dark background), `gap` pixels apart. Rows may differ in length; missing cells stay dark.
pub fn gallery(tiles: &[Vec<RgbImage>], tile: u32, gap: u32) -> Result<RgbImage> {
    let rows = tiles.len() as u32;
    let cols = tiles.iter().map(|r| r.len()).max().unwrap_or(0) as u32;
    if rows == 0 || cols == 0 || tile == 0 {
        return Err(CamError::Invalid(
            "a gallery needs at least one tile and a tile size > 0".into(),
        ));
    }
    let (gw, gh) = (cols * tile + (cols + 1) * gap, rows * tile + (rows + 1) * gap);
    let mut out = RgbImage::from_pixel(gw, gh, Rgb([24, 24, 24]));
    let resized: Vec<Vec<RgbImage>> =
        tiles.par_iter().map(|row| row.iter().map(|t| fit(t, tile)).collect()).collect();
    for (r, row) in resized.iter().enumerate() {
        for (c, t) in row.iter().enumerate() {
            let x = gap + c as u32 * (tile + gap) + (tile - t.width()) / 2;
            let y = gap + r as u32 * (tile + gap) + (tile - t.height()) / 2;
            image::imageops::replace(&mut out, t, x as i64, y as i64);
        }
    }
    Ok(out)
}

/// `img` scaled to fit a `tile × tile` square, aspect kept.
fn fit(img: &RgbImage, tile: u32) -> RgbImage {
    let (w, h) = img.dimensions();
    if w == 0 || h == 0 {
        return RgbImage::new(1, 1);
    }
    let s = tile as f32 / w.max(h) as f32;
    let (nw, nh) = (
        ((w as f32 * s).round() as u32).clamp(1, tile),
        ((h as f32 * s).round() as u32).clamp(1, tile),
    );
    image::imageops::resize(img, nw, nh, FilterType::Triangle)
}

/// The CSV index of a gallery, `row,col,image_id,method,proxy`: what each cell shows.
pub fn gallery_index(cells: &[Vec<(u32, String, String, RgbImage)>]) -> String {
    let mut text = String::from("row,col,image_id,method,proxy\n");
    for (r, row) in cells.iter().enumerate() {
        for (c, (id, method, proxy, _)) in row.iter().enumerate() {
            text.push_str(&format!("{r},{c},{id},{method},{proxy}\n"));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: [u8; 3], b: [u8; 3], tol: i32) -> bool {
        a.iter().zip(&b).all(|(&x, &y)| (x as i32 - y as i32).abs() <= tol)
    }

    #[test]
    fn colormaps_match_matplotlib() {
        // matplotlib: viridis(0) = #440154, viridis(0.5) = #21918c, viridis(1) = #fde725;
        // inferno(0) = #000004, inferno(0.5) = #bc3754, inferno(1) = #fcffa4.
        let v = Colormap::Viridis;
        assert!(close(v.rgb(0.0), [0x44, 0x01, 0x54], 4), "{:?}", v.rgb(0.0));
        assert!(close(v.rgb(0.5), [0x21, 0x91, 0x8c], 4), "{:?}", v.rgb(0.5));
        assert!(close(v.rgb(1.0), [0xfd, 0xe7, 0x25], 4), "{:?}", v.rgb(1.0));
        let i = Colormap::Inferno;
        assert!(close(i.rgb(0.0), [0x00, 0x00, 0x04], 4), "{:?}", i.rgb(0.0));
        assert!(close(i.rgb(0.5), [0xbc, 0x37, 0x54], 4), "{:?}", i.rgb(0.5));
        assert!(close(i.rgb(1.0), [0xfc, 0xff, 0xa4], 4), "{:?}", i.rgb(1.0));
        // Perceptual: luminance increases monotonically.
        for cm in [v, i] {
            let lum =
                |c: [u8; 3]| 0.2126 * c[0] as f32 + 0.7152 * c[1] as f32 + 0.0722 * c[2] as f32;
            let l: Vec<f32> = (0..=20).map(|k| lum(cm.rgb(k as f32 / 20.0))).collect();
            assert!(l.windows(2).all(|w| w[1] >= w[0] - 0.5), "{cm:?} {l:?}");
        }
    }

    #[test]
    fn overlay_draws_box_and_contour() {
        let img = RgbImage::from_pixel(10, 8, Rgb([100, 100, 100]));
        let mut heat = vec![0.0; 80];
        heat[3 * 10 + 4] = 2.0;
        let mut soft = vec![0u8; 80];
        for y in 2..6 {
            for x in 5..9 {
                soft[y * 10 + x] = 200;
            }
        }
        let mask = Mask { width: 10, height: 8, soft };
        let style = OverlayStyle { line: 1, ..OverlayStyle::default() };
        let b = BBox { x: 1.0, y: 1.0, w: 3.0, h: 3.0 };
        let out =
            overlay(&img, &heat, Some(&b), Some(&mask), &style).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out.get_pixel(1, 1).0, style.box_color);
        assert_eq!(out.get_pixel(3, 3).0, style.box_color);
        assert_eq!(out.get_pixel(5, 2).0, style.contour_color);
        assert_ne!(
            out.get_pixel(6, 3).0,
            style.contour_color,
            "interior of the mask is not contour"
        );
        // Peak pixel: half grey, half the colormap's top colour.
        let top = style.colormap.rgb(1.0);
        let expect: Vec<u8> =
            top.iter().map(|&c| ((100.0 + c as f32) / 2.0).round() as u8).collect();
        assert_eq!(out.get_pixel(4, 3).0.to_vec(), expect);
        assert!(overlay(&img, &heat[..10], None, None, &style).is_err());
    }

    #[test]
    fn gallery_places_tiles() {
        let red = RgbImage::from_pixel(20, 10, Rgb([255, 0, 0]));
        let blue = RgbImage::from_pixel(10, 10, Rgb([0, 0, 255]));
        let g = gallery(&[vec![red.clone(), blue.clone()], vec![blue]], 10, 2)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(g.dimensions(), (2 * 10 + 3 * 2, 2 * 10 + 3 * 2));
        assert_eq!(g.get_pixel(2 + 5, 2 + 5).0, [255, 0, 0]); // red tile, 10×5, centred vertically
        assert_eq!(g.get_pixel(2 + 12 + 5, 2 + 5).0, [0, 0, 255]);
        assert_eq!(g.get_pixel(2 + 12 + 5, 2 + 12 + 5).0, [24, 24, 24]); // missing cell
    }
}
