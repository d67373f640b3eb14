//! PSNR, SSIM and MS-SSIM in float64, under the conventions of the packages papers use.
//!
//! All SSIM variants share one core: with one window `w` for all five maps,
//! `mu = w * x`, `sigma_x^2 = w * x^2 - mu_x^2`, `sigma_xy = w * (xy) - mu_x mu_y`, and
//! `SSIM = (2 mu_x mu_y + C1)(2 sigma_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(sigma_x^2 + sigma_y^2 + C2))`
//! with `C1 = (0.01 L)^2`, `C2 = (0.03 L)^2`, `L` = the data range. A colour image gives
//! one mean per channel; the result is the mean of the channel means. They differ in the
//! window, the border and small corrections, which [`SsimConvention`] names.

use rayon::prelude::*;

use super::image::MetricImage;
use crate::error::{Result, VtonError};

/// The SSIM window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SsimWindow {
    /// A Gaussian of `sigma`, `2 * radius + 1` taps, normalised (scikit-image's
    /// `gaussian_weights=True`: radius `int(3.5 sigma + 0.5)`; pytorch-msssim: 11 taps).
    Gaussian { sigma: f64, radius: usize },
    /// A `size x size` box (scikit-image's default `win_size=7`).
    Uniform { size: usize },
}

impl SsimWindow {
    /// The Gaussian window of sigma 1.5, 11 taps, that every package uses.
    pub const GAUSSIAN_11: SsimWindow = SsimWindow::Gaussian {
        sigma: 1.5,
        radius: 5,
    };
    /// scikit-image's default 7x7 box.
    pub const UNIFORM_7: SsimWindow = SsimWindow::Uniform { size: 7 };

    fn taps(&self) -> Vec<f64> {
        match *self {
            SsimWindow::Gaussian { sigma, radius } => {
                let r = radius as f64;
                let w: Vec<f64> = (0..2 * radius + 1)
                    .map(|i| {
                        let x = i as f64 - r;
                        (-(x * x) / (2.0 * sigma * sigma)).exp()
                    })
                    .collect();
                let s: f64 = w.iter().sum();
                w.into_iter().map(|v| v / s).collect()
            }
            SsimWindow::Uniform { size } => vec![1.0 / size as f64; size],
        }
    }

    fn size(&self) -> usize {
        match *self {
            SsimWindow::Gaussian { radius, .. } => 2 * radius + 1,
            SsimWindow::Uniform { size } => size,
        }
    }
}

/// How the borders are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SsimBorder {
    /// Only positions where the whole window fits ('valid' convolution; scikit-image's
    /// crop of `(win - 1) / 2` pixels, pytorch-msssim's padding 0). An image smaller than
    /// the window is an error.
    Valid,
    /// pytorch-msssim: 'valid', but a dimension shorter than the window is not filtered
    /// along that axis (the package warns and goes on).
    ValidSkipShort,
    /// torchmetrics: the inputs are padded by the radius with mirror reflection (edge not
    /// repeated, `F.pad(mode='reflect')`), the map is H x W and `crop` more pixels are
    /// dropped from each side before the mean (0 for torchmetrics >= 1.4.2, the radius
    /// for <= 1.4.1).
    ReflectPad { crop: usize },
}

/// Every knob of an SSIM computation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SsimOptions {
    pub window: SsimWindow,
    /// `L`: 255 for 8-bit values, 1 for `[0, 1]` floats, 2 for `[-1, 1]`.
    pub data_range: f64,
    pub border: SsimBorder,
    /// Multiply the variances and the covariance by `NP / (NP - 1)` (scikit-image's
    /// default `use_sample_covariance=True`; NP = the window's pixel count).
    pub sample_covariance: bool,
    /// Clamp both variances at >= 0 (torchmetrics >= 1.3).
    pub clamp_variance: bool,
    pub k1: f64,
    pub k2: f64,
}

