//! Boxes from a thresholded heatmap: 8-connected components, localisation accuracy at one τ and
//! as a curve over the τ grid, and MaxBoxAccV2 (Choe et al., "Evaluating Weakly Supervised Object
//! Localization Methods Right", CVPR 2020).
//!
//! **Connectivity.** Components are 8-connected: two foreground pixels belong together when they
//! touch at an edge or a corner (OpenCV's `findContours`, which wsolevaluation uses, traces
//! 8-connected foreground). A component's box is the tight box of its pixels in pixel-edge
//! coordinates, `[min i, max i + 1) × [min j, max j + 1)`.
//!
//! **Largest component.** Most pixels; ties go to the component whose first pixel in row-major
//! order comes first.
//!
//! **Thresholds.** See [`crate::threshold`]: the set above τ is `{p : v(p) ≥ τ}`, with
//! `v = H / max H` for localisation accuracy and its τ curve (DESIGN's rule) and Choe et al.'s
//! min–max `v = (H − min H) / (max H − min H)` for MaxBoxAccV2 (wsolevaluation's
//! `normalize_scoremap`, a constant map giving `v ≡ 0`). A [`Sweeper`] takes the levels of either.

use embcam_cub::BBox;

use crate::threshold::TauGrid;

/// One 8-connected component of a binary map.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Component {
    /// Tight box in pixel-edge coordinates.
    pub bbox: BBox,
    /// Number of pixels.
    pub size: usize,
    /// Row-major index of its first pixel.
    pub first: usize,
}

/// The 8-connected components of `fg` (row-major `width × height`), in row-major order of their
/// first pixel.
pub fn components(fg: &[bool], width: u32, height: u32) -> Vec<Component> {
    let (w, h) = (width as usize, height as usize);
    let mut seen = vec![false; fg.len()];
    let mut stack = Vec::new();
    let mut out = Vec::new();
    for start in 0..fg.len() {
        if !fg[start] || seen[start] {
            continue;
        }
        seen[start] = true;
        stack.push(start);
        let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
        let mut size = 0;
        while let Some(p) = stack.pop() {
            let (i, j) = (p % w, p / w);
            (x0, y0, x1, y1) = (x0.min(i), y0.min(j), x1.max(i + 1), y1.max(j + 1));
            size += 1;
            for jj in j.saturating_sub(1)..=(j + 1).min(h - 1) {
                for ii in i.saturating_sub(1)..=(i + 1).min(w - 1) {
                    let q = jj * w + ii;
                    if fg[q] && !seen[q] {
                        seen[q] = true;
                        stack.push(q);
                    }
                }
            }
        }
        let bbox = BBox::from_corners(x0 as f32, y0 as f32, x1 as f32, y1 as f32);
        out.push(Component { bbox, size, first: start });
    }
    out
}

/// The largest 8-connected component of `fg` (ties: first in row-major order); `None` when `fg`
/// is empty.
pub fn largest_component(fg: &[bool], width: u32, height: u32) -> Option<Component> {
    // `components` lists in row-major order of first pixel, so a strict `>` keeps the earliest.
    components(fg, width, height).into_iter().fold(None, |best: Option<Component>, c| match best {
        Some(b) if b.size >= c.size => Some(b),
        _ => Some(c),
    })
}

/// Localisation of one map at one threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Localization {
    /// Box around the largest component of `{p : H(p)/max H ≥ τ}`.
    pub bbox: BBox,
    /// `IoU(bbox, ground-truth box)`.
    pub iou: f64,
    /// `iou ≥` the configured IoU (0.5 by default).
    pub hit: bool,
}

/// Localisation accuracy's per-image test (Zhou et al. CAM, CVPR 2016; DESIGN "Localization
/// accuracy"): normalise by the max, keep `v ≥ τ`, box the largest 8-connected component, hit when
/// `IoU(box, truth) ≥ iou`. An all-zero map is uniform: the box is the whole image.
pub fn localize(
    values: &[f32],
    width: u32,
    height: u32,
    max: f32,
    tau: f32,
    truth: &BBox,
    iou: f32,
) -> Localization {
    let fg: Vec<bool> =
        values.iter().map(|&h| crate::threshold::normalise(h, max) >= tau).collect();
    // The maximum pixel has v = 1 ≥ τ for τ ≤ 1, so the set is never empty; guard anyway.
    let bbox = largest_component(&fg, width, height)
        .map_or(BBox { x: 0.0, y: 0.0, w: 0.0, h: 0.0 }, |c| c.bbox);
    localization_of(bbox, truth, iou)
}

