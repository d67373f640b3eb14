//! 3x3 convolution, stride 1, as Winograd F(2x2, 3x3) (Lavin & Gray, "Fast Algorithms for
//! Convolutional Neural Networks", 2016): every 2x2 output tile is
//! `A^T [(G g G^T) ⊙ (B^T d B)] A` over a 4x4 input tile `d`, so the channel sums become
//! 16 matrix products `U_k (Cout x Cin) · V_k (Cin x tiles)` with 16/36 of the direct
//! convolution's multiplications. The products run through the `gemm` crate (the same
//! AVX-512 / AVX2 kernels burn's flex matmul uses), one block of tile rows per rayon task.
//!
//! Transforms (F(2x2, 3x3)):
//! `B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]`,
//! `G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]`, `A^T = [1 1 1 0; 0 1 -1 -1]`.
//! Their entries are 0, ±1 and ±1/2, so the rounding stays that of a few additions per
//! value (measured against burn's direct convolution in the tests below and in
//! `tests/kernels.rs`).

use rayon::prelude::*;

/// The shape of one call: `batch x cin x h x w` in, `cout` filters of 3x3, `pad` zeros on
/// every side, stride 1, so the output is `batch x cout x (h + 2 pad - 2) x (w + 2 pad - 2)`.
#[derive(Clone, Copy, Debug)]
pub struct Conv3x3 {
    pub batch: usize,
    pub cin: usize,
    pub cout: usize,
    pub h: usize,
    pub w: usize,
    pub pad: usize,
}

impl Conv3x3 {
    pub fn out_hw(&self) -> (usize, usize) {
        (self.h + 2 * self.pad - 2, self.w + 2 * self.pad - 2)
    }
}

/// `U = G g G^T` for every (cout, cin) filter, stored `[16][cout][cin]`.
pub fn transform_weights(weight: &[f32], cout: usize, cin: usize) -> Vec<f32> {
    let mut u = vec![0f32; 16 * cout * cin];
    let plane = cout * cin;
    for (f, g) in weight.chunks_exact(9).enumerate() {
        // G g: 4x3.
        let mut t = [[0f32; 3]; 4];
        for j in 0..3 {
            let (a, b, c) = (g[j], g[3 + j], g[6 + j]);
            t[0][j] = a;
            t[1][j] = 0.5 * (a + b + c);
            t[2][j] = 0.5 * (a - b + c);
            t[3][j] = c;
        }
        // (G g) G^T: 4x4.
        for (i, r) in t.iter().enumerate() {
            let (a, b, c) = (r[0], r[1], r[2]);
            let row = [a, 0.5 * (a + b + c), 0.5 * (a - b + c), c];
            for (j, v) in row.into_iter().enumerate() {
                u[(i * 4 + j) * plane + f] = v;
            }
        }
    }
    u
}

/// Tile rows per task: enough tiles (about 128) for the products to run at full speed.
fn rows_per_block(tiles_w: usize) -> usize {
    128usize.div_ceil(tiles_w).max(1)
}

/// `out = conv3x3(x, weight) + bias`, with `u` from [`transform_weights`]. `x` is
/// `batch x cin x h x w`, `out` `batch x cout x oh x ow`, both contiguous.
pub fn conv3x3(x: &[f32], u: &[f32], bias: Option<&[f32]>, s: Conv3x3, out: &mut [f32]) {
    let (oh, ow) = s.out_hw();
    let (th, tw) = (oh.div_ceil(2), ow.div_ceil(2));
    let rpb = rows_per_block(tw);
    let blocks = th.div_ceil(rpb);
    let in_plane = s.cin * s.h * s.w;
    let out_plane = s.cout * oh * ow;
    let out_ptr = SendPtr(out.as_mut_ptr());
    (0..s.batch * blocks).into_par_iter().for_each(|i| {
        let (b, blk) = (i / blocks, i % blocks);
        let ty0 = blk * rpb;
        let ty1 = (ty0 + rpb).min(th);
        let xs = &x[b * in_plane..(b + 1) * in_plane];
        // SAFETY: the task writes only output rows 2*ty0 .. 2*ty1 of image b, which no
        // other task touches; the pointer is valid for out.len() values.
        let out_img =
            unsafe { std::slice::from_raw_parts_mut(out_ptr.get().add(b * out_plane), out_plane) };
        block(xs, u, bias, s, ty0, ty1, out_img);
    });
}

