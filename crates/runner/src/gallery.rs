//! Overlay galleries with their labels drawn in: a header over each column (method, proxy) and
//! the image id left of each row, so a gallery reads without its CSV index (which is still
//! written beside it). Text is rasterised with `ab_glyph` from the embedded DejaVu Sans.

use std::path::Path;

use ab_glyph::{Font, FontRef, PxScale, ScaleFont, point};
use anyhow::{Context, Result};
use image::{Rgb, RgbImage};

/// The embedded font (the one the plots use).
const FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
/// Label text size in pixels.
const TEXT_PX: f32 = 13.0;
/// Space between tiles (as in `embcam_cam::gallery`).
const GAP: u32 = 4;
/// The background the grid is drawn on.
const BACKGROUND: Rgb<u8> = Rgb([24, 24, 24]);
const INK: Rgb<u8> = Rgb([235, 235, 235]);

/// Tiles collected row by row: `(image id, method, proxy, tile)` per cell.
#[derive(Default)]
pub struct Gallery {
    cells: Vec<Vec<(u32, String, String, RgbImage)>>,
    /// Row labels given by [`Gallery::label_row`]; others read `image <id>`.
    labels: Vec<Option<String>>,
}

impl Gallery {
    /// Rows so far.
    pub fn rows(&self) -> usize {
        self.cells.len()
    }

    /// Label row `row` with `text` instead of its image id (rows are created as needed); the
    /// CSV index then gets a `row_label` column.
    pub fn label_row(&mut self, row: usize, text: &str) {
        if self.labels.len() <= row {
            self.labels.resize(row + 1, None);
        }
        self.labels[row] = Some(text.to_string());
        if self.cells.len() <= row {
            self.cells.resize_with(row + 1, Vec::new);
        }
    }

    /// Add a tile to row `row` (rows are created as needed).
    pub fn push(&mut self, row: usize, id: u32, method: &str, proxy: &str, tile: RgbImage) {
        if self.cells.len() <= row {
            self.cells.resize_with(row + 1, Vec::new);
        }
        self.cells[row].push((id, method.to_string(), proxy.to_string(), tile));
    }

    /// Write `<dir>/<name>.png` (labelled grid of `tile`-pixel tiles) and `<dir>/<name>.csv`
    /// (what each cell shows). Nothing is written for an empty gallery.
    pub fn write(&self, dir: &Path, name: &str, tile: u32) -> Result<()> {
        if self.cells.iter().all(Vec::is_empty) {
            return Ok(());
        }
        let tiles: Vec<Vec<RgbImage>> =
            self.cells.iter().map(|r| r.iter().map(|c| c.3.clone()).collect()).collect();
        let grid = embcam_cam::gallery(&tiles, tile, GAP)?;
        // Column headers from the longest row; row labels from each row's image id.
        let widest = self.cells.iter().max_by_key(|r| r.len()).context("a row")?;
        let headers: Vec<[String; 2]> = widest.iter().map(|c| [c.1.clone(), c.2.clone()]).collect();
        let rows: Vec<String> = self
            .cells
            .iter()
            .enumerate()
            .map(|(i, r)| match self.labels.get(i).cloned().flatten() {
                Some(text) => text,
                None => r.first().map(|c| format!("image {}", c.0)).unwrap_or_default(),
            })
            .collect();
        let labelled = label(&grid, tile, &headers, &rows)?;
        embcam_cam::write_png(&dir.join(format!("{name}.png")), &labelled)?;
        let mut index = embcam_cam::gallery_index(&self.cells);
        if !self.labels.is_empty() {
            // `row,col,image_id,method,proxy` + the row's label, quoted by the csv writer.
            let mut w = csv::Writer::from_writer(Vec::new());
            for (i, line) in index.lines().enumerate() {
                let mut rec: Vec<String> = line.split(',').map(str::to_string).collect();
                let row: Option<usize> = rec.first().and_then(|r| r.parse().ok());
                rec.push(match row {
                    None if i == 0 => "row_label".to_string(),
                    r => r.and_then(|r| self.labels.get(r).cloned().flatten()).unwrap_or_default(),
                });
                w.write_record(&rec)?;
            }
            index = String::from_utf8(w.into_inner()?)?;
        }
        crate::store::write_atomic(&dir.join(format!("{name}.csv")), index.as_bytes())
    }
}

/// `grid` with a header band (two lines per column) above and a label column to its left.
fn label(grid: &RgbImage, tile: u32, headers: &[[String; 2]], rows: &[String]) -> Result<RgbImage> {
    let font = FontRef::try_from_slice(FONT).context("the embedded font")?;
    let line = (TEXT_PX * 1.3).ceil() as u32;
    let left =
        rows.iter().map(|r| text_width(&font, r)).fold(0.0, f32::max).ceil() as u32 + 2 * GAP;
    let top = 2 * line + GAP;
    let mut out = RgbImage::from_pixel(grid.width() + left, grid.height() + top, BACKGROUND);
    image::imageops::replace(&mut out, grid, left as i64, top as i64);
    for (c, lines) in headers.iter().enumerate() {
        let x0 = left + GAP + c as u32 * (tile + GAP);
        for (k, text) in lines.iter().enumerate() {
            let text = fit_text(&font, text, tile as f32);
            let x = x0 as f32 + (tile as f32 - text_width(&font, &text)) / 2.0;
            draw_text(&mut out, &font, x, (GAP + k as u32 * line) as f32, &text);
        }
    }
    for (r, text) in rows.iter().enumerate() {
        let y = top + GAP + r as u32 * (tile + GAP) + tile / 2 - line / 2;
        draw_text(&mut out, &font, GAP as f32, y as f32, text);
    }
    Ok(out)
}