pub(crate) fn localization_of(bbox: BBox, truth: &BBox, iou: f32) -> Localization {
    let v = bbox.iou(truth);
    Localization { bbox, iou: f64::from(v), hit: v >= iou }
}

/// What one map gives at every threshold of the grid: the input of the localisation-accuracy
/// curve and of MaxBoxAccV2. `score_image` fills `largest_iou` from the max-normalised map and
/// `hits` from the min–max normalised one (the same sweep when the map's minimum is 0).
#[derive(Debug, Clone, PartialEq)]
pub struct ThresholdSweep {
    /// `IoU(box of the largest component above τ_k, truth)`, for `k = 0..S`.
    pub largest_iou: Vec<f32>,
    /// Bit `d` of entry `k` is set when the box of *some* component above `τ_k` reaches
    /// `IoU ≥ maxbox_iou[d]` (MaxBoxAccV2's "best box among all components").
    pub hits: Vec<u8>,
}

/// Computes a [`ThresholdSweep`] for every τ of the grid; `largest_iou` and `hits` agree exactly
/// with thresholding at each τ and calling [`components`].
///
/// Two exact methods, picked per map by [`SweepMethod::Auto`]:
/// - **Runs** (smooth maps): each row's superlevel sets at every level come from one scan of the
///   row (`w + total variation` steps); each level's horizontal runs are then labelled
///   8-connected by joining overlapping runs of consecutive rows. Cost ∝ total number of runs.
/// - **Pixels** (rough maps, e.g. i.i.d. noise): the components above `τ_k` only grow and merge as
///   `k` decreases, so one union–find over pixels taken in decreasing level order (row-major
///   within a level) gives every level. Cost ∝ pixels.
///
/// Pixels of level 0 are skipped: at `τ_0 = 0` every pixel is above the threshold and the image
/// is one component.
#[derive(Debug, Clone, Copy)]
pub struct Sweeper {
    /// Image width.
    pub width: u32,
    /// Image height.
    pub height: u32,
    /// The τ grid.
    pub grid: TauGrid,
    /// The ground-truth box (clipped to the image).
    pub truth: BBox,
    /// MaxBoxAccV2's IoU thresholds.
    pub ious: [f32; 3],
}

const NONE: u32 = u32::MAX;
/// Tags a root pixel's `parent` entry, whose low bits then hold its component's index.
const ROOT: u32 = 1 << 31;
const UNCOUNTED: u8 = u8::MAX;

/// One component: box, size, first pixel, IoU class, and whether it changed this level.
struct Comp {
    x0: u32,
    y0: u32,
    x1: u32,
    y1: u32,
    size: u32,
    first: u32,
    class: u8,
    dirty: bool,
    alive: bool,
}

impl Comp {
    fn bbox(&self) -> BBox {
        BBox::from_corners(self.x0 as f32, self.y0 as f32, self.x1 as f32, self.y1 as f32)
    }
    fn beats(&self, other: &Comp) -> bool {
        self.size > other.size || (self.size == other.size && self.first < other.first)
    }
}

/// Mutable state of one sweep.
struct Forest<'a> {
    sweeper: &'a Sweeper,
    levels: &'a [u8],
    sorted_ious: [f32; 3],
    /// Per added pixel: a parent pixel, or `ROOT | component index`.
    parent: Vec<u32>,
    comps: Vec<Comp>,
    dirty: Vec<u32>,
    /// Number of live components per IoU class (class = how many sorted thresholds it reaches).
    per_class: [u32; 4],
    best: u32,
}