/// The conventions of the packages try-on papers use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SsimConvention {
    /// scikit-image `structural_similarity(gaussian_weights=True, sigma=1.5,
    /// use_sample_covariance=False)`: the common try-on setting (HR-VITON on grey images).
    /// Identical to pytorch-msssim's `ssim` where the image is at least 11 px each way.
    SkimageGaussian,
    /// scikit-image's defaults: 7x7 uniform window, sample covariance.
    SkimageDefault,
    /// pytorch-msssim 1.0 `ssim` (dimensions under 11 px are left unfiltered).
    PytorchMsssim,
    /// torchmetrics >= 1.4.2 `structural_similarity_index_measure` (reflect padding, the
    /// mean over the full map, clamped variances): CatVTON's and LaDI-VTON's SSIM.
    Torchmetrics,
    /// torchmetrics 1.3 to 1.4.1: the same map cropped by 5 px before the mean.
    TorchmetricsLegacy,
}

impl SsimConvention {
    /// Every convention, in the order tables list them.
    pub const ALL: [SsimConvention; 5] = [
        SsimConvention::SkimageGaussian,
        SsimConvention::SkimageDefault,
        SsimConvention::PytorchMsssim,
        SsimConvention::Torchmetrics,
        SsimConvention::TorchmetricsLegacy,
    ];

    /// The options this convention stands for, at `data_range`.
    pub fn options(self, data_range: f64) -> SsimOptions {
        let base = SsimOptions {
            window: SsimWindow::GAUSSIAN_11,
            data_range,
            border: SsimBorder::Valid,
            sample_covariance: false,
            clamp_variance: false,
            k1: 0.01,
            k2: 0.03,
        };
        match self {
            SsimConvention::SkimageGaussian => base,
            SsimConvention::SkimageDefault => SsimOptions {
                window: SsimWindow::UNIFORM_7,
                sample_covariance: true,
                ..base
            },
            SsimConvention::PytorchMsssim => SsimOptions {
                border: SsimBorder::ValidSkipShort,
                ..base
            },
            SsimConvention::Torchmetrics => SsimOptions {
                border: SsimBorder::ReflectPad { crop: 0 },
                clamp_variance: true,
                ..base
            },
            SsimConvention::TorchmetricsLegacy => SsimOptions {
                border: SsimBorder::ReflectPad { crop: 5 },
                clamp_variance: true,
                ..base
            },
        }
    }

    /// A short name (`skimage-gaussian`, `skimage-default`, `pytorch-msssim`,
    /// `torchmetrics`, `torchmetrics-1.4.1`).
    pub fn name(self) -> &'static str {
        match self {
            SsimConvention::SkimageGaussian => "skimage-gaussian",
            SsimConvention::SkimageDefault => "skimage-default",
            SsimConvention::PytorchMsssim => "pytorch-msssim",
            SsimConvention::Torchmetrics => "torchmetrics",
            SsimConvention::TorchmetricsLegacy => "torchmetrics-1.4.1",
        }
    }

    /// Parses [`name`](Self::name) (also `gaussian` and `uniform`, the Python keywords).
    pub fn from_name(name: &str) -> Result<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "skimage-gaussian" | "gaussian" | "skimage" => Ok(SsimConvention::SkimageGaussian),
            "skimage-default" | "uniform" => Ok(SsimConvention::SkimageDefault),
            "pytorch-msssim" | "pytorch_msssim" => Ok(SsimConvention::PytorchMsssim),
            "torchmetrics" => Ok(SsimConvention::Torchmetrics),
            "torchmetrics-1.4.1" | "torchmetrics-legacy" => Ok(SsimConvention::TorchmetricsLegacy),
            other => Err(VtonError::invalid(
                "ssim convention",
                format!(
                    "'{other}' is not one of skimage-gaussian (gaussian), skimage-default (uniform), \
                     pytorch-msssim, torchmetrics, torchmetrics-1.4.1"
                ),
            )),
        }
    }

    /// What the convention computes, in words (the `vton eval` table prints it).
    pub fn describe(self) -> &'static str {
        match self {
            SsimConvention::SkimageGaussian => {
                "scikit-image structural_similarity, Gaussian 11x11 sigma 1.5, population covariance, valid region"
            }
            SsimConvention::SkimageDefault => "scikit-image structural_similarity defaults: uniform 7x7, sample covariance",
            SsimConvention::PytorchMsssim => "pytorch-msssim 1.0 ssim: Gaussian 11 sigma 1.5, valid region",
            SsimConvention::Torchmetrics => {
                "torchmetrics >= 1.4.2 SSIM: Gaussian 11 sigma 1.5, reflect padding, mean over the full map"
            }
            SsimConvention::TorchmetricsLegacy => "torchmetrics 1.3-1.4.1 SSIM: reflect padding, map cropped by 5 px",
        }
    }
}

