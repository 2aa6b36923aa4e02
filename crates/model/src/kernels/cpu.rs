//! The f32 CPU loops behind flex's training kernels: the convolution's backward pass as im2col /
//! col2im around one matrix product per image (gemm), and BatchNorm's training forward and
//! backward in two passes each; the max pool, forward and backward. Plain slices in, plain vectors
//! out; `flex.rs` wraps them.
//!
//! Why: burn's default convolution backward computes the weight gradient as a convolution whose
//! kernel is the whole output-gradient map (`H_out × W_out`, dilated by the stride) over the
//! batch-transposed input — C_in skinny products on flex — and its input gradient as a transposed
//! convolution; its BatchNorm training pass is ≈ 20 element-wise passes with two transposed
//! copies each way. Here the weight gradient is `Σ_n dY_n · col(X_n)ᵀ` and the input gradient
//! `col2im(Wᵀ · dY_n)`, the products PyTorch's CPU backward computes too.
//!
//! The only `unsafe` is the call into gemm ([`matmul`]), whose bounds are checked before it.

#![allow(unsafe_code)]

use rayon::prelude::*;

/// A 2-D convolution's shapes (NCHW, groups = 1, symmetric padding).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ConvGeometry {
    /// Batch size.
    pub n: usize,
    /// Input channels.
    pub c_in: usize,
    /// Input height and width.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Output channels.
    pub c_out: usize,
    /// Kernel height and width.
    pub kernel: [usize; 2],
    /// Output height and width.
    pub out: [usize; 2],
    /// Stride.
    pub stride: [usize; 2],
    /// Padding (the same on both sides).
    pub padding: [usize; 2],
    /// Dilation.
    pub dilation: [usize; 2],
}

impl ConvGeometry {
    /// Rows of the im2col matrix: `C_in · k_h · k_w`.
    fn k(&self) -> usize {
        self.c_in * self.kernel[0] * self.kernel[1]
    }

    /// Columns of the im2col matrix: `H_out · W_out`.
    fn p(&self) -> usize {
        self.out[0] * self.out[1]
    }

    /// The output positions `o` in `0..out` whose input index `o·s + t·d − pad` lies in
    /// `0..size`, for kernel tap `t` along one axis.
    fn valid(&self, axis: usize, tap: usize, size: usize) -> (usize, usize) {
        let (s, d, pad, out) =
            (self.stride[axis], self.dilation[axis], self.padding[axis], self.out[axis]);
        let offset = tap * d; // input index = o·s + offset − pad
        let lo = if offset >= pad { 0 } else { (pad - offset).div_ceil(s) };
        let hi = if size + pad > offset { (size + pad - offset).div_ceil(s) } else { 0 };
        (lo.min(out), hi.min(out).max(lo.min(out)))
    }
}

/// `col[(ci, i, j), (oh, ow)] = x[ci, oh·s + i·d − pad, ow·s + j·d − pad]` (0 outside): one
/// image `x` (`C_in × H × W`) into `col` (`K × P`).
fn im2col(x: &[f32], g: &ConvGeometry, col: &mut [f32]) {
    let (p, wo) = (g.p(), g.out[1]);
    let mut rows = col.chunks_exact_mut(p);
    for ci in 0..g.c_in {
        let plane = &x[ci * g.h * g.w..][..g.h * g.w];
        for i in 0..g.kernel[0] {
            let (oh_lo, oh_hi) = g.valid(0, i, g.h);
            for j in 0..g.kernel[1] {
                let (ow_lo, ow_hi) = g.valid(1, j, g.w);
                let Some(row) = rows.next() else { return };
                for (oh, dst) in row.chunks_exact_mut(wo).enumerate() {
                    if oh < oh_lo || oh >= oh_hi {
                        dst.fill(0.0);
                        continue;
                    }
                    let ih = oh * g.stride[0] + i * g.dilation[0] - g.padding[0];
                    let src = &plane[ih * g.w..][..g.w];
                    dst[..ow_lo].fill(0.0);
                    dst[ow_hi..].fill(0.0);
                    if ow_lo == ow_hi {
                        continue;
                    }
                    let first =
                        (ow_lo * g.stride[1] + j * g.dilation[1]).wrapping_sub(g.padding[1]);
                    if g.stride[1] == 1 {
                        dst[ow_lo..ow_hi].copy_from_slice(&src[first..first + (ow_hi - ow_lo)]);
                    } else {
                        for (k, d) in dst[ow_lo..ow_hi].iter_mut().enumerate() {
                            *d = src[first + k * g.stride[1]];
                        }
                    }
                }
            }
        }
    }
}

