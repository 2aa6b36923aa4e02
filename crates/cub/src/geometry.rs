//! Boxes and the geometry record that maps between original-image pixels and model-input pixels.
//!
//! Coordinates are continuous, in pixels, origin at the top-left corner of the top-left pixel (CUB's
//! convention for `bounding_boxes.txt`); pixel `(i, j)` covers `[i, i+1) × [j, j+1)` and has its
//! centre at `(i + 0.5, j + 0.5)`. A loaded image is an integer crop region of the original, resized
//! to the input size, optionally flipped horizontally. [`Geometry`] records exactly that, so a
//! heatmap in input space maps back to the original image where boxes and masks live.

/// An axis-aligned box in pixels: top-left corner `(x, y)`, width `w`, height `h` (CUB's `x y w h`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BBox {
    /// Left edge.
    pub x: f32,
    /// Top edge.
    pub y: f32,
    /// Width (≥ 0).
    pub w: f32,
    /// Height (≥ 0).
    pub h: f32,
}

impl BBox {
    /// A box from its corners `(x0, y0)`–`(x1, y1)`.
    pub fn from_corners(x0: f32, y0: f32, x1: f32, y1: f32) -> Self {
        BBox { x: x0, y: y0, w: (x1 - x0).max(0.0), h: (y1 - y0).max(0.0) }
    }
    /// Right edge.
    pub fn x1(&self) -> f32 {
        self.x + self.w
    }
    /// Bottom edge.
    pub fn y1(&self) -> f32 {
        self.y + self.h
    }
    /// Area `w·h`.
    pub fn area(&self) -> f32 {
        self.w * self.h
    }
    /// Intersection over union; 0 when both boxes are empty.
    pub fn iou(&self, other: &BBox) -> f32 {
        let ix = (self.x1().min(other.x1()) - self.x.max(other.x)).max(0.0);
        let iy = (self.y1().min(other.y1()) - self.y.max(other.y)).max(0.0);
        let inter = ix * iy;
        let union = self.area() + other.area() - inter;
        if union > 0.0 { inter / union } else { 0.0 }
    }
    /// Whether the box lies inside a `width × height` image (with a tolerance of `tol` pixels).
    pub fn inside(&self, width: u32, height: u32, tol: f32) -> bool {
        self.x >= -tol
            && self.y >= -tol
            && self.x1() <= width as f32 + tol
            && self.y1() <= height as f32 + tol
            && self.w >= 0.0
            && self.h >= 0.0
    }
    /// The box clipped to a `width × height` image.
    pub fn clip(&self, width: u32, height: u32) -> BBox {
        let (w, h) = (width as f32, height as f32);
        BBox::from_corners(
            self.x.clamp(0.0, w),
            self.y.clamp(0.0, h),
            self.x1().clamp(0.0, w),
            self.y1().clamp(0.0, h),
        )
    }
    /// Whether pixel `(i, j)`'s centre lies inside the box.
    pub fn contains_pixel(&self, i: u32, j: u32) -> bool {
        let (cx, cy) = (i as f32 + 0.5, j as f32 + 0.5);
        cx >= self.x && cx < self.x1() && cy >= self.y && cy < self.y1()
    }
}

/// An integer rectangle of the original image: the part that becomes the model input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CropRegion {
    /// Left column.
    pub x: u32,
    /// Top row.
    pub y: u32,
    /// Width in original pixels (≥ 1).
    pub w: u32,
    /// Height in original pixels (≥ 1).
    pub h: u32,
}