fn check_pair(a: &MetricImage, b: &MetricImage, what: &str) -> Result<()> {
    if (a.channels, a.height, a.width) != (b.channels, b.height, b.width) {
        return Err(VtonError::SizeMismatch {
            what: format!("the two images of {what}"),
            expected: format!("{} x {} x {} (C x H x W)", a.channels, a.height, a.width),
            actual: format!("{} x {} x {}", b.channels, b.height, b.width),
        });
    }
    Ok(())
}

fn check_range(data_range: f64) -> Result<()> {
    if !(data_range.is_finite() && data_range > 0.0) {
        return Err(VtonError::invalid(
            "data_range",
            format!("must be a positive number, got {data_range}"),
        ));
    }
    Ok(())
}

/// Mean squared error in float64 over every value.
pub fn mse(a: &MetricImage, b: &MetricImage) -> Result<f64> {
    check_pair(a, b, "MSE")?;
    let s: f64 = a
        .data
        .iter()
        .zip(&b.data)
        .map(|(x, y)| (x - y) * (x - y))
        .sum();
    Ok(s / a.data.len() as f64)
}

/// PSNR as scikit-image's `peak_signal_noise_ratio(a, b, data_range)`:
/// `10 log10(L^2 / MSE)` with the MSE in float64. Identical images give `+inf`.
pub fn psnr(a: &MetricImage, b: &MetricImage, data_range: f64) -> Result<f64> {
    check_range(data_range)?;
    let m = mse(a, b)?;
    Ok(10.0 * (data_range * data_range / m).log10())
}

/// PSNR as torchmetrics computes it over a batch: one MSE pooled over every value of
/// every pair (not the mean of per-image PSNRs).
pub fn psnr_pooled(pairs: &[(&MetricImage, &MetricImage)], data_range: f64) -> Result<f64> {
    check_range(data_range)?;
    if pairs.is_empty() {
        return Err(VtonError::invalid("pairs", "no image pairs"));
    }
    let (mut s, mut n) = (0f64, 0usize);
    for (a, b) in pairs {
        check_pair(a, b, "PSNR")?;
        s += a
            .data
            .iter()
            .zip(&b.data)
            .map(|(x, y)| (x - y) * (x - y))
            .sum::<f64>();
        n += a.data.len();
    }
    Ok(10.0 * (data_range * data_range / (s / n as f64)).log10())
}

/// SSIM of two images under `convention` at `data_range` (255 for 8-bit values).
pub fn ssim(
    a: &MetricImage,
    b: &MetricImage,
    convention: SsimConvention,
    data_range: f64,
) -> Result<f64> {
    ssim_with(a, b, &convention.options(data_range))
}

/// SSIM with explicit options; the mean over channels of each channel's mean.
pub fn ssim_with(a: &MetricImage, b: &MetricImage, opts: &SsimOptions) -> Result<f64> {
    let per = ssim_per_channel(a, b, opts)?;
    Ok(per.iter().map(|(s, _)| s).sum::<f64>() / per.len() as f64)
}

