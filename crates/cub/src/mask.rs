//! Segmentation masks: CUB's soft greyscale PNGs (0–255, the average of several annotators) and
//! their binary foreground at a threshold (default 128).

use std::path::Path;

use crate::error::{CubError, Result};

/// The default foreground threshold: a pixel is foreground when its soft value is ≥ 128.
pub const DEFAULT_MASK_THRESHOLD: u8 = 128;

/// A soft segmentation mask in original image pixels, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Mask {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Soft values 0–255, `width · height` of them, row-major.
    pub soft: Vec<u8>,
}

impl Mask {
    /// Binary foreground: `soft ≥ threshold`.
    pub fn binary(&self, threshold: u8) -> Vec<bool> {
        self.soft.iter().map(|&v| v >= threshold).collect()
    }

    /// Number of foreground pixels at `threshold`.
    pub fn area(&self, threshold: u8) -> usize {
        self.soft.iter().filter(|&&v| v >= threshold).count()
    }

    /// Tight box around the foreground at `threshold`, in pixel-edge coordinates; `None` when the
    /// mask is empty.
    pub fn foreground_box(&self, threshold: u8) -> Option<crate::BBox> {
        let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
        for (k, &v) in self.soft.iter().enumerate() {
            if v >= threshold {
                let (i, j) = (k as u32 % self.width, k as u32 / self.width);
                x0 = x0.min(i);
                y0 = y0.min(j);
                x1 = x1.max(i + 1);
                y1 = y1.max(j + 1);
            }
        }
        (x0 != u32::MAX)
            .then(|| crate::BBox::from_corners(x0 as f32, y0 as f32, x1 as f32, y1 as f32))
    }

    /// Read a mask PNG (any colour type; converted to 8-bit luma). `id` names the image in errors.
    pub fn read(path: &Path, id: u32) -> Result<Mask> {
        let img = crate::load::open_image(path, id)?.into_luma8();
        Ok(Mask { width: img.width(), height: img.height(), soft: img.into_raw() })
    }

    /// Check that the mask has the size of its image.
    pub fn check_size(
        &self,
        id: u32,
        mask: &Path,
        image: &Path,
        image_w: u32,
        image_h: u32,
    ) -> Result<()> {
        if (self.width, self.height) == (image_w, image_h) {
            return Ok(());
        }
        Err(CubError::MaskSize {
            id,
            mask: mask.to_path_buf(),
            mask_w: self.width,
            mask_h: self.height,
            image: image.to_path_buf(),
            image_w,
            image_h,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threshold_and_box() {
        // 4×3 mask, foreground (≥128) at (1,0), (2,1); 127 just below.
        let m = Mask { width: 4, height: 3, soft: vec![0, 200, 0, 0, 0, 127, 128, 0, 0, 0, 0, 0] };
        assert_eq!(m.area(128), 2);
        assert_eq!(m.area(127), 3);
        assert_eq!(m.foreground_box(128), Some(crate::BBox { x: 1.0, y: 0.0, w: 2.0, h: 2.0 }));
        assert_eq!(Mask { width: 1, height: 1, soft: vec![5] }.foreground_box(128), None);
    }
}