/// How one loaded image relates to its original: original size, the scale and crop offset that
/// produced the input, and whether it was flipped.
///
/// Forward map (original → input), per axis:
/// `u = x·scale_x − offset_x`, then `u ← input_w − u` when flipped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Geometry {
    /// Original image width in pixels.
    pub orig_w: u32,
    /// Original image height in pixels.
    pub orig_h: u32,
    /// Input pixels per original pixel, horizontally.
    pub scale_x: f32,
    /// Input pixels per original pixel, vertically.
    pub scale_y: f32,
    /// Crop offset in the scaled image (input pixels), horizontally.
    pub offset_x: f32,
    /// Crop offset in the scaled image (input pixels), vertically.
    pub offset_y: f32,
    /// Whether the input was flipped left–right after cropping.
    pub flip: bool,
    /// Input width.
    pub input_w: u32,
    /// Input height.
    pub input_h: u32,
}

impl Geometry {
    /// The geometry of cropping `region` from a `orig_w × orig_h` image and resizing it to
    /// `input_w × input_h`, then flipping when `flip`.
    pub fn from_crop(
        orig_w: u32,
        orig_h: u32,
        region: CropRegion,
        input_w: u32,
        input_h: u32,
        flip: bool,
    ) -> Self {
        let scale_x = input_w as f32 / region.w as f32;
        let scale_y = input_h as f32 / region.h as f32;
        Geometry {
            orig_w,
            orig_h,
            scale_x,
            scale_y,
            offset_x: region.x as f32 * scale_x,
            offset_y: region.y as f32 * scale_y,
            flip,
            input_w,
            input_h,
        }
    }

    /// Original-image point → input point.
    pub fn to_input(&self, x: f32, y: f32) -> (f32, f32) {
        let u = x * self.scale_x - self.offset_x;
        let v = y * self.scale_y - self.offset_y;
        (if self.flip { self.input_w as f32 - u } else { u }, v)
    }

    /// Input point → original-image point (the inverse of [`Geometry::to_input`]).
    pub fn to_original(&self, u: f32, v: f32) -> (f32, f32) {
        let u = if self.flip { self.input_w as f32 - u } else { u };
        ((u + self.offset_x) / self.scale_x, (v + self.offset_y) / self.scale_y)
    }

    /// Resample a map defined over the input (any resolution `map_w × map_h` covering the whole
    /// input, e.g. a stage-resolution heatmap) onto the original image's pixel grid, bilinearly.
    ///
    /// Original pixels whose centre falls outside the input (cut off by the crop) get `outside`.
    /// Returns `orig_w · orig_h` values, row-major. `map` must hold `map_w · map_h` values.
    pub fn map_to_original(&self, map: &[f32], map_w: u32, map_h: u32, outside: f32) -> Vec<f32> {
        assert_eq!(map.len(), (map_w * map_h) as usize, "map size does not match map_w × map_h");
        let sx = map_w as f32 / self.input_w as f32;
        let sy = map_h as f32 / self.input_h as f32;
        let mut out = Vec::with_capacity((self.orig_w * self.orig_h) as usize);
        for j in 0..self.orig_h {
            for i in 0..self.orig_w {
                let (u, v) = self.to_input(i as f32 + 0.5, j as f32 + 0.5);
                if u < 0.0 || v < 0.0 || u > self.input_w as f32 || v > self.input_h as f32 {
                    out.push(outside);
                } else {
                    out.push(bilinear(map, map_w, map_h, u * sx - 0.5, v * sy - 0.5));
                }
            }
        }
        out
    }
}

/// Bilinear sample of a row-major `w × h` grid at continuous index coordinates `(fx, fy)` (pixel
/// centres at integers), clamping at the border (the convention of `align_corners=False`
/// upsampling in PyTorch).
pub fn bilinear(grid: &[f32], w: u32, h: u32, fx: f32, fy: f32) -> f32 {
    let fx = fx.clamp(0.0, (w - 1) as f32);
    let fy = fy.clamp(0.0, (h - 1) as f32);
    let (x0, y0) = (fx.floor() as u32, fy.floor() as u32);
    let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
    let (tx, ty) = (fx - x0 as f32, fy - y0 as f32);
    let at = |x: u32, y: u32| grid[(y * w + x) as usize];
    let top = at(x0, y0) * (1.0 - tx) + at(x1, y0) * tx;
    let bottom = at(x0, y1) * (1.0 - tx) + at(x1, y1) * tx;
    top * (1.0 - ty) + bottom * ty
}