/// Per channel: (the mean of the SSIM map, the mean of the contrast-structure map).
pub fn ssim_per_channel(
    a: &MetricImage,
    b: &MetricImage,
    opts: &SsimOptions,
) -> Result<Vec<(f64, f64)>> {
    check_pair(a, b, "SSIM")?;
    check_range(opts.data_range)?;
    let k = opts.window.size();
    if opts.border == SsimBorder::Valid && (a.height < k || a.width < k) {
        return Err(VtonError::invalid(
            "image",
            format!(
                "{} x {} is smaller than the {k} x {k} SSIM window (scikit-image raises here too)",
                a.height, a.width
            ),
        ));
    }
    if let SsimBorder::ReflectPad { crop } = opts.border {
        let r = k / 2;
        if a.height <= r || a.width <= r || a.height <= 2 * crop || a.width <= 2 * crop {
            return Err(VtonError::invalid(
                "image",
                format!(
                    "{} x {} is too small for reflect padding by {r} px",
                    a.height, a.width
                ),
            ));
        }
    }
    Ok((0..a.channels)
        .into_par_iter()
        .map(|c| channel_ssim(a.plane(c), b.plane(c), a.height, a.width, opts))
        .collect())
}

/// A plane with its size.
struct Plane {
    h: usize,
    w: usize,
    v: Vec<f64>,
}

/// torch's `reflect` padding (the edge pixel is not repeated).
fn reflect_pad(src: &[f64], h: usize, w: usize, r: usize) -> Plane {
    let refl = |i: isize, n: usize| -> usize {
        let n = n as isize;
        let mut i = i;
        if i < 0 {
            i = -i;
        }
        if i >= n {
            i = 2 * (n - 1) - i;
        }
        i as usize
    };
    let (ph, pw) = (h + 2 * r, w + 2 * r);
    let mut v = vec![0f64; ph * pw];
    for y in 0..ph {
        let sy = refl(y as isize - r as isize, h);
        for x in 0..pw {
            let sx = refl(x as isize - r as isize, w);
            v[y * pw + x] = src[sy * w + sx];
        }
    }
    Plane { h: ph, w: pw, v }
}

/// Separable 'valid' filtering; an axis shorter than the window is left as it is when
/// `skip_short`.
fn filter_valid(p: &Plane, taps: &[f64], skip_short: bool) -> Plane {
    let k = taps.len();
    // along H
    let (h1, tmp) = if p.h >= k || !skip_short {
        let oh = p.h + 1 - k;
        let mut t = vec![0f64; oh * p.w];
        for y in 0..oh {
            let row = &mut t[y * p.w..(y + 1) * p.w];
            for (i, &wt) in taps.iter().enumerate() {
                let src = &p.v[(y + i) * p.w..(y + i + 1) * p.w];
                for (o, s) in row.iter_mut().zip(src) {
                    *o += wt * s;
                }
            }
        }
        (oh, t)
    } else {
        (p.h, p.v.clone())
    };
    // along W
    if p.w >= k || !skip_short {
        let ow = p.w + 1 - k;
        let mut out = vec![0f64; h1 * ow];
        for y in 0..h1 {
            let src = &tmp[y * p.w..(y + 1) * p.w];
            let row = &mut out[y * ow..(y + 1) * ow];
            // tap by tap over the whole row (vectorises; the sum is taken in tap order)
            for (i, &wt) in taps.iter().enumerate() {
                for (o, s) in row.iter_mut().zip(&src[i..i + ow]) {
                    *o += wt * s;
                }
            }
        }
        Plane {
            h: h1,
            w: ow,
            v: out,
        }
    } else {
        Plane {
            h: h1,
            w: p.w,
            v: tmp,
        }
    }
}