impl Forest<'_> {
    #[inline]
    fn find(&mut self, mut x: u32) -> u32 {
        loop {
            let p = self.parent[x as usize];
            if p & ROOT != 0 {
                return x;
            }
            let gp = self.parent[p as usize];
            if gp & ROOT != 0 {
                return p;
            }
            self.parent[x as usize] = gp;
            x = gp;
        }
    }

    #[inline]
    fn comp_of(&self, root: u32) -> usize {
        (self.parent[root as usize] & !ROOT) as usize
    }

    #[inline]
    fn mark(&mut self, c: usize) {
        if !self.comps[c].dirty {
            self.comps[c].dirty = true;
            self.dirty.push(c as u32);
        }
    }

    /// Add pixel `p` of level `k`. A neighbour is already present when its level is above `k`,
    /// or equal to `k` and it comes earlier in row-major order (processed earlier this level).
    fn add(&mut self, p: u32, k: u8) {
        let (w, h) = (self.sweeper.width, self.sweeper.height);
        let (i, j) = (p % w, p / w);
        let mut root = NONE;
        if i > 0 && j > 0 && i + 1 < w && j + 1 < h {
            for q in [p - w - 1, p - w, p - w + 1, p - 1] {
                if self.levels[q as usize] >= k {
                    self.link(p, q, &mut root);
                }
            }
            for q in [p + 1, p + w - 1, p + w, p + w + 1] {
                if self.levels[q as usize] > k {
                    self.link(p, q, &mut root);
                }
            }
        } else {
            for jj in j.saturating_sub(1)..=(j + 1).min(h - 1) {
                for ii in i.saturating_sub(1)..=(i + 1).min(w - 1) {
                    let q = jj * w + ii;
                    let l = self.levels[q as usize];
                    if (q < p && l >= k) || (q > p && l > k) {
                        self.link(p, q, &mut root);
                    }
                }
            }
        }
        if root == NONE {
            let c = self.comps.len();
            self.comps.push(Comp {
                x0: i,
                y0: j,
                x1: i + 1,
                y1: j + 1,
                size: 1,
                first: p,
                class: UNCOUNTED,
                dirty: false,
                alive: true,
            });
            self.parent[p as usize] = ROOT | c as u32;
            self.mark(c);
        }
    }

    /// Connect new pixel `p` (whose root so far is `root`, or `NONE`) with present neighbour `q`.
    #[inline(always)]
    fn link(&mut self, p: u32, q: u32, root: &mut u32) {
        let pq = self.parent[q as usize];
        if pq == *root || q == *root {
            // Already in p's component by a direct link.
            return;
        }
        let rq = if pq & ROOT != 0 { q } else { self.find(q) };
        if *root == NONE {
            // Join the first neighbour's component.
            *root = rq;
            self.parent[p as usize] = rq;
            let w = self.sweeper.width;
            let (i, j) = (p % w, p / w);
            let c = self.comp_of(rq);
            let comp = &mut self.comps[c];
            (comp.x0, comp.y0) = (comp.x0.min(i), comp.y0.min(j));
            (comp.x1, comp.y1) = (comp.x1.max(i + 1), comp.y1.max(j + 1));
            comp.size += 1;
            comp.first = comp.first.min(p);
            self.mark(c);
        } else if rq != *root {
            *root = self.union(*root, rq);
        }
    }

    /// Merge two roots (union by size); returns the surviving root.
    fn union(&mut self, a: u32, b: u32) -> u32 {
        let (mut ca, mut cb) = (self.comp_of(a), self.comp_of(b));
        let (mut ra, mut rb) = (a, b);
        if self.comps[ca].size < self.comps[cb].size {
            (ca, cb, ra, rb) = (cb, ca, rb, ra);
        }
        self.parent[rb as usize] = ra;
        let gone = &mut self.comps[cb];
        gone.alive = false;
        if gone.class != UNCOUNTED {
            self.per_class[gone.class as usize] -= 1;
        }
        let (x0, y0, x1, y1, size, first) =
            (gone.x0, gone.y0, gone.x1, gone.y1, gone.size, gone.first);
        let keep = &mut self.comps[ca];
        (keep.x0, keep.y0) = (keep.x0.min(x0), keep.y0.min(y0));
        (keep.x1, keep.y1) = (keep.x1.max(x1), keep.y1.max(y1));
        keep.size += size;
        keep.first = keep.first.min(first);
        self.mark(ca);
        ra
    }

    /// Re-class the components changed since the last level and update the largest; returns the
    /// hit bits. Only changed components can overtake the largest: the others are no larger than
    /// it was, and if it was absorbed, its absorber (larger still) changed.
    fn settle(&mut self) -> u8 {
        if self.best != NONE && !self.comps[self.best as usize].alive {
            self.best = NONE;
        }
        for c in std::mem::take(&mut self.dirty) {
            let ci = c as usize;
            self.comps[ci].dirty = false;
            if !self.comps[ci].alive {
                continue;
            }
            if self.comps[ci].class != UNCOUNTED {
                self.per_class[self.comps[ci].class as usize] -= 1;
            }
            let iou = self.comps[ci].bbox().iou(&self.sweeper.truth);
            let class = self.sorted_ious.iter().filter(|&&t| iou >= t).count() as u8;
            self.comps[ci].class = class;
            self.per_class[class as usize] += 1;
            if self.best == NONE || self.comps[ci].beats(&self.comps[self.best as usize]) {
                self.best = c;
            }
        }
        let top = (0..4).rev().find(|&c| self.per_class[c] > 0).unwrap_or(0) as u8;
        self.sweeper.bits_for_class(top)
    }
}

