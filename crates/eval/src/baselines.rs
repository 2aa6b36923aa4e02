//! Baseline heatmaps every report can carry: a centre Gaussian prior and a seeded uniform random
//! map. (The third baseline, the same CAM method on an untrained network, is just heatmaps the
//! caller computes.) Each is an ordinary map source: score it with [`crate::evaluate`] under its
//! [`BaselineMap::name`].

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::score::{Heatmap, ImageTruth};

/// A baseline map source.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BaselineMap {
    /// [`centre_gaussian`] with this relative σ.
    CentreGaussian {
        /// σ as a fraction of the image's width (horizontally) and height (vertically).
        sigma: f32,
    },
    /// [`uniform_random`] with this seed.
    UniformRandom {
        /// Base seed; each image's map is seeded by this and the image id.
        seed: u64,
    },
}

impl BaselineMap {
    /// A short name for reports, e.g. `centre-gaussian(σ=0.25)`.
    pub fn name(&self) -> String {
        match self {
            BaselineMap::CentreGaussian { sigma } => format!("centre-gaussian(σ={sigma})"),
            BaselineMap::UniformRandom { seed } => format!("uniform-random(seed={seed})"),
        }
    }

    /// The baseline's map for one image, in its original pixels.
    pub fn heatmap(&self, truth: &ImageTruth) -> Heatmap {
        match *self {
            BaselineMap::CentreGaussian { sigma } => {
                centre_gaussian(truth.width, truth.height, sigma)
            }
            BaselineMap::UniformRandom { seed } => {
                uniform_random(truth.width, truth.height, seed, truth.id)
            }
        }
    }
}

/// The centre prior `H(i, j) = exp(−(x − W/2)²/(2(σW)²) − (y − H/2)²/(2(σH)²))` at pixel centres
/// `(x, y) = (i + ½, j + ½)`, with `σ` relative to each axis (objects in photos sit near the
/// centre; Judd et al. 2009's centre bias). `sigma ≤ 0` gives a uniform map.
pub fn centre_gaussian(width: u32, height: u32, sigma: f32) -> Heatmap {
    let (w, h) = (f64::from(width), f64::from(height));
    let (sx, sy) = (f64::from(sigma) * w, f64::from(sigma) * h);
    let mut values = Vec::with_capacity((width * height) as usize);
    for j in 0..height {
        for i in 0..width {
            let dx = f64::from(i) + 0.5 - w / 2.0;
            let dy = f64::from(j) + 0.5 - h / 2.0;
            let v = if sigma > 0.0 {
                (-(dx * dx) / (2.0 * sx * sx) - (dy * dy) / (2.0 * sy * sy)).exp()
            } else {
                1.0
            };
            values.push(v as f32);
        }
    }
    Heatmap { width, height, values }
}

/// I.i.d. uniform values in `[0, 1)`, from a generator seeded by `seed` and `id` (so each image's
/// map is reproducible whatever order images are scored in).
pub fn uniform_random(width: u32, height: u32, seed: u64, id: u32) -> Heatmap {
    let mut rng = StdRng::seed_from_u64(splitmix(seed ^ splitmix(u64::from(id))));
    let values = (0..width * height).map(|_| rng.random::<f32>()).collect();
    Heatmap { width, height, values }
}

/// SplitMix64's finaliser: spreads nearby seeds apart.
fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaussian_peaks_at_the_centre_and_falls_off_as_specified() {
        // 4×2 image, centre (2, 1); σ = 0.5 → σx = 2, σy = 1.
        // Pixel (1, 0): centre (1.5, 0.5), dx = −0.5, dy = −0.5 →
        //   exp(−0.25/8 − 0.25/2) = exp(−0.15625) = 0.855345.
        let g = centre_gaussian(4, 2, 0.5);
        assert!((g.values[1] - 0.855_345).abs() < 1e-5);
        // Symmetric: (1, 0), (2, 0), (1, 1), (2, 1) are equal; corners lower.
        for k in [2, 5, 6] {
            assert!((g.values[k] - g.values[1]).abs() < 1e-7);
        }
        assert!(g.values[0] < g.values[1]);
        assert!(centre_gaussian(3, 3, 0.0).values.iter().all(|&v| v == 1.0));
    }

    #[test]
    fn random_maps_are_seeded_per_image() {
        let a = uniform_random(8, 8, 42, 1);
        assert_eq!(a, uniform_random(8, 8, 42, 1));
        assert_ne!(a, uniform_random(8, 8, 42, 2));
        assert_ne!(a, uniform_random(8, 8, 43, 1));
        assert!(a.values.iter().all(|&v| (0.0..1.0).contains(&v)));
    }
}
