//! Convolution as one matrix product per block of output columns: `out (cout x cols) =
//! W (cout x cin kh kw) · col (cin kh kw x cols) + bias`, where `col` holds the input
//! patches of `cols` output positions. A 1x1, stride-1, unpadded convolution multiplies
//! the input itself (no copy). Blocks hold up to [`COL_BUDGET`] patch values, so the
//! weight matrix is packed once per block of thousands of columns, not once per output
//! row, and the product runs on all threads.

use rayon::prelude::*;

/// Patch values per block (16 MiB of f32).
const COL_BUDGET: usize = 1 << 22;

/// One convolution call (one group): `batch x cin x h x w` in, `cout x cin x kh x kw`
/// weights, per-side padding `(top, bottom, left, right)`.
#[derive(Clone, Copy, Debug)]
pub struct ConvShape {
    pub batch: usize,
    pub cin: usize,
    pub h: usize,
    pub w: usize,
    pub cout: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: [usize; 2],
    pub dilation: [usize; 2],
    pub pad: [usize; 4],
}

impl ConvShape {
    /// Output height and width (PyTorch's formula); `None` when the kernel does not fit.
    pub fn out_hw(&self) -> Option<(usize, usize)> {
        let span = |n: usize, p0: usize, p1: usize, k: usize, d: usize, s: usize| {
            let padded = n + p0 + p1;
            let reach = d * (k - 1) + 1;
            (padded >= reach && s > 0).then(|| (padded - reach) / s + 1)
        };
        Some((
            span(
                self.h,
                self.pad[0],
                self.pad[1],
                self.kh,
                self.dilation[0],
                self.stride[0],
            )?,
            span(
                self.w,
                self.pad[2],
                self.pad[3],
                self.kw,
                self.dilation[1],
                self.stride[1],
            )?,
        ))
    }
}