/// The adjoint of [`im2col`]: adds `col` (`K × P`) into the image `dx` (`C_in × H × W`).
fn col2im(col: &[f32], g: &ConvGeometry, dx: &mut [f32]) {
    let (p, wo) = (g.p(), g.out[1]);
    let mut rows = col.chunks_exact(p);
    for ci in 0..g.c_in {
        let plane = &mut dx[ci * g.h * g.w..][..g.h * g.w];
        for i in 0..g.kernel[0] {
            let (oh_lo, oh_hi) = g.valid(0, i, g.h);
            for j in 0..g.kernel[1] {
                let (ow_lo, ow_hi) = g.valid(1, j, g.w);
                let Some(row) = rows.next() else { return };
                if ow_lo == ow_hi {
                    continue;
                }
                for oh in oh_lo..oh_hi {
                    let ih = oh * g.stride[0] + i * g.dilation[0] - g.padding[0];
                    let dst = &mut plane[ih * g.w..][..g.w];
                    let src = &row[oh * wo..][ow_lo..ow_hi];
                    let first =
                        (ow_lo * g.stride[1] + j * g.dilation[1]).wrapping_sub(g.padding[1]);
                    if g.stride[1] == 1 {
                        for (d, s) in dst[first..first + src.len()].iter_mut().zip(src) {
                            *d += s;
                        }
                    } else {
                        for (k, s) in src.iter().enumerate() {
                            dst[first + k * g.stride[1]] += s;
                        }
                    }
                }
            }
        }
    }
}

/// A row-major-or-not matrix view: element `(r, c)` at `data[r·rs + c·cs]`.
#[derive(Clone, Copy)]
pub(crate) struct Mat<'a> {
    data: &'a [f32],
    rs: usize,
    cs: usize,
}

impl<'a> Mat<'a> {
    /// Row-major `rows × cols`.
    pub(crate) fn rows(data: &'a [f32], cols: usize) -> Self {
        Mat { data, rs: cols, cs: 1 }
    }

    /// The transpose of row-major `rows × cols` (so `cols × rows`).
    pub(crate) fn transposed(data: &'a [f32], cols: usize) -> Self {
        Mat { data, rs: 1, cs: cols }
    }

    fn fits(&self, rows: usize, cols: usize) -> bool {
        rows == 0 || cols == 0 || (rows - 1) * self.rs + (cols - 1) * self.cs < self.data.len()
    }
}

/// `dst` (row-major `m × n`) = `lhs · rhs` (`m × k` times `k × n`), or `+=` with `accumulate`.
///
/// # Panics
/// When a view is too short for its shape (checked before gemm reads or writes anything).
pub(crate) fn matmul(
    dst: &mut [f32],
    [m, n, k]: [usize; 3],
    lhs: Mat<'_>,
    rhs: Mat<'_>,
    accumulate: bool,
    threads: usize,
) {
    assert!(dst.len() >= m * n && lhs.fits(m, k) && rhs.fits(k, n), "matmul: view too short");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst[..m * n].fill(0.0);
        }
        return;
    }
    let parallelism =
        if threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
    // SAFETY: every index gemm touches is `r·rs + c·cs` with `r`, `c` inside the shapes above,
    // and the asserts bound the largest such index by each slice's length; `dst` is borrowed
    // mutably and does not alias `lhs` or `rhs` (distinct borrows).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.cs as isize,
            lhs.rs as isize,
            rhs.data.as_ptr(),
            rhs.cs as isize,
            rhs.rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// The convolution of `x` (`N × C_in × H × W`) with `weight` (`C_out × C_in × k_h × k_w`),
/// plus `bias` (`C_out`) when given: `Y_n = W · col(X_n)` for each image, one rayon task per
/// share of the images (gemm gets the threads when there are fewer images than threads).
pub(crate) fn conv2d_forward(
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    g: &ConvGeometry,
) -> Vec<f32> {
    let (k, p) = (g.k(), g.p());
    let (x_len, y_len) = (g.c_in * g.h * g.w, g.c_out * p);
    let threads = rayon::current_num_threads().max(1);
    let per_share = g.n.div_ceil(threads).max(1);
    let inner = if g.n < threads { threads } else { 1 };
    let mut y = vec![0.0f32; g.n * y_len];
    y.par_chunks_mut(per_share * y_len).enumerate().for_each(|(s, ys)| {
        let mut col = vec![0.0f32; k * p];
        for (slot, y_n) in ys.chunks_exact_mut(y_len).enumerate() {
            let img = s * per_share + slot;
            im2col(&x[img * x_len..][..x_len], g, &mut col);
            if let Some(b) = bias {
                for (row, &b) in y_n.chunks_exact_mut(p).zip(b) {
                    row.fill(b);
                }
            }
            // Y_n (C_out × P) (+)= W (C_out × K) · col_n (K × P)
            let (w, c) = (Mat::rows(weight, k), Mat::rows(&col, p));
            matmul(y_n, [g.c_out, p, k], w, c, bias.is_some(), inner);
        }
    });
    y
}