#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}
impl SendPtr {
    fn get(self) -> *mut f32 {
        self.0
    }
}

thread_local! {
    static SCRATCH: std::cell::RefCell<(Vec<f32>, Vec<f32>, Vec<f32>)> =
        const { std::cell::RefCell::new((Vec::new(), Vec::new(), Vec::new())) };
}

/// The transform of one block's input: `v[k][ci][t]` for tiles `t` of tile rows
/// `ty0..ty1`. Every step runs over whole rows of tiles (contiguous slices), so it
/// vectorises: the padded input row is split into even and odd columns, which turns the
/// stride-2 tile windows into unit-stride slices.
#[inline(always)]
fn input_transform_body(
    x: &[f32],
    s: Conv3x3,
    ty0: usize,
    ty1: usize,
    v: &mut [f32],
    tmp: &mut [f32],
) {
    let (_, ow) = s.out_hw();
    let tw = ow.div_ceil(2);
    let nt = (ty1 - ty0) * tw;
    let cin = s.cin;
    let pw = 2 * tw + 2;
    let (row, rest) = tmp.split_at_mut(pw);
    let (eo, h) = rest.split_at_mut(2 * (tw + 1));
    let (e, o) = eo.split_at_mut(tw + 1);
    for ci in 0..cin {
        let plane = &x[ci * s.h * s.w..(ci + 1) * s.h * s.w];
        for ty in ty0..ty1 {
            for r in 0..4 {
                let iy = (2 * ty + r) as isize - s.pad as isize;
                if iy < 0 || iy >= s.h as isize {
                    row.fill(0.0);
                } else {
                    let src = &plane[iy as usize * s.w..(iy as usize + 1) * s.w];
                    let lead = s.pad.min(pw);
                    row[..lead].fill(0.0);
                    let n = s.w.min(pw - lead);
                    row[lead..lead + n].copy_from_slice(&src[..n]);
                    row[lead + n..].fill(0.0);
                }
                for (t, pair) in row.chunks_exact(2).enumerate() {
                    e[t] = pair[0];
                    o[t] = pair[1];
                }
                // B^T applied along the row: h[r][j][t] for the tile at column 2t.
                let hr = &mut h[r * 4 * tw..(r + 1) * 4 * tw];
                let (h0, hr) = hr.split_at_mut(tw);
                let (h1, hr) = hr.split_at_mut(tw);
                let (h2, h3) = hr.split_at_mut(tw);
                for t in 0..tw {
                    let (e0, o0, e1, o1) = (e[t], o[t], e[t + 1], o[t + 1]);
                    h0[t] = e0 - e1;
                    h1[t] = o0 + e1;
                    h2[t] = e1 - o0;
                    h3[t] = o0 - o1;
                }
            }
            // B^T applied down the column, written as v[(4i + j)][ci][base + t].
            let base = (ty - ty0) * tw;
            for j in 0..4 {
                let hrow = |r: usize| &h[(r * 4 + j) * tw..(r * 4 + j + 1) * tw];
                let (a, b, c, d) = (hrow(0), hrow(1), hrow(2), hrow(3));
                let at = |i: usize| ((i * 4 + j) * cin + ci) * nt + base;
                let (i0, i1, i2, i3) = (at(0), at(1), at(2), at(3));
                for t in 0..tw {
                    v[i0 + t] = a[t] - c[t];
                    v[i1 + t] = b[t] + c[t];
                    v[i2 + t] = c[t] - b[t];
                    v[i3 + t] = b[t] - d[t];
                }
            }
        }
    }
}

