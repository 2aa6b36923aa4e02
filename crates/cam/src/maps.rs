//! Heatmaps at the stage's resolution, with the views the rest of the harness needs: the raw
//! (pre-ReLU, unnormalised) map, the ReLU map `H`, `H` upsampled to the input size, and `H`
//! resampled onto the original image through the data layer's [`Geometry`].
//!
//! Maps stay at the stage's resolution (`h × w`, e.g. 7×7) and are upsampled only when scored or
//! drawn, so memory is bounded by one batch whatever the dataset size.

use std::fmt;

use embcam_cub::{Geometry, resize_bilinear};

/// The maps of one method for a batch: one `h × w` map per (image, proxy column).
#[derive(Clone, Debug, PartialEq)]
pub struct CamMaps {
    /// The method's name (`gradcam`, `scorecam`, ...).
    pub method: String,
    /// The stage the maps were computed at.
    pub stage: String,
    /// The target's name (`dot@pre-norm`, ...); empty for target-free methods.
    pub target: String,
    /// Image ids, one per batch row.
    pub image_ids: Vec<u32>,
    /// Proxy column names.
    pub columns: Vec<String>,
    /// Map height (the stage's).
    pub h: usize,
    /// Map width (the stage's).
    pub w: usize,
    /// The model input's height.
    pub input_h: usize,
    /// The model input's width.
    pub input_w: usize,
    /// Raw maps, `[B, P, h, w]` row-major.
    raw: Vec<f32>,
}

impl CamMaps {
    /// Assemble maps; `raw` is `[B, P, h, w]` row-major.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        method: String,
        stage: String,
        target: String,
        image_ids: Vec<u32>,
        columns: Vec<String>,
        (h, w): (usize, usize),
        (input_h, input_w): (usize, usize),
        raw: Vec<f32>,
    ) -> Self {
        debug_assert_eq!(raw.len(), image_ids.len() * columns.len() * h * w);
        CamMaps { method, stage, target, image_ids, columns, h, w, input_h, input_w, raw }
    }

    /// Number of images `B`.
    pub fn n_images(&self) -> usize {
        self.image_ids.len()
    }
    /// Number of proxy columns `P`.
    pub fn n_proxies(&self) -> usize {
        self.columns.len()
    }

    /// The raw map `Σ_k α_k A^k` (or the method's equivalent) of image row `b`, column `p`:
    /// pre-ReLU, unnormalised, `h · w` values row-major.
    pub fn raw(&self, b: usize, p: usize) -> &[f32] {
        let n = self.h * self.w;
        let i = (b * self.n_proxies() + p) * n;
        &self.raw[i..i + n]
    }

    /// All raw maps, `[B, P, h, w]`.
    pub fn raw_all(&self) -> &[f32] {
        &self.raw
    }

    /// The heatmap `H = ReLU(raw)` at the stage's resolution.
    pub fn relu(&self, b: usize, p: usize) -> Vec<f32> {
        self.raw(b, p).iter().map(|&v| v.max(0.0)).collect()
    }

    /// `H` bilinearly upsampled to the input size (`input_w × input_h`, pixel-centre aligned).
    pub fn upsampled(&self, b: usize, p: usize) -> Vec<f32> {
        resize_bilinear(
            &self.relu(b, p),
            self.w as u32,
            self.h as u32,
            self.input_w as u32,
            self.input_h as u32,
        )
    }

    /// `H` on the original image's pixel grid (`orig_w · orig_h` values), through the geometry
    /// record of the loaded image; pixels cut off by the crop get `outside`.
    pub fn to_original(&self, b: usize, p: usize, geometry: &Geometry, outside: f32) -> Vec<f32> {
        geometry.map_to_original(&self.relu(b, p), self.w as u32, self.h as u32, outside)
    }

    /// Whether `H` is zero everywhere (no positive evidence).
    pub fn is_zero(&self, b: usize, p: usize) -> bool {
        self.raw(b, p).iter().all(|&v| v <= 0.0)
    }

    /// Index of the first non-finite value's image row, if any.
    pub(crate) fn first_non_finite(&self) -> Option<usize> {
        let per_image = self.n_proxies() * self.h * self.w;
        self.raw.iter().position(|v| !v.is_finite()).map(|i| i / per_image.max(1))
    }
}

/// `map / max(map)`; all zeros stay zeros.
pub fn max_normalize(map: &[f32]) -> Vec<f32> {
    let m = map.iter().copied().fold(0.0f32, f32::max);
    if m > 0.0 { map.iter().map(|&v| v / m).collect() } else { vec![0.0; map.len()] }
}

/// Something the caller should know about a result; the library does not print.
#[derive(Clone, Debug, PartialEq)]
pub enum CamWarning {
    /// Single point proxy on the L2-normalised embedding: `∂(y·p)/∂z = (p − (y·p) y)/‖z‖`
    /// vanishes at `p = y`, so the map is zero up to rounding (docs/method.md, "The target score").
    SinglePointOnNormalized {
        /// The method.
        method: String,
        /// The proxy column.
        column: String,
    },
    /// Maps with no positive value (scored as uniform by the metrics).
    ZeroMaps {
        /// The method.
        method: String,
        /// The proxy column.
        column: String,
        /// How many images.
        count: usize,
    },
}

impl fmt::Display for CamWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CamWarning::SinglePointOnNormalized { method, column } => write!(
                f,
                "{method}, proxy `{column}`: the single point proxy on the L2-normalised embedding has a zero gradient \
                 (∂(y·p)/∂z = (p − (y·p)y)/‖z‖ vanishes at p = y); its maps are rounding noise. Use the pre-norm target."
            ),
            CamWarning::ZeroMaps { method, column, count } => {
                write!(f, "{method}, proxy `{column}`: {count} map(s) with no positive value")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_of_a_hand_made_map() {
        // 1 image, 2 columns, 2×2 maps, input 4×4.
        let raw = vec![-1.0, 2.0, 0.0, 4.0, -3.0, -1.0, -2.0, -0.5];
        let m = CamMaps::new(
            "m".into(),
            "s".into(),
            "t".into(),
            vec![7],
            vec!["a".into(), "b".into()],
            (2, 2),
            (4, 4),
            raw,
        );
        assert_eq!(m.relu(0, 0), vec![0.0, 2.0, 0.0, 4.0]);
        assert!(!m.is_zero(0, 0));
        assert!(m.is_zero(0, 1));
        assert_eq!(max_normalize(&m.relu(0, 0)), vec![0.0, 0.5, 0.0, 1.0]);
        assert_eq!(max_normalize(&m.relu(0, 1)), vec![0.0; 4]);
        let up = m.upsampled(0, 0);
        assert_eq!(up.len(), 16);
        // Corners of an align_corners=False ×2 upsampling are the source corners.
        assert_eq!((up[0], up[3], up[12], up[15]), (0.0, 2.0, 0.0, 4.0));
        let g = Geometry::from_crop(
            8,
            8,
            embcam_cub::CropRegion { x: 0, y: 0, w: 8, h: 8 },
            4,
            4,
            false,
        );
        assert_eq!(m.to_original(0, 0, &g, -1.0).len(), 64);
    }
}
