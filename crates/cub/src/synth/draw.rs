//! Drawing one SynthCUB image: a cluttered background, a bird made of signed-distance shapes in
//! its own frame (x towards the beak, y down, unit = the bird's scale), optional foreground
//! branches, and from the same shapes an exact soft mask, the 15 CUB part locations and a part
//! label map (which CUB part region each bird pixel belongs to).
//!
//! A [`Variant`] renders the same scene with one part region left out or without the bird; the
//! default variant draws exactly the generated image.

use rand::{Rng, rngs::StdRng};

use super::Difficulty;
use super::classes::{Attributes, Beak, PALETTE, Tail, WingPattern};
use crate::dataset::PartLoc;
use crate::mask::DEFAULT_MASK_THRESHOLD;

type V2 = (f32, f32);

fn sub(a: V2, b: V2) -> V2 {
    (a.0 - b.0, a.1 - b.1)
}
fn dot(a: V2, b: V2) -> f32 {
    a.0 * b.0 + a.1 * b.1
}
fn len(a: V2) -> f32 {
    dot(a, a).sqrt()
}

/// Signed distance to a circle (negative inside).
fn circle(p: V2, c: V2, r: f32) -> f32 {
    len(sub(p, c)) - r
}

/// Approximate signed distance to an axis-aligned ellipse: exact on the axes, good enough for a
/// one-pixel anti-aliasing ramp elsewhere.
fn ellipse(p: V2, c: V2, r: V2) -> f32 {
    let q = sub(p, c);
    let k = len((q.0 / r.0, q.1 / r.1));
    (k - 1.0) * r.0.min(r.1)
}

/// Signed distance to a capsule (segment a–b of half-width `w`).
fn capsule(p: V2, a: V2, b: V2, w: f32) -> f32 {
    let (pa, ba) = (sub(p, a), sub(b, a));
    let t = (dot(pa, ba) / dot(ba, ba)).clamp(0.0, 1.0);
    len(sub(pa, (ba.0 * t, ba.1 * t))) - w
}

/// Signed distance to a convex polygon given counter- or clockwise: max over edges of the
/// distance to the edge's line (exact inside and along edges).
fn convex(p: V2, pts: &[V2]) -> f32 {
    let n = pts.len();
    let area: f32 = (0..n)
        .map(|i| {
            let (a, b) = (pts[i], pts[(i + 1) % n]);
            a.0 * b.1 - b.0 * a.1
        })
        .sum();
    let sign = if area > 0.0 { 1.0 } else { -1.0 };
    (0..n)
        .map(|i| {
            let (a, b) = (pts[i], pts[(i + 1) % n]);
            let e = sub(b, a);
            let normal = (e.1 * sign, -e.0 * sign); // outward
            dot(sub(p, a), normal) / len(normal)
        })
        .fold(f32::MIN, f32::max)
}

/// Coverage of a pixel by a shape whose signed distance in pixels is `d`, over a ramp `width`
/// pixels wide.
fn cover(d: f32, width: f32) -> f32 {
    (0.5 - d / width).clamp(0.0, 1.0)
}

fn mix(a: [f32; 3], b: [f32; 3], t: f32) -> [f32; 3] {
    [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t]
}
fn scale(c: [f32; 3], k: f32) -> [f32; 3] {
    [c[0] * k, c[1] * k, c[2] * k]
}
fn rgb(c: [u8; 3]) -> [f32; 3] {
    [c[0] as f32, c[1] as f32, c[2] as f32]
}