/// `Y = A^T M A` plus the bias for every tile of the block, written into the output rows
/// `2 ty0 .. 2 ty1` (clipped to the output size).
#[inline(always)]
fn output_transform_body(
    m: &[f32],
    bias: Option<&[f32]>,
    s: Conv3x3,
    ty0: usize,
    ty1: usize,
    out: &mut [f32],
    tmp: &mut [f32],
) {
    let (oh, ow) = s.out_hw();
    let tw = ow.div_ceil(2);
    let nt = (ty1 - ty0) * tw;
    let cout = s.cout;
    let (ya, yb) = tmp[..4 * tw].split_at_mut(2 * tw);
    for co in 0..cout {
        let b = bias.map_or(0.0, |b| b[co]);
        let oplane = &mut out[co * oh * ow..(co + 1) * oh * ow];
        for ty in ty0..ty1 {
            let base = (ty - ty0) * tw;
            let mk = |k: usize| &m[(k * cout + co) * nt + base..(k * cout + co) * nt + base + tw];
            // A^T down the columns (rows 0 and 1 of the tile), then along the rows.
            let (y00, y01) = ya.split_at_mut(tw);
            let (y10, y11) = yb.split_at_mut(tw);
            let (m0, m1, m2, m3) = (mk(0), mk(1), mk(2), mk(3));
            let (m4, m5, m6, m7) = (mk(4), mk(5), mk(6), mk(7));
            let (m8, m9, m10, m11) = (mk(8), mk(9), mk(10), mk(11));
            let (m12, m13, m14, m15) = (mk(12), mk(13), mk(14), mk(15));
            for t in 0..tw {
                let s00 = m0[t] + m4[t] + m8[t];
                let s01 = m1[t] + m5[t] + m9[t];
                let s02 = m2[t] + m6[t] + m10[t];
                let s03 = m3[t] + m7[t] + m11[t];
                let s10 = m4[t] - m8[t] - m12[t];
                let s11 = m5[t] - m9[t] - m13[t];
                let s12 = m6[t] - m10[t] - m14[t];
                let s13 = m7[t] - m11[t] - m15[t];
                y00[t] = s00 + s01 + s02 + b;
                y01[t] = s01 - s02 - s03 + b;
                y10[t] = s10 + s11 + s12 + b;
                y11[t] = s11 - s12 - s13 + b;
            }
            for (r, (left, right)) in [(&*y00, &*y01), (&*y10, &*y11)].into_iter().enumerate() {
                let yy = 2 * ty + r;
                if yy >= oh {
                    break;
                }
                let o = &mut oplane[yy * ow..(yy + 1) * ow];
                let mut pairs = o.chunks_exact_mut(2);
                for ((p, l), rr) in (&mut pairs).zip(left).zip(right) {
                    p[0] = *l;
                    p[1] = *rr;
                }
                if let [last] = pairs.into_remainder() {
                    *last = left[tw - 1];
                }
            }
        }
    }
}

super::cpu::dispatch!(fn input_transform(x: &[f32], s: Conv3x3, ty0: usize, ty1: usize, v: &mut [f32], tmp: &mut [f32]) => input_transform_body);
super::cpu::dispatch!(fn output_transform(m: &[f32], bias: Option<&[f32]>, s: Conv3x3, ty0: usize, ty1: usize, out: &mut [f32], tmp: &mut [f32]) => output_transform_body);

