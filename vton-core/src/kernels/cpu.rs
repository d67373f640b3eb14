//! The kernels themselves, on plain `f32` slices (row-major, contiguous), so that tests and
//! benches can call them without a backend.
//!
//! Each kernel body is written once as `#[inline(always)]` scalar-looking code over fixed
//! 16-lane chunks, which LLVM vectorises; [`dispatch!`] compiles it three times (AVX-512,
//! AVX2 + FMA, baseline) and picks one at run time, so a binary built for plain x86-64
//! still uses the wide registers of the machine it runs on.

use rayon::prelude::*;

const LANES: usize = 16;
/// Elements per parallel task of the elementwise kernels (256 KiB of f32).
const TASK: usize = 1 << 16;

/// Compiles `$body` (an `#[inline(always)]` function) once per instruction set and calls
/// the widest one this CPU has.
macro_rules! dispatch {
    ($vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) => $body:ident) => {
        $vis fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
                unsafe fn wide($($arg: $ty),*) { $body($($arg),*) }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) { $body($($arg),*) }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU has the features `wide` was compiled for.
                    return unsafe { wide($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: as above, for AVX2 + FMA.
                    return unsafe { avx2($($arg),*) };
                }
            }
            $body($($arg),*)
        }
    };
}
pub(crate) use dispatch;