impl Sweeper {
    /// Bits of `ious` reached by a box of IoU class `class` (class = number of sorted thresholds
    /// the IoU reaches).
    fn bits_for_class(&self, class: u8) -> u8 {
        let mut bits = 0;
        for (d, &t) in self.ious.iter().enumerate() {
            let below = self.ious.iter().filter(|&&u| u < t).count() as u8;
            if class > below {
                bits |= 1 << d;
            }
        }
        bits
    }

    /// Sweep one map given its per-pixel levels (see [`TauGrid::levels`]), with
    /// [`SweepMethod::Auto`]. Also returns the box of the largest component at `capture` (a grid
    /// index), if asked.
    pub fn run(&self, levels: &[u8], capture: Option<usize>) -> (ThresholdSweep, Option<BBox>) {
        self.run_with(levels, capture, SweepMethod::Auto)
    }

    /// [`Sweeper::run`] with a chosen method (both give identical results; for tests and
    /// benchmarks).
    pub fn run_with(
        &self,
        levels: &[u8],
        capture: Option<usize>,
        method: SweepMethod,
    ) -> (ThresholdSweep, Option<BBox>) {
        let s = self.grid.steps();
        let mut sorted_ious = self.ious;
        sorted_ious.sort_by(f32::total_cmp);
        // A run costs a few times a pixel: Auto gives up on runs once there are more than pixels.
        let per_level = match method {
            SweepMethod::Runs => self.by_runs(levels, &sorted_ious, usize::MAX),
            SweepMethod::Pixels => None,
            SweepMethod::Auto => self.by_runs(levels, &sorted_ious, levels.len()),
        }
        .unwrap_or_else(|| self.by_pixels(levels, sorted_ious));
        let mut largest_iou = vec![0.0f32; s];
        let mut hits = vec![0u8; s];
        let mut captured = None;
        for (k, &(bbox, bits)) in per_level.iter().enumerate().skip(1) {
            largest_iou[k] = bbox.iou(&self.truth);
            hits[k] = bits;
            if capture == Some(k) {
                captured = Some(bbox);
            }
        }
        // τ_0 = 0: every pixel is above it, and the whole image is one component.
        let whole = BBox { x: 0.0, y: 0.0, w: self.width as f32, h: self.height as f32 };
        largest_iou[0] = whole.iou(&self.truth);
        let class = sorted_ious.iter().filter(|&&t| largest_iou[0] >= t).count() as u8;
        hits[0] = self.bits_for_class(class);
        if capture == Some(0) {
            captured = Some(whole);
        }
        (ThresholdSweep { largest_iou, hits }, captured)
    }