/// How many shares of the images [`conv2d_backward`] sums weight gradients over.
const WEIGHT_GRADIENT_SHARES: usize = 4;

/// The convolution's gradients from its input `x` (`N × C_in × H × W`), weight `weight`
/// (`C_out × C_in × k_h × k_w`) and output gradient `dy` (`N × C_out × H_out × W_out`): the
/// input gradient when `want_dx`, and the weight gradient when `want_dw`.
///
/// Images are split into [`WEIGHT_GRADIENT_SHARES`] contiguous shares, run in parallel; each keeps
/// its own im2col buffer and weight-gradient sum, added in share order at the end.
pub(crate) fn conv2d_backward(
    x: &[f32],
    weight: &[f32],
    dy: &[f32],
    g: &ConvGeometry,
    want_dx: bool,
    want_dw: bool,
) -> (Option<Vec<f32>>, Option<Vec<f32>>) {
    let (k, p) = (g.k(), g.p());
    let (x_len, dy_len) = (g.c_in * g.h * g.w, g.c_out * p);
    // A fixed number of shares, whatever the thread count, so that the weight gradient's sum
    // runs in the same order (and the results are the same to the bit) on 1 or 64 threads;
    // threads beyond the shares go to gemm, which does not split the summed dimension.
    let per_share = g.n.div_ceil(WEIGHT_GRADIENT_SHARES).max(1);
    let inner = (rayon::current_num_threads() / g.n.div_ceil(per_share)).max(1);
    let share = |images: std::ops::Range<usize>, mut dx: Option<&mut [f32]>| -> Option<Vec<f32>> {
        let mut col = vec![0.0f32; k * p];
        let mut dw = want_dw.then(|| vec![0.0f32; g.c_out * k]);
        for (slot, img) in images.enumerate() {
            let dy_n = &dy[img * dy_len..][..dy_len];
            if let Some(dw) = dw.as_mut() {
                im2col(&x[img * x_len..][..x_len], g, &mut col);
                // dW (C_out × K) += dY_n (C_out × P) · col_nᵀ (P × K)
                let lhs = Mat::rows(dy_n, p);
                matmul(dw, [g.c_out, k, p], lhs, Mat::transposed(&col, p), slot > 0, inner);
            }
            if let Some(dx) = dx.as_deref_mut() {
                // dcol (K × P) = Wᵀ (K × C_out) · dY_n (C_out × P), then back onto the image
                let wt = Mat::transposed(weight, k);
                matmul(&mut col, [k, p, g.c_out], wt, Mat::rows(dy_n, p), false, inner);
                col2im(&col, g, &mut dx[slot * x_len..][..x_len]);
            }
        }
        dw
    };
    // One output chunk per share (its images' input gradients), or none when dx is not wanted.
    let mut dx = want_dx.then(|| vec![0.0f32; g.n * x_len]);
    let chunks: Vec<Option<&mut [f32]>> = match dx.as_deref_mut() {
        Some(dx) => dx.chunks_mut(per_share * x_len).map(Some).collect(),
        None => (0..g.n.div_ceil(per_share)).map(|_| None).collect(),
    };
    let partial: Vec<Option<Vec<f32>>> = chunks
        .into_par_iter()
        .enumerate()
        .map(|(s, chunk)| share(s * per_share..((s + 1) * per_share).min(g.n), chunk))
        .collect();
    let dw = want_dw.then(|| {
        let mut parts = partial.into_iter().flatten();
        let mut sum = parts.next().unwrap_or_else(|| vec![0.0f32; g.c_out * k]);
        let rest: Vec<Vec<f32>> = parts.collect();
        sum.par_chunks_mut(4096).enumerate().for_each(|(c, out)| {
            for part in &rest {
                out.iter_mut().zip(&part[c * 4096..]).for_each(|(s, v)| *s += v);
            }
        });
        sum
    });
    (dx, dw)
}