fn channel_ssim(x: &[f64], y: &[f64], h: usize, w: usize, o: &SsimOptions) -> (f64, f64) {
    let taps = o.window.taps();
    let k = taps.len();
    let (xs, ys, crop) = match o.border {
        SsimBorder::ReflectPad { crop } => (
            reflect_pad(x, h, w, k / 2),
            reflect_pad(y, h, w, k / 2),
            crop,
        ),
        _ => (
            Plane {
                h,
                w,
                v: x.to_vec(),
            },
            Plane {
                h,
                w,
                v: y.to_vec(),
            },
            0,
        ),
    };
    let skip = o.border == SsimBorder::ValidSkipShort;
    let prod = |f: &dyn Fn(f64, f64) -> f64| Plane {
        h: xs.h,
        w: xs.w,
        v: xs.v.iter().zip(&ys.v).map(|(&a, &b)| f(a, b)).collect(),
    };
    // the five maps are filtered in parallel (with the channels: 15 jobs for RGB)
    let planes = [
        &xs,
        &ys,
        &prod(&|a, _| a * a),
        &prod(&|_, b| b * b),
        &prod(&|a, b| a * b),
    ];
    let mut filtered: Vec<Plane> = planes
        .par_iter()
        .map(|p| filter_valid(p, &taps, skip))
        .collect();
    let mxy = filtered.pop().expect("five maps");
    let myy = filtered.pop().expect("five maps");
    let mxx = filtered.pop().expect("five maps");
    let my = filtered.pop().expect("five maps");
    let mx = filtered.pop().expect("five maps");
    let np = match o.window {
        SsimWindow::Gaussian { .. } => (k * k) as f64,
        SsimWindow::Uniform { size } => (size * size) as f64,
    };
    let cov_norm = if o.sample_covariance {
        np / (np - 1.0)
    } else {
        1.0
    };
    let c1 = (o.k1 * o.data_range).powi(2);
    let c2 = (o.k2 * o.data_range).powi(2);
    let (mh, mw) = (mx.h, mx.w);
    let (mut s_sum, mut cs_sum, mut n) = (0f64, 0f64, 0usize);
    for yy in crop..mh - crop {
        for xx in crop..mw - crop {
            let i = yy * mw + xx;
            let (ux, uy) = (mx.v[i], my.v[i]);
            let mut vx = cov_norm * (mxx.v[i] - ux * ux);
            let mut vy = cov_norm * (myy.v[i] - uy * uy);
            let vxy = cov_norm * (mxy.v[i] - ux * uy);
            if o.clamp_variance {
                vx = vx.max(0.0);
                vy = vy.max(0.0);
            }
            let cs = (2.0 * vxy + c2) / (vx + vy + c2);
            let l = (2.0 * ux * uy + c1) / (ux * ux + uy * uy + c1);
            s_sum += l * cs;
            cs_sum += cs;
            n += 1;
        }
    }
    (s_sum / n as f64, cs_sum / n as f64)
}

/// MS-SSIM options (pytorch-msssim 1.0's defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct MsSsimOptions {
    pub data_range: f64,
    /// One weight per scale; the number of scales is their count.
    pub weights: Vec<f64>,
    pub window: SsimWindow,
}

impl MsSsimOptions {
    /// pytorch-msssim's five weights, Gaussian 11 sigma 1.5.
    pub fn new(data_range: f64) -> Self {
        Self {
            data_range,
            weights: vec![0.0448, 0.2856, 0.3001, 0.2363, 0.1333],
            window: SsimWindow::GAUSSIAN_11,
        }
    }
}