    /// Per level `k = 1..S−1` (entry 0 unused): the largest component's box and the hit bits, by
    /// labelling each level's horizontal runs; `None` once there are more than `limit` runs.
    fn by_runs(
        &self,
        levels: &[u8],
        sorted_ious: &[f32; 3],
        limit: usize,
    ) -> Option<Vec<(BBox, u8)>> {
        let (w, s) = (self.width as usize, self.grid.steps());
        let top = s - 1;
        let empty = BBox { x: 0.0, y: 0.0, w: 0.0, h: 0.0 };
        let mut out = vec![(empty, 0u8); s];
        // Runs of {ℓ ≥ k}: (level, row, first column, last column), row-major within a level. A
        // run of level k opens where the (capped) level rises through k and closes where it
        // falls below k.
        let mut found: Vec<[u32; 4]> = Vec::new();
        let mut open = vec![0u32; s];
        for (j, row) in levels.chunks_exact(w).enumerate() {
            let j = j as u32;
            let mut prev = 0usize;
            for (i, &l) in row.iter().enumerate() {
                let l = (l as usize).min(top);
                if l > prev {
                    open[prev + 1..=l].fill(i as u32);
                } else if l < prev {
                    for (k, &from) in open.iter().enumerate().take(prev + 1).skip(l + 1) {
                        found.push([k as u32, j, from, i as u32 - 1]);
                    }
                }
                prev = l;
            }
            for (k, &from) in open.iter().enumerate().take(prev + 1).skip(1) {
                found.push([k as u32, j, from, w as u32 - 1]);
            }
            if found.len() > limit {
                return None;
            }
        }
        // Stable counting sort by level: level k at `runs[start[k]..start[k + 1]]`.
        let mut start = vec![0usize; s + 1];
        for f in &found {
            start[f[0] as usize] += 1;
        }
        let mut total = 0;
        for c in start.iter_mut() {
            (*c, total) = (total, total + *c);
        }
        let mut next = start.clone();
        let mut runs = vec![[0u32; 3]; total];
        for &[k, j, a, b] in &found {
            runs[next[k as usize]] = [j, a, b];
            next[k as usize] += 1;
        }
        drop(found);
        let mut parent: Vec<u32> = Vec::new();
        // Per root run: x0, y0, x1, y1 (exclusive), size.
        let mut acc: Vec<[u32; 5]> = Vec::new();
        let mut roots = Vec::new();
        for k in 1..=top {
            let r = &runs[start[k]..start[k + 1]];
            parent.clear();
            parent.extend(0..r.len() as u32);
            // Join overlapping or diagonally touching runs of consecutive rows.
            let (mut prev_a, mut prev_b) = (0usize, 0usize);
            let mut a = 0;
            while a < r.len() {
                let row = r[a][0];
                let mut b = a;
                while b < r.len() && r[b][0] == row {
                    b += 1;
                }
                if prev_b > prev_a && r[prev_a][0] + 1 == row {
                    let mut pi = prev_a;
                    for c in a..b {
                        while pi < prev_b && r[pi][2] + 1 < r[c][1] {
                            pi += 1;
                        }
                        let mut q = pi;
                        while q < prev_b && r[q][1] <= r[c][2] + 1 {
                            let (x, y) = (find(&mut parent, c as u32), find(&mut parent, q as u32));
                            // The smaller index is the root: a component's root is its first run.
                            let (lo, hi) = (x.min(y), x.max(y));
                            parent[hi as usize] = lo;
                            q += 1;
                        }
                    }
                }
                (prev_a, prev_b) = (a, b);
                a = b;
            }
            // Aggregate per root; roots come before their members in index order.
            // Every entry read below is written first (a root before its members).
            if acc.len() < r.len() {
                acc.resize(r.len(), [0; 5]);
            }
            roots.clear();
            for (c, run) in r.iter().enumerate() {
                // parent[c] ≤ c always (the smaller index wins), so one step from c reaches a
                // root once every earlier run points at its root.
                let root = parent[parent[c] as usize] as usize;
                parent[c] = root as u32;
                let [j, x0, x1] = *run;
                let len = x1 - x0 + 1;
                if root == c {
                    acc[c] = [x0, j, x1 + 1, j + 1, len];
                    roots.push(c);
                } else {
                    let t = &mut acc[root];
                    (t[0], t[2], t[3], t[4]) = (t[0].min(x0), t[2].max(x1 + 1), j + 1, t[4] + len);
                }
            }
            let (mut best, mut class) = (usize::MAX, 0u8);
            for &c in &roots {
                let [x0, y0, x1, y1, size] = acc[c];
                let bbox = BBox::from_corners(x0 as f32, y0 as f32, x1 as f32, y1 as f32);
                let iou = bbox.iou(&self.truth);
                class = class.max(sorted_ious.iter().filter(|&&t| iou >= t).count() as u8);
                // Roots are in row-major order of their first pixel: strict `>` keeps the earliest.
                if best == usize::MAX || size > acc[best][4] {
                    best = c;
                }
            }
            if let Some(&[x0, y0, x1, y1, _]) = acc.get(best) {
                out[k] = (
                    BBox::from_corners(x0 as f32, y0 as f32, x1 as f32, y1 as f32),
                    self.bits_for_class(class),
                );
            }
        }
        Some(out)
    }