/// Per-channel mean and biased variance of `x` (`N × C × S`), two passes (mean, then squared
/// deviations) with f64 sums per channel, as burn's BatchNorm computes them.
pub(crate) fn batch_norm_stats(x: &[f32], n: usize, c: usize, s: usize) -> (Vec<f32>, Vec<f32>) {
    let count = (n * s) as f64;
    (0..c)
        .into_par_iter()
        .map(|ch| {
            let planes = || (0..n).map(move |i| &x[(i * c + ch) * s..][..s]);
            let mean = planes().map(|pl| pl.iter().sum::<f32>() as f64).sum::<f64>() / count;
            let m = mean as f32;
            let var = planes()
                .map(|pl| pl.iter().map(|v| (v - m) * (v - m)).sum::<f32>() as f64)
                .sum::<f64>()
                / count;
            (m, var as f32)
        })
        .unzip()
}

/// `y = x·scale[c] + shift[c]` over `x` (`N × C × S`).
pub(crate) fn scale_shift(x: &[f32], c: usize, s: usize, scale: &[f32], shift: &[f32]) -> Vec<f32> {
    let mut y = vec![0.0f32; x.len()];
    y.par_chunks_mut(c * s).zip(x.par_chunks(c * s)).for_each(|(y, x)| {
        for ((yp, xp), (a, b)) in
            y.chunks_exact_mut(s).zip(x.chunks_exact(s)).zip(scale.iter().zip(shift))
        {
            yp.iter_mut().zip(xp).for_each(|(y, x)| *y = x * a + b);
        }
    });
    y
}

/// BatchNorm's training backward: from `x` (`N × C × S`), its batch `mean` and `inv_std`
/// (`1/√(σ² + ε)`), `gamma` and the output gradient `dy`, the gradients of `x`, `gamma` and
/// `beta`:
/// `dβ = Σ dy`, `dγ = Σ dy·x̂`, `dx = γ·inv_std·(dy − dβ/M − x̂·dγ/M)` with `x̂ = (x − μ)·inv_std`
/// and `M = N·S`.
pub(crate) fn batch_norm_backward(
    x: &[f32],
    dy: &[f32],
    [n, c, s]: [usize; 3],
    mean: &[f32],
    inv_std: &[f32],
    gamma: &[f32],
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (dgamma, dbeta): (Vec<f32>, Vec<f32>) = (0..c)
        .into_par_iter()
        .map(|ch| {
            let (m, r) = (mean[ch], inv_std[ch]);
            let (mut sum_dy, mut sum_dy_xhat) = (0.0f64, 0.0f64);
            for i in 0..n {
                let (xp, gp) = (&x[(i * c + ch) * s..][..s], &dy[(i * c + ch) * s..][..s]);
                sum_dy += gp.iter().sum::<f32>() as f64;
                sum_dy_xhat += xp.iter().zip(gp).map(|(x, g)| (x - m) * g).sum::<f32>() as f64;
            }
            ((sum_dy_xhat * r as f64) as f32, sum_dy as f32)
        })
        .unzip();
    let count = (n * s) as f32;
    let mut dx = vec![0.0f32; x.len()];
    dx.par_chunks_mut(c * s).zip(x.par_chunks(c * s).zip(dy.par_chunks(c * s))).for_each(
        |(dx, (x, dy))| {
            for ch in 0..c {
                let (m, r) = (mean[ch], inv_std[ch]);
                let a = gamma[ch] * r;
                let (mb, mg) = (dbeta[ch] / count, dgamma[ch] / count);
                let range = ch * s..(ch + 1) * s;
                for ((d, x), g) in
                    dx[range.clone()].iter_mut().zip(&x[range.clone()]).zip(&dy[range])
                {
                    *d = a * (g - mb - (x - m) * r * mg);
                }
            }
        },
    );
    (dx, dgamma, dbeta)
}

/// A 2-D max pool's shapes over `planes` (`N·C`) independent `H × W` planes; padding counts as
/// −∞, and every window reaches into the plane ([`PoolGeometry::windows_reach_the_plane`],
/// checked by the caller).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PoolGeometry {
    /// `N · C`.
    pub planes: usize,
    /// Input height and width.
    pub size: [usize; 2],
    /// Window height and width.
    pub kernel: [usize; 2],
    /// Output height and width.
    pub out: [usize; 2],
    /// Stride.
    pub stride: [usize; 2],
    /// Padding (the same on both sides).
    pub padding: [usize; 2],
    /// Dilation.
    pub dilation: [usize; 2],
}