/// Bilinear resize of a row-major `w × h` grid to `out_w × out_h` (pixel-centre aligned,
/// `align_corners=False`).
pub fn resize_bilinear(grid: &[f32], w: u32, h: u32, out_w: u32, out_h: u32) -> Vec<f32> {
    let (sx, sy) = (w as f32 / out_w as f32, h as f32 / out_h as f32);
    let mut out = Vec::with_capacity((out_w * out_h) as usize);
    for j in 0..out_h {
        for i in 0..out_w {
            out.push(bilinear(
                grid,
                w,
                h,
                (i as f32 + 0.5) * sx - 0.5,
                (j as f32 + 0.5) * sy - 0.5,
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iou_hand_worked() {
        let a = BBox { x: 0.0, y: 0.0, w: 2.0, h: 2.0 };
        let b = BBox { x: 1.0, y: 1.0, w: 2.0, h: 2.0 };
        // intersection 1, union 4 + 4 − 1 = 7
        assert!((a.iou(&b) - 1.0 / 7.0).abs() < 1e-7);
        assert_eq!(a.iou(&a), 1.0);
        let empty = BBox { x: 5.0, y: 5.0, w: 0.0, h: 0.0 };
        assert_eq!(empty.iou(&empty), 0.0);
    }

    #[test]
    fn round_trip_every_transform() {
        let region = CropRegion { x: 37, y: 11, w: 301, h: 250 };
        for flip in [false, true] {
            let g = Geometry::from_crop(500, 375, region, 128, 96, flip);
            for &(x, y) in &[(0.0, 0.0), (37.0, 11.0), (123.4, 200.7), (338.0, 261.0), (499.9, 1.0)]
            {
                let (u, v) = g.to_input(x, y);
                let (x2, y2) = g.to_original(u, v);
                assert!((x - x2).abs() < 1e-3 && (y - y2).abs() < 1e-3, "{flip} {x},{y}");
                let (u2, v2) = g.to_input(x2, y2);
                assert!((u - u2).abs() < 1e-3 && (v - v2).abs() < 1e-3);
            }
            // The crop's corners land on the input's corners.
            let (u, v) = g.to_input(37.0, 11.0);
            let expect_u = if flip { 128.0 } else { 0.0 };
            assert!((u - expect_u).abs() < 1e-3 && v.abs() < 1e-3);
        }
    }

    #[test]
    fn bilinear_resize_of_constant_and_ramp() {
        let grid = vec![2.0; 4 * 3];
        assert!(resize_bilinear(&grid, 4, 3, 9, 7).iter().all(|&v| (v - 2.0).abs() < 1e-6));
        // A 2-pixel ramp [0, 1] upsampled ×2: centres at 0.25, 0.75, 1.25, 1.75 of the source pixel
        // grid → index coordinates −0.25, 0.25, 0.75, 1.25 → clamped: 0, 0.25, 0.75, 1.
        let up = resize_bilinear(&[0.0, 1.0], 2, 1, 4, 1);
        assert_eq!(up, vec![0.0, 0.25, 0.75, 1.0]);
    }

    #[test]
    fn map_to_original_marks_the_cut_off_part() {
        // Identity-sized crop of the right half of a 4×1 image into a 2×1 input.
        let g = Geometry::from_crop(4, 1, CropRegion { x: 2, y: 0, w: 2, h: 1 }, 2, 1, false);
        let out = g.map_to_original(&[1.0, 3.0], 2, 1, -1.0);
        assert_eq!(out, vec![-1.0, -1.0, 1.0, 3.0]);
        let flipped = Geometry { flip: true, ..g };
        assert_eq!(flipped.map_to_original(&[1.0, 3.0], 2, 1, 0.0), vec![0.0, 0.0, 3.0, 1.0]);
    }
}