fn block(
    x: &[f32],
    u: &[f32],
    bias: Option<&[f32]>,
    s: Conv3x3,
    ty0: usize,
    ty1: usize,
    out: &mut [f32],
) {
    let (_, ow) = s.out_hw();
    let tw = ow.div_ceil(2);
    let nt = (ty1 - ty0) * tw;
    let (cin, cout) = (s.cin, s.cout);
    SCRATCH.with(|scratch| {
        let mut scratch = scratch.borrow_mut();
        let (v, m, tmp) = &mut *scratch;
        v.resize(16 * cin * nt, 0.0);
        m.resize(16 * cout * nt, 0.0);
        tmp.resize((2 * tw + 2) + 2 * (tw + 1) + 16 * tw, 0.0);
        input_transform(x, s, ty0, ty1, v, tmp);
        // 16 products M_k (cout x nt) = U_k (cout x cin) · V_k (cin x nt).
        for k in 0..16 {
            let uk = &u[k * cout * cin..(k + 1) * cout * cin];
            let vk = &v[k * cin * nt..(k + 1) * cin * nt];
            let mk = &mut m[k * cout * nt..(k + 1) * cout * nt];
            // SAFETY: uk holds cout * cin, vk cin * nt and mk cout * nt values, row-major
            // with the strides given; mk does not alias the inputs.
            unsafe {
                gemm::gemm(
                    cout,
                    nt,
                    cin,
                    mk.as_mut_ptr(),
                    1,
                    nt as isize,
                    false,
                    uk.as_ptr(),
                    1,
                    cin as isize,
                    vk.as_ptr(),
                    1,
                    nt as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
        }
        output_transform(m, bias, s, ty0, ty1, out, tmp);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn direct(x: &[f32], w: &[f32], bias: &[f32], s: Conv3x3) -> Vec<f64> {
        let (oh, ow) = s.out_hw();
        let mut out = vec![0f64; s.batch * s.cout * oh * ow];
        for b in 0..s.batch {
            for co in 0..s.cout {
                for y in 0..oh {
                    for xo in 0..ow {
                        let mut acc = bias[co] as f64;
                        for ci in 0..s.cin {
                            for ky in 0..3 {
                                for kx in 0..3 {
                                    let iy = (y + ky) as isize - s.pad as isize;
                                    let ix = (xo + kx) as isize - s.pad as isize;
                                    if iy < 0 || ix < 0 || iy >= s.h as isize || ix >= s.w as isize
                                    {
                                        continue;
                                    }
                                    acc += x
                                        [((b * s.cin + ci) * s.h + iy as usize) * s.w + ix as usize]
                                        as f64
                                        * w[((co * s.cin + ci) * 3 + ky) * 3 + kx] as f64;
                                }
                            }
                        }
                        out[((b * s.cout + co) * oh + y) * ow + xo] = acc;
                    }
                }
            }
        }
        out
    }

    #[test]
    fn matches_direct_convolution() {
        // Odd and even sizes, padding 0/1/2, a block boundary (tw = 3 -> 43 rows a block).
        for (batch, cin, cout, h, w, pad) in [
            (1, 3, 4, 5, 7, 1),
            (2, 5, 3, 8, 6, 0),
            (1, 2, 2, 4, 4, 2),
            (1, 4, 5, 97, 5, 1),
        ] {
            let s = Conv3x3 {
                batch,
                cin,
                cout,
                h,
                w,
                pad,
            };
            let mut r = 1u32;
            let mut rnd = || {
                r = r.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (r >> 8) as f32 / (1 << 24) as f32 - 0.5
            };
            let x: Vec<f32> = (0..batch * cin * h * w).map(|_| rnd()).collect();
            let wt: Vec<f32> = (0..cout * cin * 9).map(|_| rnd()).collect();
            let bias: Vec<f32> = (0..cout).map(|_| rnd()).collect();
            let (oh, ow) = s.out_hw();
            let mut out = vec![f32::NAN; batch * cout * oh * ow];
            conv3x3(
                &x,
                &transform_weights(&wt, cout, cin),
                Some(&bias),
                s,
                &mut out,
            );
            let want = direct(&x, &wt, &bias, s);
            for (i, (a, b)) in out.iter().zip(&want).enumerate() {
                assert!((*a as f64 - b).abs() < 1e-5, "{s:?} at {i}: {a} vs {b}");
            }
        }
    }
}