    /// Per level `k = 1..S−1` (entry 0 unused): the largest component's box and the hit bits, by
    /// union–find over pixels in decreasing level order.
    fn by_pixels(&self, levels: &[u8], sorted_ious: [f32; 3]) -> Vec<(BBox, u8)> {
        let s = self.grid.steps();
        let empty = BBox { x: 0.0, y: 0.0, w: 0.0, h: 0.0 };
        let mut out = vec![(empty, 0u8); s];

        // Counting sort of the pixels above level 0: descending level, ascending index within.
        let mut start = vec![0usize; s + 2];
        for &l in levels {
            start[l as usize] += 1;
        }
        let mut acc = 0;
        for l in (1..=s).rev() {
            let count = start[l];
            start[l] = acc;
            acc += count;
        }
        start[0] = acc;
        let mut order = vec![0u32; acc];
        let mut next = start.clone();
        for (p, &l) in levels.iter().enumerate() {
            if l > 0 {
                order[next[l as usize]] = p as u32;
                next[l as usize] += 1;
            }
        }

        let mut forest = Forest {
            sweeper: self,
            levels,
            sorted_ious,
            parent: vec![NONE; levels.len()],
            comps: Vec::new(),
            dirty: Vec::new(),
            per_class: [0; 4],
            best: NONE,
        };
        for k in (1..=s).rev() {
            // Level k's pixels occupy order[start[k]..start[k - 1]].
            for &p in &order[start[k]..start[k - 1]] {
                forest.add(p, k as u8);
            }
            if k == s {
                continue; // level S is not a grid threshold; its pixels join at τ_{S−1}
            }
            let bits = forest.settle();
            // The maximum pixel (level S) is always present, so `best` is set.
            if let Some(best) = forest.comps.get(forest.best as usize) {
                out[k] = (best.bbox(), bits);
            }
        }
        out
    }
}

/// How [`Sweeper::run_with`] labels components; every method gives the same result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SweepMethod {
    /// Runs when the map has fewer runs than pixels, else pixels.
    Auto,
    /// Label each level's horizontal runs.
    Runs,
    /// One union–find over pixels in decreasing level order.
    Pixels,
}

/// Find with path halving on a parent array whose roots point to themselves.
#[inline]
fn find(parent: &mut [u32], mut x: u32) -> u32 {
    while parent[x as usize] != x {
        let grand = parent[parent[x as usize] as usize];
        parent[x as usize] = grand;
        x = grand;
    }
    x
}

/// Split-level accumulator for MaxBoxAccV2: per τ and IoU threshold, the number of images whose
/// best component box reaches the IoU.
#[derive(Debug, Clone, PartialEq)]
pub struct MaxBoxAccumulator {
    grid: TauGrid,
    ious: [f32; 3],
    hits: Vec<[u64; 3]>,
    images: u64,
}

/// MaxBoxAccV2 of a split.
#[derive(Debug, Clone, PartialEq)]
pub struct MaxBoxAccV2 {
    /// Per IoU threshold δ: `(δ, MaxBoxAcc(δ), the first τ attaining it)`.
    pub per_iou: Vec<(f32, f64, f32)>,
    /// Per IoU threshold δ, `BoxAcc(τ_k, δ)` for every `k`.
    pub curves: Vec<Vec<f64>>,
    /// `MaxBoxAccV2 = mean_δ MaxBoxAcc(δ)`.
    pub v2: f64,
}

impl MaxBoxAccumulator {
    /// An empty accumulator over `grid` with IoU thresholds `ious` (default 0.3, 0.5, 0.7).
    pub fn new(grid: TauGrid, ious: [f32; 3]) -> Self {
        MaxBoxAccumulator { grid, ious, hits: vec![[0; 3]; grid.steps()], images: 0 }
    }

    /// Add one image's sweep (made with the same grid and IoU thresholds).
    pub fn add(&mut self, sweep: &ThresholdSweep) {
        for (acc, &bits) in self.hits.iter_mut().zip(&sweep.hits) {
            for (d, a) in acc.iter_mut().enumerate() {
                *a += u64::from(bits >> d & 1);
            }
        }
        self.images += 1;
    }

    /// Add another accumulator's counts (for parallel reduction).
    pub fn merge(&mut self, other: &MaxBoxAccumulator) {
        for (a, b) in self.hits.iter_mut().zip(&other.hits) {
            for d in 0..3 {
                a[d] += b[d];
            }
        }
        self.images += other.images;
    }