impl PoolGeometry {
    /// Whether every window has a tap inside the plane (a dilated window can fall between the
    /// plane and the padding's far edge).
    pub(crate) fn windows_reach_the_plane(&self) -> bool {
        (0..2).all(|axis| self.taps(axis).iter().all(|(lo, hi)| lo < hi))
    }

    /// For each output position along `axis`, the window taps `t` whose input index
    /// `o·s + t·d − pad` lies inside the plane.
    fn taps(&self, axis: usize) -> Vec<(usize, usize)> {
        let (s, d, pad, k, size) = (
            self.stride[axis],
            self.dilation[axis],
            self.padding[axis],
            self.kernel[axis],
            self.size[axis],
        );
        (0..self.out[axis])
            .map(|o| {
                let inside = |t: usize| (o * s + t * d).checked_sub(pad).is_some_and(|i| i < size);
                let lo = (0..k).find(|&t| inside(t)).unwrap_or(k);
                let hi = (lo..k).take_while(|&t| inside(t)).last().map_or(lo, |t| t + 1);
                (lo, hi)
            })
            .collect()
    }
}

/// Max pool forward over every plane: the maxima and, when `with_indices`, the in-plane index of
/// each maximum (the first one in the window; a NaN wins, the last NaN's index, as PyTorch and
/// burn report). Without indices the second vector is empty.
pub(crate) fn max_pool2d_forward(
    x: &[f32],
    g: &PoolGeometry,
    with_indices: bool,
) -> (Vec<f32>, Vec<u32>) {
    let ([h, w], [oh, ow]) = (g.size, g.out);
    let ([s0, s1], [d0, d1], [p0, p1]) = (g.stride, g.dilation, g.padding);
    let (rows, cols) = (g.taps(0), g.taps(1));
    // For each column tap, the output columns whose window it falls inside of (a range: the
    // windows slide monotonically), and each output column's first tap.
    let reach: Vec<(usize, usize)> = (0..g.kernel[1])
        .map(|kx| {
            let mut hit = (0..ow).filter(|&o| cols[o].0 <= kx && kx < cols[o].1);
            hit.next().map_or((0, 0), |a| (a, hit.next_back().map_or(a + 1, |b| b + 1)))
        })
        .collect();
    let first: Vec<usize> =
        cols.iter().enumerate().map(|(ox, &(kx0, _))| ox * s1 + kx0 * d1 - p1).collect();
    // One output row at a time, tap by tap across the row (contiguous updates of the running
    // maxima), in each window's own tap order (row-major), so "the first maximum" is the
    // definition's. Only the index is carried (the maximum is `x[arg]`), through a select the
    // compiler must not turn into a branch: on real activations `v > max` is a coin flip, and as
    // a branch (which an `if`, or bit masks, on the f32 became) its mispredictions made the pool
    // ≈ 4× slower.
    let plane = |x: &[f32], y: &mut [f32], mut at: Option<&mut [u32]>| {
        let mut arg = vec![0usize; ow];
        for (oy, &(ky0, ky1)) in rows.iter().enumerate() {
            let row_of = |ky: usize| (oy * s0 + ky * d0 - p0) * w;
            let first_row = row_of(ky0);
            arg.iter_mut().zip(&first).for_each(|(a, &c)| *a = first_row + c);
            for ky in ky0..ky1 {
                let row = row_of(ky);
                for (kx, &(o0, o1)) in reach.iter().enumerate().filter(|(_, (o0, o1))| o0 < o1) {
                    let mut i = row + o0 * s1 + kx * d1 - p1;
                    for a in &mut arg[o0..o1] {
                        let v = x[i];
                        let take = (v > x[*a]) | v.is_nan();
                        *a = std::hint::select_unpredictable(take, i, *a);
                        i += s1;
                    }
                }
            }
            let (y, at) = (&mut y[oy * ow..(oy + 1) * ow], at.as_deref_mut());
            y.iter_mut().zip(&arg).for_each(|(y, &a)| *y = x[a]);
            if let Some(at) = at {
                at[oy * ow..(oy + 1) * ow].iter_mut().zip(&arg).for_each(|(t, &a)| *t = a as u32);
            }
        }
    };
    let len = g.planes * oh * ow;
    let mut y = vec![0.0f32; len];
    let planes = y.par_chunks_mut(oh * ow).zip(x.par_chunks(h * w));
    if with_indices {
        let mut at = vec![0u32; len];
        planes.zip(at.par_chunks_mut(oh * ow)).for_each(|((y, x), at)| plane(x, y, Some(at)));
        (y, at)
    } else {
        planes.for_each(|(y, x)| plane(x, y, None));
        (y, Vec::new())
    }
}