/// `e^x` for f32 without a libm call, so that it vectorises: range reduction by
/// `n = round(x / ln 2)` (through the 1.5 * 2^23 rounding constant), a degree-7 Taylor
/// polynomial on `|r| <= ln 2 / 2` (truncation error below 2e-9 relative) and `2^n` built
/// in the exponent bits. Inputs are clamped to [-87.3, 88.3], where `e^x` and `2^n` are normal f32s;
/// the result is within a few ulp of `f32::exp` there.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    const ROUND: f32 = 12_582_912.0; // 1.5 * 2^23
    let x = x.clamp(-87.3, 88.3);
    let t = x * LOG2E + ROUND;
    let n = t - ROUND;
    let k = (t.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0
                    + r * (1.0 / 24.0
                        + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    f32::from_bits(((k + 127) << 23) as u32) * p
}

/// `x * sigmoid(x)`, as `x / (1 + e^-x)`. NaN stays NaN.
#[inline(always)]
pub fn silu1(x: f32) -> f32 {
    x / (1.0 + exp(-x))
}

#[inline(always)]
fn silu_body(src: &[f32], dst: &mut [f32]) {
    let mut s = src.chunks_exact(LANES);
    let mut d = dst.chunks_exact_mut(LANES);
    for (s, d) in (&mut s).zip(&mut d) {
        for i in 0..LANES {
            d[i] = silu1(s[i]);
        }
    }
    for (s, d) in s.remainder().iter().zip(d.into_remainder()) {
        *d = silu1(*s);
    }
}

#[inline(always)]
fn silu_inplace_body(buf: &mut [f32]) {
    let mut c = buf.chunks_exact_mut(LANES);
    for d in &mut c {
        for v in d.iter_mut() {
            *v = silu1(*v);
        }
    }
    for v in c.into_remainder() {
        *v = silu1(*v);
    }
}

dispatch!(fn silu_chunk(src: &[f32], dst: &mut [f32]) => silu_body);
dispatch!(fn silu_chunk_inplace(buf: &mut [f32]) => silu_inplace_body);

/// `dst = silu(src)`, in parallel.
pub fn silu(src: &[f32], dst: &mut [f32]) {
    assert_eq!(src.len(), dst.len());
    src.par_chunks(TASK)
        .zip(dst.par_chunks_mut(TASK))
        .for_each(|(s, d)| silu_chunk(s, d));
}

/// `buf = silu(buf)`, in parallel.
pub fn silu_inplace(buf: &mut [f32]) {
    buf.par_chunks_mut(TASK).for_each(silu_chunk_inplace);
}

/// Sum and sum of squared deviations from `shift` of `x`, in 16 f32 lanes per block of
/// 4096 elements and f64 across blocks (so the rounding error does not grow with the
/// group size: a VAE group at 512x384 holds 786432 values).
#[inline(always)]
fn moments_body(x: &[f32], shift: f32, out: &mut [f64; 2]) {
    let (mut s, mut q) = (0f64, 0f64);
    for block in x.chunks(4096) {
        let mut ls = [0f32; LANES];
        let mut lq = [0f32; LANES];
        let mut c = block.chunks_exact(LANES);
        for v in &mut c {
            for i in 0..LANES {
                let d = v[i] - shift;
                ls[i] += d;
                lq[i] += d * d;
            }
        }
        for (i, v) in c.remainder().iter().enumerate() {
            let d = *v - shift;
            ls[i] += d;
            lq[i] += d * d;
        }
        s += ls.iter().map(|&v| v as f64).sum::<f64>();
        q += lq.iter().map(|&v| v as f64).sum::<f64>();
    }
    *out = [s, q];
}

dispatch!(fn moments(x: &[f32], shift: f32, out: &mut [f64; 2]) => moments_body);

#[inline(always)]
fn affine_body(src: &[f32], dst: &mut [f32], scale: f32, shift: f32, act: bool) {
    let mut s = src.chunks_exact(LANES);
    let mut d = dst.chunks_exact_mut(LANES);
    if act {
        for (s, d) in (&mut s).zip(&mut d) {
            for i in 0..LANES {
                d[i] = silu1(s[i] * scale + shift);
            }
        }
    } else {
        for (s, d) in (&mut s).zip(&mut d) {
            for i in 0..LANES {
                d[i] = s[i] * scale + shift;
            }
        }
    }
    for (s, d) in s.remainder().iter().zip(d.into_remainder()) {
        let y = *s * scale + shift;
        *d = if act { silu1(y) } else { y };
    }
}

#[inline(always)]
fn affine_inplace_body(buf: &mut [f32], scale: f32, shift: f32, act: bool) {
    let mut c = buf.chunks_exact_mut(LANES);
    if act {
        for d in &mut c {
            for v in d.iter_mut() {
                *v = silu1(*v * scale + shift);
            }
        }
    } else {
        for d in &mut c {
            for v in d.iter_mut() {
                *v = *v * scale + shift;
            }
        }
    }
    for v in c.into_remainder() {
        let y = *v * scale + shift;
        *v = if act { silu1(y) } else { y };
    }
}

dispatch!(fn affine(src: &[f32], dst: &mut [f32], scale: f32, shift: f32, act: bool) => affine_body);
dispatch!(fn affine_inplace(buf: &mut [f32], scale: f32, shift: f32, act: bool) => affine_inplace_body);

/// The shape of a GroupNorm call: `batch x channels x spatial` values, `groups` groups.
#[derive(Clone, Copy, Debug)]
pub struct GroupNormShape {
    pub batch: usize,
    pub channels: usize,
    pub spatial: usize,
    pub groups: usize,
}

/// Per (batch, group) mean and `1 / sqrt(var + eps)` (biased variance, as PyTorch's
/// GroupNorm), two passes: the mean, then the squared deviations from it.
fn group_stats(x: &[f32], s: GroupNormShape, eps: f64) -> Vec<(f32, f32)> {
    let n = s.channels / s.groups * s.spatial;
    x.par_chunks(n)
        .map(|g| {
            let mut m = [0f64; 2];
            moments(g, 0.0, &mut m);
            let mean = m[0] / n as f64;
            moments(g, mean as f32, &mut m);
            // m[0] is the sum of deviations from the rounded mean: corrects the variance.
            let var = (m[1] - m[0] * m[0] / n as f64) / n as f64;
            (mean as f32, (1.0 / (var.max(0.0) + eps).sqrt()) as f32)
        })
        .collect()
}

/// GroupNorm with a per-channel affine (`gamma`, `beta`), then SiLU when `act`:
/// `dst = act((src - mean) / sqrt(var + eps) * gamma + beta)`. `src` is
/// `batch x channels x spatial`, contiguous.
pub fn group_norm(
    src: &[f32],
    dst: &mut [f32],
    s: GroupNormShape,
    gamma: &[f32],
    beta: &[f32],
    eps: f64,
    act: bool,
) {
    let stats = group_stats(src, s, eps);
    let cpg = s.channels / s.groups;
    src.par_chunks(s.spatial)
        .zip(dst.par_chunks_mut(s.spatial))
        .enumerate()
        .for_each(|(bc, (x, y))| {
            let c = bc % s.channels;
            let (mean, rstd) = stats[bc / s.channels * s.groups + c / cpg];
            let scale = rstd * gamma[c];
            affine(x, y, scale, beta[c] - mean * scale, act);
        });
}

/// [`group_norm`] in place.
pub fn group_norm_inplace(
    buf: &mut [f32],
    s: GroupNormShape,
    gamma: &[f32],
    beta: &[f32],
    eps: f64,
    act: bool,
) {
    let stats = group_stats(buf, s, eps);
    let cpg = s.channels / s.groups;
    buf.par_chunks_mut(s.spatial)
        .enumerate()
        .for_each(|(bc, y)| {
            let c = bc % s.channels;
            let (mean, rstd) = stats[bc / s.channels * s.groups + c / cpg];
            let scale = rstd * gamma[c];
            affine_inplace(y, scale, beta[c] - mean * scale, act);
        });
}

/// Nearest-neighbour upsampling by integer factors: `src` is `planes x h x w`, `dst`
/// `planes x (h * fh) x (w * fw)`; every value is repeated `fw` times along a row and every
/// row `fh` times (PyTorch's `mode="nearest"` for an exact integer scale).
pub fn upsample_nearest(src: &[f32], dst: &mut [f32], h: usize, w: usize, fh: usize, fw: usize) {
    let (oh, ow) = (h * fh, w * fw);
    src.par_chunks(h * w)
        .zip(dst.par_chunks_mut(oh * ow))
        .for_each(|(x, y)| {
            for (r, row) in x.chunks_exact(w).enumerate() {
                let out = &mut y[r * fh * ow..(r + 1) * fh * ow];
                let (first, rest) = out.split_at_mut(ow);
                if fw == 2 {
                    for (o, v) in first.chunks_exact_mut(2).zip(row) {
                        o[0] = *v;
                        o[1] = *v;
                    }
                } else {
                    for (o, v) in first.chunks_exact_mut(fw).zip(row) {
                        o.fill(*v);
                    }
                }
                for copy in rest.chunks_exact_mut(ow) {
                    copy.copy_from_slice(first);
                }
            }
        });
}

/// Source index and weights of one output coordinate for PyTorch's bilinear resize with
/// `align_corners=False`: `src = (dst + 0.5) * in / out - 0.5`, clamped at 0.
fn bilinear_taps(out: usize, inp: usize) -> Vec<(usize, usize, f32)> {
    let scale = inp as f32 / out as f32;
    (0..out)
        .map(|d| {
            let src = ((d as f32 + 0.5) * scale - 0.5).max(0.0);
            let i0 = (src as usize).min(inp - 1);
            let i1 = if i0 < inp - 1 { i0 + 1 } else { i0 };
            (i0, i1, src - i0 as f32)
        })
        .collect()
}

/// Bilinear resize (`F.interpolate(mode="bilinear", align_corners=False)`) of `planes x h x
/// w` to `planes x oh x ow`: every input row is interpolated along the row once, then
/// output rows blend two of those rows (contiguous, vectorised).
pub fn resize_bilinear(src: &[f32], dst: &mut [f32], h: usize, w: usize, oh: usize, ow: usize) {
    let xs = bilinear_taps(ow, w);
    let ys = bilinear_taps(oh, h);
    src.par_chunks(h * w)
        .zip(dst.par_chunks_mut(oh * ow))
        .for_each(|(x, y)| {
            let mut rows = vec![0f32; h * ow];
            for (r, out) in x.chunks_exact(w).zip(rows.chunks_exact_mut(ow)) {
                for (o, &(i0, i1, l)) in out.iter_mut().zip(&xs) {
                    *o = r[i0] + (r[i1] - r[i0]) * l;
                }
            }
            for (out, &(j0, j1, l)) in y.chunks_exact_mut(ow).zip(&ys) {
                let (a, b) = (&rows[j0 * ow..(j0 + 1) * ow], &rows[j1 * ow..(j1 + 1) * ow]);
                blend(out, a, b, l);
            }
        });
}

#[inline(always)]
fn blend_body(out: &mut [f32], a: &[f32], b: &[f32], l: f32) {
    for ((o, a), b) in out.iter_mut().zip(a).zip(b) {
        *o = a + (b - a) * l;
    }
}

dispatch!(fn blend(out: &mut [f32], a: &[f32], b: &[f32], l: f32) => blend_body);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_libm() {
        let mut worst = 0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let (a, b) = (exp(x) as f64, x.exp() as f64);
            worst = worst.max(((a - b) / b).abs());
            x += 0.0137;
        }
        // A few ulp (f32 ulp is 6e-8 relative).
        assert!(worst < 5e-7, "worst relative error {worst}");
        assert!(exp(-1000.0) >= 0.0 && exp(-1000.0) < 1e-37);
        assert!(exp(1000.0).is_finite() && exp(1000.0) > 1e38);
        assert!(exp(88.3) / 88.3f32.exp() - 1.0 < 1e-6);
    }

    #[test]
    fn silu_edges() {
        assert_eq!(silu1(0.0), 0.0);
        assert!(silu1(f32::NAN).is_nan());
        assert!((silu1(-100.0)).abs() < 1e-30);
        assert!((silu1(30.0) - 30.0).abs() < 1e-5);
        let src: Vec<f32> = (0..1000).map(|i| (i as f32 - 500.0) * 0.03).collect();
        let mut dst = vec![0.0; 1000];
        silu(&src, &mut dst);
        for (x, y) in src.iter().zip(&dst) {
            let r = *x as f64 / (1.0 + (-*x as f64).exp());
            assert!(
                (*y as f64 - r).abs() <= 1e-6 * r.abs().max(1e-3),
                "{x}: {y} vs {r}"
            );
        }
    }

    #[test]
    fn upsample_repeats() {
        let src: Vec<f32> = (0..12).map(|v| v as f32).collect(); // 2 planes of 2x3
        let mut dst = vec![0.0; 2 * 6 * 9];
        upsample_nearest(&src, &mut dst, 2, 3, 3, 3);
        for p in 0..2 {
            for y in 0..6 {
                for x in 0..9 {
                    assert_eq!(dst[p * 54 + y * 9 + x], src[p * 6 + (y / 3) * 3 + x / 3]);
                }
            }
        }
    }
}