    /// `BoxAcc(τ, δ) = |{images : max over components IoU(box, truth) ≥ δ}| / n`;
    /// `MaxBoxAcc(δ) = max_τ BoxAcc(τ, δ)` over the grid; `MaxBoxAccV2` is its mean over the three
    /// δ (Choe et al. CVPR 2020, §4.1). `None` before any image.
    pub fn finish(&self) -> Option<MaxBoxAccV2> {
        if self.images == 0 {
            return None;
        }
        let n = self.images as f64;
        let mut per_iou = Vec::with_capacity(3);
        let mut curves = Vec::with_capacity(3);
        for d in 0..3 {
            let curve: Vec<f64> = self.hits.iter().map(|h| h[d] as f64 / n).collect();
            let (k, &best) = curve
                .iter()
                .enumerate()
                .fold((0, &curve[0]), |b, (k, v)| if *v > *b.1 { (k, v) } else { b });
            per_iou.push((self.ious[d], best, self.grid.tau(k)));
            curves.push(curve);
        }
        let v2 = per_iou.iter().map(|p| p.1).sum::<f64>() / 3.0;
        Some(MaxBoxAccV2 { per_iou, curves, v2 })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn grid(rows: &[&str]) -> (Vec<bool>, u32, u32) {
        let fg = rows.iter().flat_map(|r| r.chars().map(|c| c == '#')).collect();
        (fg, rows[0].len() as u32, rows.len() as u32)
    }

    #[test]
    fn eight_connectivity_joins_corners() {
        // Diagonal pixels touch at a corner: one component under 8-connectivity (two under 4).
        let (fg, w, h) = grid(&["#...", ".#..", "...#", "...#"]);
        let cs = components(&fg, w, h);
        assert_eq!(cs.len(), 2);
        assert_eq!(cs[0].bbox, BBox { x: 0.0, y: 0.0, w: 2.0, h: 2.0 });
        assert_eq!((cs[0].size, cs[0].first), (2, 0));
        assert_eq!(cs[1].bbox, BBox { x: 3.0, y: 2.0, w: 1.0, h: 2.0 });
        // Equal sizes: the earlier one is the largest.
        assert_eq!(largest_component(&fg, w, h).unwrap().first, 0);
        assert_eq!(largest_component(&[false; 4], 2, 2), None);
    }

    #[test]
    fn localize_hand_worked() {
        // 5×4 map, max 10:
        //   0 0 0 0 0
        //   0 9 8 0 3
        //   0 7 10 0 3
        //   0 0 0 0 3
        // τ = 0.2 keeps v ≥ 0.2 i.e. H ≥ 2: {9, 8, 7, 10} (4 px, box x 1..3, y 1..3) and the
        // column of 3s (3 px, box x 4..5, y 1..4). Largest: the 2×2 block.
        let h = [0., 0., 0., 0., 0., 0., 9., 8., 0., 3., 0., 7., 10., 0., 3., 0., 0., 0., 0., 3.];
        let truth = BBox { x: 1.0, y: 1.0, w: 3.0, h: 2.0 };
        let loc = localize(&h, 5, 4, 10.0, 0.2, &truth, 0.5);
        assert_eq!(loc.bbox, BBox { x: 1.0, y: 1.0, w: 2.0, h: 2.0 });
        // Box area 4 inside the truth (area 6): IoU 4/6.
        assert!((loc.iou - 4.0 / 6.0).abs() < 1e-6);
        assert!(loc.hit);
        // τ = 0.75 keeps H ≥ 7.5: {9, 8, 10}, same box (the 7 drops but 9, 8, 10 span 2×2).
        let loc = localize(&h, 5, 4, 10.0, 0.75, &truth, 0.7);
        assert_eq!(loc.bbox, BBox { x: 1.0, y: 1.0, w: 2.0, h: 2.0 });
        assert!(!loc.hit);
        // τ = 0.95: only the 10 → box 1×1 at (2, 2): IoU 1/6.
        let loc = localize(&h, 5, 4, 10.0, 0.95, &truth, 0.5);
        assert!((loc.iou - 1.0 / 6.0).abs() < 1e-6);
        // All-zero map: the whole image, IoU 6/20.
        let loc = localize(&[0.0; 20], 5, 4, 0.0, 0.2, &truth, 0.5);
        assert_eq!(loc.bbox, BBox { x: 0.0, y: 0.0, w: 5.0, h: 4.0 });
        assert!((loc.iou - 0.3).abs() < 1e-6);
    }

    #[test]
    fn sweep_hand_worked() {
        // Same map, grid S = 4 (τ = 0, 0.25, 0.5, 0.75); truth = the column of 3s,
        // x 4..5, y 1..4 (area 3). v: 9 → .9, 8 → .8, 7 → .7, 10 → 1, 3 → .3.
        // τ = 0.75: {9, 8, 10} one component (box 2×2, IoU 0); hits none.
        // τ = 0.5: + 7: same box. τ = 0.25: + the 3s: two components, the column has IoU 1
        //   → every δ hit; largest is still the block (4 px > 3 px): IoU 0.
        // τ = 0: whole image (20 px): IoU 3/20 = 0.15 < 0.3.
        let h = [0., 0., 0., 0., 0., 0., 9., 8., 0., 3., 0., 7., 10., 0., 3., 0., 0., 0., 0., 3.];
        let g = TauGrid::new(4);
        let truth = BBox { x: 4.0, y: 1.0, w: 1.0, h: 3.0 };
        let sw = Sweeper { width: 5, height: 4, grid: g, truth, ious: [0.3, 0.5, 0.7] };
        let (s, cap) = sw.run(&g.levels(&h, 10.0), Some(2));
        assert_eq!(s.hits, vec![0, 0b111, 0, 0]);
        assert_eq!(s.largest_iou[1..], [0.0, 0.0, 0.0]);
        assert!((s.largest_iou[0] - 0.15).abs() < 1e-6);
        assert_eq!(cap, Some(BBox { x: 1.0, y: 1.0, w: 2.0, h: 2.0 }));
        // IoU thresholds in any order: bit d follows ious[d]. Column vs truth x 4..5, y 0..4:
        // IoU 3/4 → reaches 0.7 and 0.3 but with order [0.9, 0.7, 0.3] bits are 0b110.
        let truth = BBox { x: 4.0, y: 0.0, w: 1.0, h: 4.0 };
        let sw = Sweeper { truth, ious: [0.9, 0.7, 0.3], ..sw };
        let (s, _) = sw.run(&g.levels(&h, 10.0), None);
        assert_eq!(s.hits[1], 0b110);
    }

    #[test]
    fn runs_and_pixels_agree() {
        // Smooth, plateau and noise maps on odd sizes, several grids, including a 1-pixel-wide
        // image and ties between equal-size components; every method must agree exactly.
        use rand::{Rng, SeedableRng, rngs::StdRng};
        let mut rng = StdRng::seed_from_u64(5);
        for case in 0..60u32 {
            let (w, h) = (rng.random_range(1..40u32), rng.random_range(1..30u32));
            let steps = [100, 7, 2, 1][case as usize % 4];
            let coarse: Vec<f32> = (0..16).map(|_| rng.random::<f32>()).collect();
            let values: Vec<f32> = match case % 3 {
                0 => embcam_cub::resize_bilinear(&coarse, 4, 4, w, h),
                1 => embcam_cub::resize_bilinear(&coarse, 4, 4, w, h)
                    .iter()
                    .map(|v| (v * 3.0).floor())
                    .collect(),
                _ => (0..w * h).map(|_| rng.random::<f32>()).collect(),
            };
            let max = values.iter().copied().fold(0.0f32, f32::max);
            let g = TauGrid::new(steps);
            let x = rng.random_range(0.0..w as f32);
            let y = rng.random_range(0.0..h as f32);
            let truth = BBox { x, y, w: w as f32 / 3.0, h: h as f32 / 2.0 };
            let sw = Sweeper { width: w, height: h, grid: g, truth, ious: [0.3, 0.5, 0.7] };
            let levels = g.levels(&values, max);
            let cap = Some(steps / 2);
            let runs = sw.run_with(&levels, cap, SweepMethod::Runs);
            assert_eq!(runs, sw.run_with(&levels, cap, SweepMethod::Pixels), "case {case}");
            assert_eq!(runs, sw.run(&levels, cap), "case {case}");
        }
    }

    #[test]
    fn maxboxacc_hand_worked() {
        // Two images, S = 2 (τ = 0, 0.5). Image A hits δ = 0.3 at τ = 0 and all δ at τ = 0.5;
        // image B hits δ = 0.3 and 0.5 at τ = 0 only.
        //   BoxAcc(·, 0.3) = [1, 0.5] → 1 at τ = 0; BoxAcc(·, 0.5) = [0.5, 0.5] → 0.5 at τ = 0;
        //   BoxAcc(·, 0.7) = [0, 0.5] → 0.5 at τ = 0.5. V2 = (1 + 0.5 + 0.5)/3 = 2/3.
        let g = TauGrid::new(2);
        let mut acc = MaxBoxAccumulator::new(g, [0.3, 0.5, 0.7]);
        assert_eq!(acc.finish(), None);
        acc.add(&ThresholdSweep { largest_iou: vec![0.0; 2], hits: vec![0b001, 0b111] });
        let mut other = MaxBoxAccumulator::new(g, [0.3, 0.5, 0.7]);
        other.add(&ThresholdSweep { largest_iou: vec![0.0; 2], hits: vec![0b011, 0b000] });
        acc.merge(&other);
        let m = acc.finish().unwrap();
        assert_eq!(m.per_iou, vec![(0.3, 1.0, 0.0), (0.5, 0.5, 0.0), (0.7, 0.5, 0.5)]);
        assert!((m.v2 - 2.0 / 3.0).abs() < 1e-12);
    }
}