/// `avg_pool2d(kernel 2, stride 2, padding (H % 2, W % 2))` with zero padding counted.
fn downsample(p: &[f64], h: usize, w: usize) -> (Vec<f64>, usize, usize) {
    let (ph, pw) = (h % 2, w % 2);
    let oh = (h + 2 * ph - 2) / 2 + 1;
    let ow = (w + 2 * pw - 2) / 2 + 1;
    let at = |y: isize, x: isize| -> f64 {
        if y < 0 || x < 0 || y >= h as isize || x >= w as isize {
            0.0
        } else {
            p[y as usize * w + x as usize]
        }
    };
    let mut out = vec![0f64; oh * ow];
    for y in 0..oh {
        for x in 0..ow {
            let sy = (2 * y) as isize - ph as isize;
            let sx = (2 * x) as isize - pw as isize;
            out[y * ow + x] =
                (at(sy, sx) + at(sy, sx + 1) + at(sy + 1, sx) + at(sy + 1, sx + 1)) / 4.0;
        }
    }
    (out, oh, ow)
}

/// MS-SSIM as pytorch-msssim 1.0 `ms_ssim`: per scale the contrast-structure mean
/// (ReLU'd), the SSIM mean at the last scale, `prod CS_i^{w_i} * SSIM^{w_last}` per
/// channel, then the mean over channels. The shorter side must exceed
/// `(window - 1) * 2^(scales - 1)` (160 px with the defaults), as the package asserts.
pub fn ms_ssim(a: &MetricImage, b: &MetricImage, opts: &MsSsimOptions) -> Result<f64> {
    Ok(ms_ssim_levels(a, b, opts)?.0)
}

/// MS-SSIM and, per scale, per channel, the (SSIM, CS) means it was made of.
pub fn ms_ssim_levels(
    a: &MetricImage,
    b: &MetricImage,
    opts: &MsSsimOptions,
) -> Result<(f64, Vec<Vec<(f64, f64)>>)> {
    check_pair(a, b, "MS-SSIM")?;
    check_range(opts.data_range)?;
    let levels = opts.weights.len();
    if levels == 0 {
        return Err(VtonError::invalid(
            "weights",
            "MS-SSIM needs at least one scale weight",
        ));
    }
    let k = opts.window.size();
    let need = (k - 1) * (1usize << (levels - 1));
    if a.height.min(a.width) <= need {
        return Err(VtonError::invalid(
            "image",
            format!(
                "{} x {}: MS-SSIM with {levels} scales and a {k}-tap window needs the shorter side \
                 above {need} px (pytorch-msssim asserts the same)",
                a.height, a.width
            ),
        ));
    }
    let ssim_opts = SsimOptions {
        window: opts.window,
        data_range: opts.data_range,
        border: SsimBorder::ValidSkipShort,
        sample_covariance: false,
        clamp_variance: false,
        k1: 0.01,
        k2: 0.03,
    };
    let (mut x, mut y) = (a.clone(), b.clone());
    let mut per_level = Vec::with_capacity(levels);
    for level in 0..levels {
        let per = ssim_per_channel(&x, &y, &ssim_opts)?;
        per_level.push(per);
        if level + 1 < levels {
            let c = x.channels;
            let (mut xd, mut yd) = (Vec::new(), Vec::new());
            let (mut oh, mut ow) = (0, 0);
            for ch in 0..c {
                let (d, h2, w2) = downsample(x.plane(ch), x.height, x.width);
                xd.extend(d);
                let (d, _, _) = downsample(y.plane(ch), y.height, y.width);
                yd.extend(d);
                (oh, ow) = (h2, w2);
            }
            x = MetricImage::from_planar(c, oh, ow, xd)?;
            y = MetricImage::from_planar(c, oh, ow, yd)?;
        }
    }
    let channels = a.channels;
    let mut total = 0f64;
    for c in 0..channels {
        let mut v = 1f64;
        for (level, w) in opts.weights.iter().enumerate() {
            let (s, cs) = per_level[level][c];
            let term = if level + 1 < levels {
                cs.max(0.0)
            } else {
                s.max(0.0)
            };
            v *= term.powf(*w);
        }
        total += v;
    }
    Ok((total / channels as f64, per_level))
}