/// Integer hash → [−1, 1], for pixel noise independent of evaluation order.
fn noise(x: u32, y: u32, seed: u64) -> f32 {
    let mut h = (x as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (y as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
        ^ seed;
    h ^= h >> 33;
    h = h.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    h ^= h >> 33;
    (h & 0xFFFF) as f32 / 32767.5 - 1.0
}

/// A filled ellipse or a branch of the background or foreground.
#[derive(Debug, Clone)]
enum Blob {
    Ellipse { c: V2, r: V2, colour: [f32; 3] },
    Branch { a: V2, b: V2, w: f32, colour: [f32; 3] },
}

impl Blob {
    fn sdf(&self, p: V2) -> f32 {
        match *self {
            Blob::Ellipse { c, r, .. } => ellipse(p, c, r),
            Blob::Branch { a, b, w, .. } => capsule(p, a, b, w),
        }
    }
    fn colour(&self) -> [f32; 3] {
        match *self {
            Blob::Ellipse { colour, .. } | Blob::Branch { colour, .. } => colour,
        }
    }
}

/// Everything random about one image, drawn up front so rendering is a pure function.
#[derive(Debug, Clone)]
pub struct Scene {
    /// Image width.
    pub width: u32,
    /// Image height.
    pub height: u32,
    attrs: Attributes,
    sky: [f32; 3],
    ground: [f32; 3],
    background: Vec<Blob>,
    foreground: Vec<Blob>,
    centre: V2,
    scale: f32,
    angle: f32,
    facing_left: bool,
    light: f32,
    /// Whether the image is written as greyscale.
    pub greyscale: bool,
    noise_seed: u64,
}

/// What to leave out when rendering a scene (an intervention). The default leaves nothing out
/// and draws the generated image byte for byte.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Variant {
    /// Leave out the bird's shapes where they belong to this CUB part region (1–15): whatever
    /// lies below shows through (another part, or the background).
    pub without_part: Option<u32>,
    /// Leave out the whole bird (background and foreground branches stay).
    pub without_bird: bool,
}

/// The rendered image, its soft mask and its parts.
pub struct Rendered {
    /// RGB bytes, row-major.
    pub rgb: Vec<u8>,
    /// Soft mask 0–255 in steps of 51 (five simulated annotators), row-major.
    pub mask: Vec<u8>,
    /// The 15 parts in id order; invisible ones at (0, 0) as in CUB.
    pub parts: Vec<PartLoc>,
    /// Part label map, row-major: the CUB part id (1–15) of the topmost bird shape covering the
    /// pixel's centre ([`Scene::part_of_layer`]), where the mask is foreground (≥ 128); 0
    /// elsewhere. Part regions are disjoint and lie inside the mask's foreground.
    pub labels: Vec<u8>,
}

/// The body's and the head's regions: each pixel of the body (head) shape goes to the nearest of
/// these parts' keypoints (a Voronoi split of the shape).
const BODY_PARTS: [u32; 3] = [1, 3, 4];
const HEAD_PARTS: [u32; 4] = [5, 6, 10, 15];

fn palette_colour(rng: &mut StdRng) -> [f32; 3] {
    let base = rgb(PALETTE[rng.random_range(0..PALETTE.len())].1);
    // Muted towards grey by a random amount, so backgrounds overlap bird colours without copying them.
    mix(base, [128.0; 3], rng.random_range(0.0..0.5))
}

/// A standard normal draw (Box–Muller).
fn normal(rng: &mut StdRng) -> f32 {
    let u1: f32 = rng.random_range(f32::EPSILON..1.0);
    let u2: f32 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

/// The bird's extent from its centre, in bird units (tail tip to beak tip, crown to feet).
const BIRD_RADIUS: f32 = 2.1;

impl Scene {
    /// Draw a random scene of the given size for a class.
    ///
    /// Geometry follows CUB-200-2011's test split (measured from its `bounding_boxes.txt` and
    /// image sizes; `datasets/README.md`): the box's share of the frame is log-normal with mean
    /// m = `difficulty.bird_area` and σ = 0.7, capped where the bird would leave the frame (CUB:
    /// mean 0.34, 5th–95th percentile 0.11–0.68; measured here at m = 0.34: mean 0.33,
    /// 0.11–0.57), the box centre normal around the frame's centre
    /// (sd 0.09 of the width and 0.07 of the height, as in CUB), moved just enough to keep the
    /// whole bird in the frame.
    pub fn sample(
        attrs: Attributes,
        width: u32,
        height: u32,
        difficulty: &Difficulty,
        rng: &mut StdRng,
    ) -> Scene {
        let (w, h) = (width as f32, height as f32);
        let side = w.min(h);
        let angle = rng.random_range(-0.45..0.45f32);
        let facing_left = rng.random_bool(0.5);
        // The bird's unrotated box is about 4.0 × 2.05 bird units (tail tip to beak tip, crown
        // to feet); rotated by `angle`, its extent around the centre is:
        let (ca, sa) = (angle.cos().abs(), angle.sin().abs());
        let half = (2.0 * ca + 1.03 * sa, 2.0 * sa + 1.03 * ca); // in bird units
        const SIGMA: f32 = 0.7;
        let median = difficulty.bird_area.clamp(0.02, 0.8) / (SIGMA * SIGMA / 2.0).exp();
        let share = (median * (SIGMA * normal(rng)).exp()).min(0.9);
        let fit = (0.5 * w / half.0).min(0.5 * h / half.1); // the largest bird that fits
        // The tight box of the drawn mask covers ≈ 5.2 s² (measured over 1,600 birds: the
        // outline is narrower than its extreme points suggest).
        const BOX_AREA: f32 = 5.2;
        let scale = (share * w * h / BOX_AREA).sqrt().clamp(0.04 * side, fit);
        let mut around = |c: f32, sd: f32, lo: f32, hi: f32| {
            let v = c + sd * normal(rng);
            if lo <= hi { v.clamp(lo, hi) } else { c }
        };
        let (mx, my) = (half.0 * scale, half.1 * scale);
        let cx = around(0.5 * w, 0.09 * w, mx, w - mx);
        let centre = (cx, around(0.52 * h, 0.07 * h, my, h - my));
        let mut background = Vec::new();
        let blobs = (difficulty.clutter * rng.random_range(15.0..40.0f32)).round() as usize;
        for _ in 0..blobs {
            let r = (side * rng.random_range(0.03..0.25), side * rng.random_range(0.03..0.25));
            let c = (rng.random_range(0.0..w), rng.random_range(0.0..h));
            background.push(Blob::Ellipse { c, r, colour: palette_colour(rng) });
        }
        let bark =
            |rng: &mut StdRng| mix([92.0, 64.0, 40.0], [60.0; 3], rng.random_range(0.0..0.6));
        let branches = (difficulty.clutter * rng.random_range(2.0..6.0f32)).round() as usize;
        for _ in 0..branches {
            let a = (rng.random_range(-0.2 * w..1.2 * w), rng.random_range(0.0..h));
            let b = (rng.random_range(-0.2 * w..1.2 * w), rng.random_range(0.0..h));
            background.push(Blob::Branch {
                a,
                b,
                w: side * rng.random_range(0.01..0.03),
                colour: bark(rng),
            });
        }
        // A foreground branch crosses the bird's region (partial occlusion).
        let mut foreground = Vec::new();
        if rng.random_bool(difficulty.occlusion.clamp(0.0, 1.0) as f64) {
            let t: f32 = rng.random_range(0.0..std::f32::consts::PI);
            let through = (
                centre.0 + scale * rng.random_range(-1.2..1.2),
                centre.1 + scale * rng.random_range(-0.6..0.8),
            );
            let d = (t.cos() * 2.0 * w, t.sin() * 2.0 * w);
            foreground.push(Blob::Branch {
                a: sub(through, d),
                b: (through.0 + d.0, through.1 + d.1),
                w: scale * rng.random_range(0.06..0.16),
                colour: bark(rng),
            });
        }
        Scene {
            width,
            height,
            attrs,
            sky: palette_colour(rng),
            ground: palette_colour(rng),
            background,
            foreground,
            centre,
            scale,
            angle,
            facing_left,
            light: rng.random_range(0.85..1.15),
            greyscale: rng.random_bool(0.02),
            noise_seed: rng.random(),
        }
    }

    /// Whether a foreground branch crosses the bird's region.
    pub fn occluded(&self) -> bool {
        !self.foreground.is_empty()
    }

    /// The class attributes the bird is drawn with.
    pub fn attrs(&self) -> Attributes {
        self.attrs
    }

    /// The same scene with the bird drawn with other attributes (same pose, place, light).
    pub fn with_attrs(&self, attrs: Attributes) -> Scene {
        Scene { attrs, ..self.clone() }
    }

    /// The same bird, branches in front and pixel grain, over `other`'s background (sky,
    /// ground, blobs and branches behind the bird).
    pub fn with_background_of(&self, other: &Scene) -> Scene {
        Scene {
            sky: other.sky,
            ground: other.ground,
            background: other.background.clone(),
            ..self.clone()
        }
    }

    /// Whether the bird faces left (it then shows its right side: right eye 11, right wing 13).
    pub fn facing_left(&self) -> bool {
        self.facing_left
    }

    /// The CUB part that the bird shape `layer` (an index into [`Scene::bird_layers`]) draws at
    /// bird-frame point `q`: legs 12 (back) and 8 (front), tail 14, body and belly split among back
    /// 1, belly 3 and breast 4 by nearest keypoint, wing 9 (13 facing left), head split among
    /// crown 5, forehead 6, nape 10 and throat 15, eye 7 (11 facing left), beak 2.
    fn part_of_layer(&self, layer: usize, q: V2, points: &[(V2, bool); 15]) -> u32 {
        let nearest = |ids: &[u32]| {
            ids.iter()
                .copied()
                .min_by(|&a, &b| {
                    let d = |id: u32| len(sub(q, points[id as usize - 1].0));
                    d(a).total_cmp(&d(b))
                })
                .unwrap_or(ids[0])
        };
        match layer {
            0 => 12,
            1 => 14,
            2 | 3 => nearest(&BODY_PARTS),
            4 if self.facing_left => 13,
            4 => 9,
            5 => 8,
            6 => nearest(&HEAD_PARTS),
            7 | 8 if self.facing_left => 11,
            7 | 8 => 7,
            _ => 2,
        }
    }

    /// World (pixel) → bird frame.
    fn to_bird(&self, p: V2) -> V2 {
        let q = sub(p, self.centre);
        let (s, c) = self.angle.sin_cos();
        let (x, y) = ((q.0 * c + q.1 * s) / self.scale, (-q.0 * s + q.1 * c) / self.scale);
        (if self.facing_left { -x } else { x }, y)
    }

    /// Bird frame → world (pixel).
    fn to_world(&self, b: V2) -> V2 {
        let x = if self.facing_left { -b.0 } else { b.0 };
        let (s, c) = self.angle.sin_cos();
        let (x, y) = (x * self.scale, b.1 * self.scale);
        (self.centre.0 + x * c - y * s, self.centre.1 + x * s + y * c)
    }

    fn beak_len(&self) -> f32 {
        match self.attrs.beak {
            Beak::Short => 0.22,
            Beak::Medium => 0.45,
            Beak::Long => 0.78,
        }
    }

    /// The bird's shapes, back to front: (signed distance in bird units, colour).
    fn bird_layers(&self, p: V2) -> [(f32, [f32; 3]); 10] {
        let body = scale(rgb(PALETTE[self.attrs.body].1), self.light);
        let head = scale(rgb(PALETTE[self.attrs.head].1), self.light);
        let dark = scale(body, 0.62);
        let pale = mix(body, [235.0; 3], 0.45);
        let leg = [55.0, 45.0, 40.0];
        let tail = match self.attrs.tail {
            Tail::Fan => convex(p, &[(-0.8, -0.18), (-0.8, 0.1), (-1.8, 0.45), (-1.85, -0.5)]),
            Tail::Forked => capsule(p, (-0.8, -0.06), (-1.85, -0.5), 0.1).min(capsule(
                p,
                (-0.8, -0.02),
                (-1.85, 0.38),
                0.1,
            )),
            Tail::Pointed => convex(p, &[(-0.8, -0.18), (-0.8, 0.1), (-1.95, -0.05)]),
            Tail::Square => convex(p, &[(-0.8, -0.2), (-0.8, 0.13), (-1.6, 0.13), (-1.6, -0.2)]),
        };
        // The wing, in its own frame: u along its length (−1 at the tip, towards the tail).
        let (wc, wr) = ((-0.2, -0.08), (0.75, 0.36));
        let wing_d = ellipse(p, wc, wr);
        let (u, v) = ((p.0 - wc.0) / wr.0, (p.1 - wc.1) / wr.1);
        let wing_colour = match self.attrs.wing {
            WingPattern::Plain => dark,
            WingPattern::Barred if (u * 3.5).rem_euclid(1.0) < 0.38 => pale,
            WingPattern::Spotted
                if len(((u * 3.0).rem_euclid(1.0) - 0.5, (v * 1.6).rem_euclid(1.0) - 0.5))
                    < 0.28 =>
            {
                pale
            }
            WingPattern::Tipped if u < -0.35 => [25.0, 25.0, 30.0],
            _ => dark,
        };
        let bl = self.beak_len();
        [
            (capsule(p, (-0.15, 0.5), (-0.08, 1.05), 0.05), scale(leg, 0.8)),
            (tail, dark),
            (ellipse(p, (0.0, 0.0), (1.0, 0.62)), body),
            (ellipse(p, (0.15, 0.33), (0.72, 0.3)).max(ellipse(p, (0.0, 0.0), (1.0, 0.62))), pale),
            (wing_d, wing_colour),
            (capsule(p, (0.15, 0.5), (0.22, 1.05), 0.05), leg),
            (circle(p, (0.95, -0.55), 0.4), head),
            (circle(p, (1.1, -0.62), 0.11), [235.0; 3]),
            (circle(p, (1.1, -0.62), 0.065), [10.0; 3]),
            (convex(p, &[(1.26, -0.64), (1.26, -0.42), (1.3 + bl, -0.53)]), [70.0, 58.0, 40.0]),
        ]
    }

    /// The 15 CUB parts in the bird frame, and whether each is on the near side.
    fn part_points(&self) -> [(V2, bool); 15] {
        let near_left = !self.facing_left; // a bird facing right shows its left side
        let bl = self.beak_len();
        [
            ((-0.2, -0.5), true),            // 1 back
            ((1.3 + bl * 0.5, -0.53), true), // 2 beak
            ((0.0, 0.45), true),             // 3 belly
            ((0.62, 0.2), true),             // 4 breast
            ((0.95, -0.9), true),            // 5 crown
            ((1.24, -0.8), true),            // 6 forehead
            ((1.1, -0.62), near_left),       // 7 left eye
            ((0.2, 0.95), true),             // 8 left leg
            ((-0.2, -0.08), near_left),      // 9 left wing
            ((0.6, -0.8), true),             // 10 nape
            ((1.1, -0.62), !near_left),      // 11 right eye
            ((-0.1, 0.95), true),            // 12 right leg
            ((-0.2, -0.08), !near_left),     // 13 right wing
            ((-1.4, -0.05), true),           // 14 tail
            ((1.12, -0.22), true),           // 15 throat
        ]
    }

    /// Render the scene.
    pub fn render(&self) -> Rendered {
        self.render_variant(Variant::default())
    }

    /// Render the scene with what `variant` leaves out. Part locations are those of the full
    /// bird (an intervention does not move the keypoints); the mask and the label map are those
    /// of what is drawn.
    pub fn render_variant(&self, variant: Variant) -> Rendered {
        let (w, h) = (self.width, self.height);
        let n = (w * h) as usize;
        let mut rgb_out = Vec::with_capacity(3 * n);
        let mut mask = Vec::with_capacity(n);
        let mut labels = Vec::with_capacity(n);
        let mut occlusion = Vec::with_capacity(n);
        let points = self.part_points();
        let reach = if variant.without_bird { -1.0 } else { (BIRD_RADIUS + 0.3) * self.scale };
        for j in 0..h {
            for i in 0..w {
                let p = (i as f32 + 0.5, j as f32 + 0.5);
                let t = j as f32 / h as f32;
                let mut c = mix(self.sky, self.ground, t);
                for b in &self.background {
                    c = mix(c, b.colour(), cover(b.sdf(p), 1.0));
                }
                let mut bird = 0.0;
                let mut top = 0;
                if len(sub(p, self.centre)) < reach {
                    let q = self.to_bird(p);
                    let mut union = f32::MAX;
                    for (layer, (d, colour)) in self.bird_layers(q).into_iter().enumerate() {
                        if variant
                            .without_part
                            .is_some_and(|k| k == self.part_of_layer(layer, q, &points))
                        {
                            continue;
                        }
                        let d = d * self.scale; // bird units → pixels
                        c = mix(c, colour, cover(d, 1.0));
                        union = union.min(d);
                        if d <= 0.0 {
                            top = self.part_of_layer(layer, q, &points);
                        }
                    }
                    // Annotators disagree by a few pixels: a 3-pixel ramp.
                    bird = cover(union, 3.0);
                }
                let mut occ: f32 = 0.0;
                for b in &self.foreground {
                    let k = cover(b.sdf(p), 1.0);
                    c = mix(c, b.colour(), k);
                    occ = occ.max(k);
                }
                let grain = 7.0 * noise(i, j, self.noise_seed);
                rgb_out.extend(c.map(|v| (v + grain).round().clamp(0.0, 255.0) as u8));
                // Five simulated annotators: soft values in steps of 51, as in CUB's masks.
                let soft = ((bird * (1.0 - occ) * 5.0).round() * 51.0) as u8;
                mask.push(soft);
                labels.push(if soft >= DEFAULT_MASK_THRESHOLD { top as u8 } else { 0 });
                occlusion.push(occ);
            }
        }
        let parts = points
            .iter()
            .enumerate()
            .map(|(k, &(b, near))| {
                let (x, y) = self.to_world(b);
                let inside = x >= 0.0 && y >= 0.0 && x < w as f32 && y < h as f32;
                let visible = near && inside && occlusion[(y as u32 * w + x as u32) as usize] < 0.5;
                let (x, y) = if visible {
                    ((x * 10.0).round() / 10.0, (y * 10.0).round() / 10.0)
                } else {
                    (0.0, 0.0)
                };
                PartLoc { part_id: k as u32 + 1, x, y, visible }
            })
            .collect();
        Rendered { rgb: rgb_out, mask, parts, labels }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;
    use crate::synth::make_classes;

    /// Unoccluded scenes (a branch in front would hide parts of regions).
    fn scenes() -> Vec<Scene> {
        let classes = make_classes(8, 1, 5).expect("valid");
        let difficulty = Difficulty { occlusion: 0.0, ..Difficulty::easy() };
        (0..6u64)
            .map(|k| {
                let attrs = classes[k as usize].attrs;
                Scene::sample(attrs, 150, 110, &difficulty, &mut StdRng::seed_from_u64(k))
            })
            .collect()
    }

    #[test]
    fn removing_a_part_changes_only_its_region_and_the_ramp_around_it() {
        // Every changed pixel lies within 2 px of the removed region, up to a few (below).
        for (n, scene) in scenes().iter().enumerate() {
            let full = scene.render();
            let w = scene.width as usize;
            let near = |p: usize, k: u8| {
                let (i, j) = ((p % w) as i64, (p / w) as i64);
                (-2..=2).any(|dj| {
                    (-2..=2).any(|di| {
                        let (x, y) = (i + di, j + dj);
                        x >= 0
                            && y >= 0
                            && (x as usize) < w
                            && (y as usize) < full.labels.len() / w
                            && full.labels[y as usize * w + x as usize] == k
                    })
                })
            };
            for k in 1..=15u8 {
                if !full.labels.contains(&k) {
                    continue;
                }
                let v = Variant { without_part: Some(u32::from(k)), without_bird: false };
                let r = scene.render_variant(v);
                assert!(!r.labels.contains(&k), "scene {n}: part {k} still labelled");
                let far: Vec<usize> = (0..full.labels.len())
                    .filter(|&p| {
                        full.rgb[3 * p..3 * p + 3] != r.rgb[3 * p..3 * p + 3] && !near(p, k)
                    })
                    .collect();
                // Anti-aliasing reaches a little further in two places: beyond the beak's sharp
                // tip (the convex SDF underestimates distance past a vertex) and through the
                // soft edge of the eye over the forehead. Measured: at most 2 pixels per part.
                assert!(far.len() <= 3, "scene {n}, part {k}: pixels {far:?} changed");
            }
        }
    }

    #[test]
    fn background_and_bird_swaps_keep_the_other_exactly() {
        for (n, scene) in scenes().iter().enumerate() {
            let full = scene.render();
            let other = scenes()[(n + 1) % 6].clone();
            let bg = scene.with_background_of(&other).render();
            let none = scene.render_variant(Variant { without_part: None, without_bird: true });
            assert_eq!(bg.labels, full.labels);
            assert_eq!(bg.mask, full.mask);
            assert!(none.mask.iter().chain(&none.labels).all(|&v| v == 0));
            for (p, &m) in full.mask.iter().enumerate() {
                let px = |r: &Rendered| r.rgb[3 * p..3 * p + 3].to_vec();
                // Fully covered bird pixels do not see the background; pixels the mask does not
                // touch at all (≥ 1.2 px from the outline) do not see the bird.
                if m == 255 {
                    assert_eq!(px(&bg), px(&full), "scene {n}, pixel {p}");
                }
                if m == 0 {
                    assert_eq!(px(&none), px(&full), "scene {n}, pixel {p}");
                }
            }
            assert_ne!(bg.rgb, full.rgb);
            // Labels sit inside the mask's foreground.
            assert!(full.labels.iter().zip(&full.mask).all(|(&l, &m)| l == 0 || m >= 128));
        }
    }
}