/// `out = conv(x, weight) + bias`; `x`, `weight`, `out` contiguous NCHW / OIHW. Tasks are
/// (image, block of output rows), each with its own patch buffer and a single-threaded
/// product, so concurrent callers (data-parallel replicas) never wait on each other's
/// threads.
pub fn conv2d(x: &[f32], weight: &[f32], bias: Option<&[f32]>, s: ConvShape, out: &mut [f32]) {
    let (oh, ow) = s.out_hw().expect("checked by the caller");
    let cols = oh * ow;
    let k = s.cin * s.kh * s.kw;
    let direct = s.kh == 1 && s.kw == 1 && s.stride == [1, 1] && s.pad == [0, 0, 0, 0];
    // Rows per task: within the patch budget, and at least 4 tasks per thread in all.
    let threads = rayon::current_num_threads().max(1);
    let by_budget = (COL_BUDGET / (k * ow).max(1)).max(1);
    let by_threads = (oh * s.batch)
        .div_ceil(4 * threads)
        .div_ceil(s.batch)
        .max(1);
    let rpb = by_budget.min(by_threads).min(oh);
    let blocks = oh.div_ceil(rpb);
    let out_ptr = SendPtr(out.as_mut_ptr());
    (0..s.batch * blocks).into_par_iter().for_each(|t| {
        let (b, blk) = (t / blocks, t % blocks);
        let r0 = blk * rpb;
        let rows = rpb.min(oh - r0);
        let n = rows * ow;
        let xs = &x[b * s.cin * s.h * s.w..(b + 1) * s.cin * s.h * s.w];
        COL.with(|col| {
            let mut col = col.borrow_mut();
            let (rhs, rhs_rs): (*const f32, usize) = if direct {
                (xs[r0 * ow..].as_ptr(), cols)
            } else {
                col.resize(k * n, 0.0);
                im2col(xs, s, r0, rows, ow, &mut col[..k * n]);
                (col.as_ptr(), n)
            };
            // SAFETY: weight is cout x k; rhs is k x n with row stride rhs_rs inside xs or
            // col; the destination is columns r0*ow .. r0*ow + n of every output row of
            // image b, which only this task writes.
            unsafe {
                let dst = out_ptr.get().add(b * s.cout * cols + r0 * ow);
                gemm::gemm(
                    s.cout,
                    n,
                    k,
                    dst,
                    1,
                    cols as isize,
                    false,
                    weight.as_ptr(),
                    1,
                    k as isize,
                    rhs,
                    1,
                    rhs_rs as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
                if let Some(bias) = bias {
                    for (co, bv) in bias.iter().enumerate() {
                        let row = std::slice::from_raw_parts_mut(dst.add(co * cols), n);
                        row.iter_mut().for_each(|v| *v += *bv);
                    }
                }
            }
        });
    });
}

thread_local! {
    static COL: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: hands disjoint output columns to rayon tasks.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}
impl SendPtr {
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// Patches of output rows `r0 .. r0 + rows`: `col[(ci, ky, kx)][(oy - r0) * ow + ox]`.
fn im2col(x: &[f32], s: ConvShape, r0: usize, rows: usize, ow: usize, col: &mut [f32]) {
    let n = rows * ow;
    let [sh, sw] = s.stride;
    let [dh, dw] = s.dilation;
    let (pt, pl) = (s.pad[0] as isize, s.pad[2] as isize);
    col.chunks_mut(n).enumerate().for_each(|(r, dst)| {
        let ci = r / (s.kh * s.kw);
        let ky = r / s.kw % s.kh;
        let kx = r % s.kw;
        let plane = &x[ci * s.h * s.w..(ci + 1) * s.h * s.w];
        for (i, out_row) in dst.chunks_exact_mut(ow).enumerate() {
            let iy = ((r0 + i) * sh + ky * dh) as isize - pt;
            if iy < 0 || iy >= s.h as isize {
                out_row.fill(0.0);
                continue;
            }
            let src = &plane[iy as usize * s.w..(iy as usize + 1) * s.w];
            let x0 = (kx * dw) as isize - pl;
            // Output columns whose input column lies inside the row.
            let first = if x0 >= 0 {
                0
            } else {
                ((-x0) as usize).div_ceil(sw)
            };
            let last = if (s.w as isize) <= x0 {
                0
            } else {
                ((s.w as isize - x0) as usize).div_ceil(sw).min(ow)
            };
            let first = first.min(last);
            out_row[..first].fill(0.0);
            out_row[last..].fill(0.0);
            let start = (x0 + (first * sw) as isize) as usize;
            if sw == 1 {
                out_row[first..last].copy_from_slice(&src[start..start + (last - first)]);
            } else if sw == 2 && last > first {
                // Every other input: a constant stride the compiler turns into
                // de-interleaving vector loads (the 4x4 stride-2 convolutions of the GAN
                // encoders spend their im2col time here).
                let n = last - first;
                let (out, src) = (&mut out_row[first..last], &src[start..start + 2 * n - 1]);
                for (o, pair) in out.iter_mut().zip(src.chunks_exact(2)) {
                    *o = pair[0];
                }
                out[n - 1] = src[2 * n - 2];
            } else {
                for (j, o) in out_row[first..last].iter_mut().enumerate() {
                    *o = src[start + j * sw];
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_direct_sums() {
        for s in [
            ConvShape {
                batch: 2,
                cin: 3,
                h: 9,
                w: 8,
                cout: 4,
                kh: 4,
                kw: 4,
                stride: [2, 2],
                dilation: [1, 1],
                pad: [1, 1, 1, 1],
            },
            ConvShape {
                batch: 1,
                cin: 2,
                h: 7,
                w: 10,
                cout: 3,
                kh: 3,
                kw: 2,
                stride: [1, 3],
                dilation: [2, 1],
                pad: [2, 0, 1, 3],
            },
            // Stride 2 across an odd width, with asymmetric padding and dilation: the
            // de-interleaving gather, including rows where only one column is inside.
            ConvShape {
                batch: 1,
                cin: 3,
                h: 7,
                w: 11,
                cout: 2,
                kh: 3,
                kw: 5,
                stride: [2, 2],
                dilation: [1, 2],
                pad: [1, 2, 3, 0],
            },
            ConvShape {
                batch: 1,
                cin: 2,
                h: 3,
                w: 2,
                cout: 2,
                kh: 2,
                kw: 3,
                stride: [2, 2],
                dilation: [1, 1],
                pad: [0, 1, 2, 2],
            },
            ConvShape {
                batch: 1,
                cin: 5,
                h: 4,
                w: 6,
                cout: 2,
                kh: 1,
                kw: 1,
                stride: [1, 1],
                dilation: [1, 1],
                pad: [0, 0, 0, 0],
            },
        ] {
            let (oh, ow) = s.out_hw().unwrap();
            let x: Vec<f32> = (0..s.batch * s.cin * s.h * s.w)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0)
                .collect();
            let w: Vec<f32> = (0..s.cout * s.cin * s.kh * s.kw)
                .map(|i| ((i * 53 % 89) as f32 - 44.0) / 40.0)
                .collect();
            let bias: Vec<f32> = (0..s.cout).map(|i| i as f32 * 0.5 - 1.0).collect();
            let mut out = vec![f32::NAN; s.batch * s.cout * oh * ow];
            conv2d(&x, &w, Some(&bias), s, &mut out);
            for b in 0..s.batch {
                for co in 0..s.cout {
                    for oy in 0..oh {
                        for ox in 0..ow {
                            let mut acc = bias[co] as f64;
                            for ci in 0..s.cin {
                                for ky in 0..s.kh {
                                    for kx in 0..s.kw {
                                        let iy = (oy * s.stride[0] + ky * s.dilation[0]) as isize
                                            - s.pad[0] as isize;
                                        let ix = (ox * s.stride[1] + kx * s.dilation[1]) as isize
                                            - s.pad[2] as isize;
                                        if iy < 0
                                            || ix < 0
                                            || iy >= s.h as isize
                                            || ix >= s.w as isize
                                        {
                                            continue;
                                        }
                                        acc += x[((b * s.cin + ci) * s.h + iy as usize) * s.w
                                            + ix as usize]
                                            as f64
                                            * w[((co * s.cin + ci) * s.kh + ky) * s.kw + kx] as f64;
                                    }
                                }
                            }
                            let got = out[((b * s.cout + co) * oh + oy) * ow + ox] as f64;
                            assert!(
                                (got - acc).abs() < 1e-4,
                                "{s:?} {b} {co} {oy} {ox}: {got} vs {acc}"
                            );
                        }
                    }
                }
            }
        }
    }
}