/// Max pool backward: each output gradient added to its window's maximum (`indices` from
/// [`max_pool2d_forward`]); overlapping windows add up, in output order, per plane.
pub(crate) fn max_pool2d_backward(dy: &[f32], indices: &[u32], g: &PoolGeometry) -> Vec<f32> {
    let (plane_in, plane_out) = (g.size[0] * g.size[1], g.out[0] * g.out[1]);
    let mut dx = vec![0.0f32; g.planes * plane_in];
    dx.par_chunks_mut(plane_in)
        .zip(dy.par_chunks(plane_out).zip(indices.par_chunks(plane_out)))
        .for_each(|(dx, (dy, at))| {
            for (&d, &i) in dy.iter().zip(at) {
                dx[i as usize] += d;
            }
        });
    dx
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The convolution written as its definition, for the tests: `y[n, co, oh, ow] =
    /// Σ w[co, ci, i, j] · x[n, ci, oh·s + i·d − p, ow·s + j·d − p]`.
    fn conv_direct(x: &[f32], w: &[f32], g: &ConvGeometry) -> Vec<f32> {
        let mut y = vec![0.0f32; g.n * g.c_out * g.p()];
        for n in 0..g.n {
            for co in 0..g.c_out {
                for oh in 0..g.out[0] {
                    for ow in 0..g.out[1] {
                        let mut acc = 0.0f64;
                        for ci in 0..g.c_in {
                            for i in 0..g.kernel[0] {
                                for j in 0..g.kernel[1] {
                                    let ih = (oh * g.stride[0] + i * g.dilation[0]) as isize
                                        - g.padding[0] as isize;
                                    let iw = (ow * g.stride[1] + j * g.dilation[1]) as isize
                                        - g.padding[1] as isize;
                                    if ih < 0 || iw < 0 || ih >= g.h as isize || iw >= g.w as isize
                                    {
                                        continue;
                                    }
                                    let xv = x[((n * g.c_in + ci) * g.h + ih as usize) * g.w
                                        + iw as usize];
                                    let wv =
                                        w[((co * g.c_in + ci) * g.kernel[0] + i) * g.kernel[1] + j];
                                    acc += (xv * wv) as f64;
                                }
                            }
                        }
                        y[((n * g.c_out + co) * g.out[0] + oh) * g.out[1] + ow] = acc as f32;
                    }
                }
            }
        }
        y
    }

    /// A 3×3 convolution `[n, c_in, side, c_out]` on square images with `stride` and `padding`.
    fn square_3x3(
        [n, c_in, side, c_out]: [usize; 4],
        stride: usize,
        padding: usize,
    ) -> ConvGeometry {
        let out = (side + 2 * padding - 3) / stride + 1;
        ConvGeometry {
            n,
            c_in,
            h: side,
            w: side,
            c_out,
            kernel: [3, 3],
            out: [out, out],
            stride: [stride, stride],
            padding: [padding, padding],
            dilation: [1, 1],
        }
    }

    /// Input, weight and output gradient for `g`, drawn from `seed`.
    fn operands(g: &ConvGeometry, seed: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        (
            values(g.n * g.c_in * g.h * g.w, seed),
            values(g.c_out * g.k(), seed + 1),
            values(g.n * g.c_out * g.p(), seed + 2),
        )
    }

    fn values(len: usize, seed: usize) -> Vec<f32> {
        (0..len).map(|i| (((i * 7919 + seed * 104729) % 2003) as f32 / 1001.0) - 1.0).collect()
    }

    /// The im2col forward equals the definition, with and without bias.
    #[test]
    fn conv_forward_matches_the_definition() {
        for (stride, padding, h) in [(1, 1, 6), (2, 1, 7), (2, 0, 8), (1, 2, 5)] {
            let out = |size: usize| (size + 2 * padding - 3) / stride + 1;
            let g = ConvGeometry {
                n: 3,
                c_in: 2,
                h,
                w: h + 2,
                c_out: 4,
                kernel: [3, 3],
                out: [out(h), out(h + 2)],
                stride: [stride, stride],
                padding: [padding, padding],
                dilation: [1, 1],
            };
            let x = values(g.n * g.c_in * g.h * g.w, 6);
            let w = values(g.c_out * g.k(), 7);
            let bias = values(g.c_out, 8);
            let want = conv_direct(&x, &w, &g);
            let got = conv2d_forward(&x, &w, None, &g);
            let got_b = conv2d_forward(&x, &w, Some(&bias), &g);
            for (i, (a, b)) in want.iter().zip(&got).enumerate() {
                assert!((a - b).abs() < 1e-5, "{g:?} y[{i}]: {a} vs {b}");
                let with_bias = got_b[i] - bias[(i / g.p()) % g.c_out];
                assert!((a - with_bias).abs() < 1e-5, "{g:?} y[{i}] with bias");
            }
        }
    }

    /// The gradients are the same to the bit on 1, 2 and 3 threads (the quickstart's tables are
    /// byte-identical whatever `RAYON_NUM_THREADS`).
    #[test]
    fn gradients_do_not_depend_on_the_thread_count() {
        let g = square_3x3([13, 5, 9, 7], 1, 1);
        let (x, w, dy) = operands(&g, 9);
        let on = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool");
            pool.install(|| {
                let (dx, dw) = conv2d_backward(&x, &w, &dy, &g, true, true);
                let y = conv2d_forward(&x, &w, None, &g);
                (dx, dw, y)
            })
        };
        let one = on(1);
        for threads in [2, 3] {
            assert!(on(threads) == one, "{threads} threads differ from 1");
        }
    }

    /// `im2col` and `col2im` are adjoint: `⟨im2col(x), c⟩ = ⟨x, col2im(c)⟩` for every geometry
    /// the nets use (stride 1 and 2, padding 0, 1 and 3, a 7×7 kernel, dilation 2).
    #[test]
    fn im2col_and_col2im_are_adjoint() {
        for (kernel, stride, padding, dilation, h) in
            [(3, 1, 1, 1, 9), (3, 2, 1, 1, 10), (1, 2, 0, 1, 9), (7, 2, 3, 1, 13), (3, 1, 2, 2, 8)]
        {
            let out = (h + 2 * padding - dilation * (kernel - 1) - 1) / stride + 1;
            let g = ConvGeometry {
                n: 1,
                c_in: 2,
                h,
                w: h + 1,
                c_out: 1,
                kernel: [kernel, kernel],
                out: [out, (h + 1 + 2 * padding - dilation * (kernel - 1) - 1) / stride + 1],
                stride: [stride, stride],
                padding: [padding, padding],
                dilation: [dilation, dilation],
            };
            let x = values(g.c_in * g.h * g.w, 1);
            let c = values(g.k() * g.p(), 2);
            let mut col = vec![0.0; g.k() * g.p()];
            im2col(&x, &g, &mut col);
            let mut back = vec![0.0; x.len()];
            col2im(&c, &g, &mut back);
            let lhs: f64 = col.iter().zip(&c).map(|(a, b)| (a * b) as f64).sum();
            let rhs: f64 = x.iter().zip(&back).map(|(a, b)| (a * b) as f64).sum();
            assert!((lhs - rhs).abs() < 1e-4 * lhs.abs().max(1.0), "{g:?}: {lhs} vs {rhs}");
        }
    }

    /// The gradients equal the definition's: `dW[co, ci, i, j] = Σ dy·x` and `dx` the adjoint,
    /// checked through `⟨conv(x, W), dy⟩`, which is linear in each: its gradient in `W` is dW and
    /// in `x` is dx, so perturbing one entry by 1 changes it by exactly that entry's gradient.
    #[test]
    fn conv_gradients_match_the_definition() {
        let g = ConvGeometry { w: 6, out: [4, 3], ..square_3x3([3, 2, 7, 3], 2, 1) };
        let (x, w, dy) = operands(&g, 3);
        let inner = |x: &[f32], w: &[f32]| -> f64 {
            conv_direct(x, w, &g).iter().zip(&dy).map(|(a, b)| (a * b) as f64).sum()
        };
        let base = inner(&x, &w);
        let (dx, dw) = conv2d_backward(&x, &w, &dy, &g, true, true);
        let (dx, dw) = (dx.expect("asked for dx"), dw.expect("asked for dw"));
        for idx in 0..w.len() {
            let mut w1 = w.clone();
            w1[idx] += 1.0;
            let want = inner(&x, &w1) - base;
            assert!((dw[idx] as f64 - want).abs() < 1e-4, "dW[{idx}]: {} vs {want}", dw[idx]);
        }
        for idx in (0..x.len()).step_by(7) {
            let mut x1 = x.clone();
            x1[idx] += 1.0;
            let want = inner(&x1, &w) - base;
            assert!((dx[idx] as f64 - want).abs() < 1e-4, "dx[{idx}]: {} vs {want}", dx[idx]);
        }
    }

    /// The max pool written as its definition: per output, the first maximum over the window's
    /// taps that lie inside the plane (a NaN wins).
    fn max_pool_direct(x: &[f32], g: &PoolGeometry) -> (Vec<f32>, Vec<u32>) {
        let (mut y, mut at) = (Vec::new(), Vec::new());
        for plane in x.chunks(g.size[0] * g.size[1]) {
            for oy in 0..g.out[0] {
                for ox in 0..g.out[1] {
                    let mut best: Option<(f32, usize)> = None;
                    for i in 0..g.kernel[0] {
                        for j in 0..g.kernel[1] {
                            let iy = (oy * g.stride[0] + i * g.dilation[0]) as isize
                                - g.padding[0] as isize;
                            let ix = (ox * g.stride[1] + j * g.dilation[1]) as isize
                                - g.padding[1] as isize;
                            if iy < 0
                                || ix < 0
                                || iy >= g.size[0] as isize
                                || ix >= g.size[1] as isize
                            {
                                continue;
                            }
                            let k = iy as usize * g.size[1] + ix as usize;
                            let v = plane[k];
                            if best.is_none_or(|(b, _)| v > b || v.is_nan()) {
                                best = Some((v, k));
                            }
                        }
                    }
                    let (v, k) = best.expect("every window reaches into the plane");
                    y.push(v);
                    at.push(k as u32);
                }
            }
        }
        (y, at)
    }

    fn pool(
        planes: usize,
        size: [usize; 2],
        k: usize,
        s: usize,
        p: usize,
        d: usize,
    ) -> PoolGeometry {
        let out = |n: usize| (n + 2 * p - d * (k - 1) - 1) / s + 1;
        PoolGeometry {
            planes,
            size,
            kernel: [k, k],
            out: [out(size[0]), out(size[1])],
            stride: [s, s],
            padding: [p, p],
            dilation: [d, d],
        }
    }

    /// Forward (with and without indices) equals the definition, ties and NaNs included, for the
    /// small CNN's 2×2/2 pool, ResNet's 3×3/2 padded stem pool, odd sizes, stride 1 and dilation;
    /// the backward sends each output gradient to its maximum: `Σ dx·x = Σ dy·y`, and `dx` is the
    /// scatter of `dy` at the definition's indices.
    #[test]
    fn max_pool_matches_the_definition() {
        for (i, g) in [
            pool(6, [8, 8], 2, 2, 0, 1),
            pool(5, [9, 7], 3, 2, 1, 1),
            pool(3, [6, 5], 3, 1, 1, 1),
            pool(4, [9, 9], 2, 1, 0, 2),
            pool(2, [1, 1], 2, 2, 1, 1),
        ]
        .iter()
        .enumerate()
        {
            // coarse values: ties in most windows
            let mut x: Vec<f32> = values(g.planes * g.size[0] * g.size[1], 40 + i)
                .iter()
                .map(|v| (v * 3.0).round())
                .collect();
            let nan_at = (g.size[1] + 1).min(x.len() - 1);
            x[nan_at] = f32::NAN;
            let (want_y, want_at) = max_pool_direct(&x, g);
            let (y, at) = max_pool2d_forward(&x, g, true);
            let (y2, none) = max_pool2d_forward(&x, g, false);
            let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&y), bits(&want_y), "{g:?} output");
            assert_eq!(bits(&y2), bits(&want_y), "{g:?} output without indices");
            assert_eq!(at, want_at, "{g:?} indices");
            assert!(none.is_empty());

            let dy = values(y.len(), 70 + i);
            let dx = max_pool2d_backward(&dy, &at, g);
            let plane = g.size[0] * g.size[1];
            let mut want_dx = vec![0.0f32; dx.len()];
            for (o, (&d, &k)) in dy.iter().zip(&want_at).enumerate() {
                want_dx[o / (g.out[0] * g.out[1]) * plane + k as usize] += d;
            }
            assert_eq!(bits(&dx), bits(&want_dx), "{g:?} input gradient");
            let finite = |v: &f32| v.is_finite();
            let (xs, ys) = (
                x.iter().map(|v| if finite(v) { *v } else { 0.0 }),
                y.iter().map(|v| if finite(v) { *v } else { 0.0 }),
            );
            let lhs: f64 = dx.iter().zip(xs).map(|(a, b)| (a * b) as f64).sum();
            let rhs: f64 = dy.iter().zip(ys).map(|(a, b)| (a * b) as f64).sum();
            assert!(
                (lhs - rhs).abs() < 1e-3 * (1.0 + rhs.abs()),
                "{g:?}: Σ dx·x {lhs} vs Σ dy·y {rhs}"
            );
        }
    }
}