/// The advance width of `text` in pixels.
fn text_width(font: &FontRef<'_>, text: &str) -> f32 {
    let scaled = font.as_scaled(PxScale::from(TEXT_PX));
    text.chars().map(|ch| scaled.h_advance(scaled.glyph_id(ch))).sum()
}

/// `text`, shortened with an ellipsis until it fits `width` pixels.
fn fit_text(font: &FontRef<'_>, text: &str, width: f32) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    let mut out = text.to_string();
    while text_width(font, &out) > width && !chars.is_empty() {
        chars.pop();
        out = chars.iter().collect::<String>() + "…";
    }
    out
}

/// Draw `text` with its top-left corner at `(x, y)`, anti-aliased over what is there.
fn draw_text(img: &mut RgbImage, font: &FontRef<'_>, x: f32, y: f32, text: &str) {
    let scaled = font.as_scaled(PxScale::from(TEXT_PX));
    let mut caret = x;
    for ch in text.chars() {
        let id = scaled.glyph_id(ch);
        let glyph = id.with_scale_and_position(TEXT_PX, point(caret, y + scaled.ascent()));
        caret += scaled.h_advance(id);
        let Some(outline) = font.outline_glyph(glyph) else { continue };
        let bounds = outline.px_bounds();
        outline.draw(|gx, gy, coverage| {
            let (px, py) = (bounds.min.x as i64 + gx as i64, bounds.min.y as i64 + gy as i64);
            if px < 0 || py < 0 || px >= img.width() as i64 || py >= img.height() as i64 {
                return;
            }
            let p = img.get_pixel_mut(px as u32, py as u32);
            for c in 0..3 {
                let (under, ink) = (p[c] as f32, INK[c] as f32);
                p[c] = (under + (ink - under) * coverage.clamp(0.0, 1.0)).round() as u8;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn solid(v: u8) -> RgbImage {
        RgbImage::from_pixel(40, 30, Rgb([v, 0, 0]))
    }

    #[test]
    fn labels_add_ink_in_the_margins_and_leave_the_tiles_alone() {
        let dir = tempfile::tempdir().unwrap();
        let mut g = Gallery::default();
        for row in 0..2 {
            g.push(row, 10 + row as u32, "embeddingcam", "normalized-mean", solid(200));
            g.push(row, 10 + row as u32, "gradcam++", "single-point", solid(100));
        }
        g.write(dir.path(), "g", 48).unwrap();
        let img = image::open(dir.path().join("g.png")).unwrap().to_rgb8();
        let grid = embcam_cam::gallery(
            &g.cells.iter().map(|r| r.iter().map(|c| c.3.clone()).collect()).collect::<Vec<_>>(),
            48,
            GAP,
        )
        .unwrap();
        let (left, top) = (img.width() - grid.width(), img.height() - grid.height());
        assert!(left > 0 && top > 0);
        // The grid is copied unchanged below/right of the labels.
        for (x, y, p) in grid.enumerate_pixels() {
            assert_eq!(img.get_pixel(x + left, y + top), p);
        }
        // Text was drawn: bright pixels in the header band and in the row-label column.
        let bright = |x0: u32, x1: u32, y0: u32, y1: u32| {
            (x0..x1).flat_map(|x| (y0..y1).map(move |y| (x, y))).any(|(x, y)| {
                let p = img.get_pixel(x, y);
                p[1] > 150 // the tiles are pure red; only text has green
            })
        };
        assert!(bright(left, img.width(), 0, top), "no header text");
        assert!(bright(0, left, top, img.height()), "no row label");
        let csv = std::fs::read_to_string(dir.path().join("g.csv")).unwrap();
        assert_eq!(csv.lines().count(), 5);
        assert!(csv.contains("1,1,11,gradcam++,single-point"));
    }

    #[test]
    fn long_labels_are_shortened_to_the_tile() {
        let font = FontRef::try_from_slice(FONT).unwrap();
        let t = fit_text(&font, "a-very-long-method-name-that-does-not-fit", 60.0);
        assert!(t.ends_with('…') && text_width(&font, &t) <= 60.0, "{t}");
        assert_eq!(fit_text(&font, "short", 60.0), "short");
    }

    #[test]
    fn labelled_rows_name_their_row_and_get_a_csv_column() {
        let dir = tempfile::tempdir().unwrap();
        let mut g = Gallery::default();
        for (row, label) in ["5: original", "5: no beak, left"].iter().enumerate() {
            assert_eq!(g.rows(), row);
            g.label_row(row, label);
            g.push(row, 5, "embeddingcam", "normalized-mean", solid(200));
        }
        g.write(dir.path(), "g", 48).unwrap();
        let csv = std::fs::read_to_string(dir.path().join("g.csv")).unwrap();
        assert_eq!(
            csv,
            "row,col,image_id,method,proxy,row_label\n\
             0,0,5,embeddingcam,normalized-mean,5: original\n\
             1,0,5,embeddingcam,normalized-mean,\"5: no beak, left\"\n"
        );
        // The row-label column is as wide as the longest label: wider than `image 5`'s.
        let mut plain = Gallery::default();
        plain.push(0, 5, "embeddingcam", "normalized-mean", solid(200));
        plain.write(dir.path(), "p", 48).unwrap();
        let width = |n: &str| image::open(dir.path().join(n)).unwrap().width();
        assert!(width("g.png") > width("p.png"));
    }

    #[test]
    fn an_empty_gallery_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        Gallery::default().write(dir.path(), "g", 48).unwrap();
        assert!(!dir.path().join("g.png").exists());
    }
}
