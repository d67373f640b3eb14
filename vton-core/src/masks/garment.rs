//! Garment masks and mattes from a product photo on a plain background.
//!
//! Mask estimation ([`estimate_garment_mask`]): the background colour `B` is the
//! per-channel median of a border strip, and its noise level the median absolute
//! deviation (MAD) there. After a 3x3 box blur, a pixel is background-like when
//!
//! * its largest channel difference from `B` is below `max(min_threshold, mad_factor *
//!   MAD)` and its local gradient is below `gradient_threshold` (plain background), or
//! * it is a shadow on the background: its colour is `k * B` up to `shadow_chroma` (largest
//!   channel) with `shadow_min_ratio <= k <= 1`; for `k` above `shadow_soft_ratio` (faint
//!   shadows, which a light garment's shading also looks like) its gradient must also be
//!   below `gradient_threshold`. Product photos have soft drop shadows of up to a tenth
//!   of the garment's width next to the hem and sleeves; without this they became part
//!   of the garment and were composited as grey fringes.
//!
//! The shadow rule is used only when under `shadow_guard` of the garment found without it
//! (its interior) looks like shadow: a white garment on a light grey background does
//! (about a quarter of the white tee), and its shading would be taken for shadow.
//! The background is what is reachable from the image border through background-like
//! pixels; the garment is the largest connected component of the rest after a
//! morphological opening, with holes filled. Measured against the bundled masks in
//! `docs/quality.md`.
//!
//! Matte ([`garment_matte`]): see its docs.

use crate::error::{Result, VtonError};
use crate::io::{Mask, RgbImage};
use crate::masks::morph;

/// Parameters of [`estimate_garment_mask`]; the defaults are the tuned values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GarmentMaskOptions {
    /// Multiplier of the border's colour MAD that separates garment from background.
    pub mad_factor: f32,
    /// Lower bound of the colour threshold (in [0, 1] units).
    pub min_threshold: f32,
    /// Central-difference gradient (largest channel) that stops the background fill.
    pub gradient_threshold: f32,
    /// Radius of the morphological opening applied to the foreground.
    pub opening_radius: usize,
    /// Darkest shadow, as a fraction `k` of the background colour.
    pub shadow_min_ratio: f32,
    /// Above this `k` a shadow pixel must also be smooth (below `gradient_threshold`).
    pub shadow_soft_ratio: f32,
    /// Largest channel difference between a shadow pixel and `k * B`.
    pub shadow_chroma: f32,
    /// Largest share of the garment interior that may look like shadow for the shadow
    /// rule to be used.
    pub shadow_guard: f32,
}

impl Default for GarmentMaskOptions {
    fn default() -> Self {
        GarmentMaskOptions {
            mad_factor: 4.0,
            min_threshold: 0.015,
            gradient_threshold: 0.03,
            opening_radius: 3,
            shadow_min_ratio: 0.3,
            shadow_soft_ratio: 0.97,
            shadow_chroma: 0.025,
            // Measured interior shares: 0.02-0.09 on the coloured and black garments,
            // 0.26 on the white tee.
            shadow_guard: 0.15,
        }
    }
}

fn median(v: &mut [f32]) -> f32 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Foreground of a background fill: opening, largest component, holes filled.
fn garment_of(w: usize, h: usize, background: &[bool], opening: usize) -> Vec<bool> {
    let fg: Vec<bool> = background.iter().map(|&b| !b).collect();
    // Opening removes speckle and the thin bridges it makes to the garment.
    let fg = morph::dilate(w, h, &morph::erode(w, h, &fg, opening), opening);
    let garment = morph::largest_component(w, h, &fg);
    morph::fill_holes(w, h, &garment)
}

/// Estimates the garment mask of a product photo (see the module docs).
pub fn estimate_garment_mask(img: &RgbImage, opts: &GarmentMaskOptions) -> Result<Mask> {
    let (w, h) = (img.width, img.height);
    if w < 8 || h < 8 {
        return Err(VtonError::invalid(
            "garment image",
            format!("{w}x{h} is too small to estimate a mask"),
        ));
    }
    let b = (w.min(h) / 50).max(2);
    let border: Vec<[f32; 3]> = (0..h)
        .flat_map(|y| (0..w).map(move |x| (x, y)))
        .filter(|&(x, y)| x < b || y < b || x >= w - b || y >= h - b)
        .map(|(x, y)| img.get(x, y))
        .collect();
    let mut bg = [0f32; 3];
    let mut mad = 0f32;
    for c in 0..3 {
        let mut ch: Vec<f32> = border.iter().map(|p| p[c]).collect();
        bg[c] = median(&mut ch);
        let mut dev: Vec<f32> = ch.iter().map(|v| (v - bg[c]).abs()).collect();
        mad = mad.max(median(&mut dev));
    }
    let t = opts.min_threshold.max(opts.mad_factor * mad);

    // 3x3 box blur against JPEG noise.
    let mut blur = img.data.clone();
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            for c in 0..3 {
                let mut s = 0.0;
                for dy in 0..3 {
                    for dx in 0..3 {
                        s += img.data[((y + dy - 1) * w + x + dx - 1) * 3 + c];
                    }
                }
                blur[(y * w + x) * 3 + c] = s / 9.0;
            }
        }
    }
    let px = |x: usize, y: usize, c: usize| blur[(y * w + x) * 3 + c];
    let bb: f32 = bg.iter().map(|v| v * v).sum::<f32>().max(1e-6);
    let mut plain = vec![false; w * h];
    let mut smooth = vec![false; w * h];
    let mut ratio = vec![0f32; w * h];
    let mut chroma = vec![0f32; w * h];
    for y in 0..h {
        for x in 0..w {
            let mut d = 0f32;
            let mut g = 0f32;
            let mut kb = 0f32;
            for c in 0..3 {
                d = d.max((px(x, y, c) - bg[c]).abs());
                kb += px(x, y, c) * bg[c];
                if x > 0 && x + 1 < w {
                    g = g.max((px(x + 1, y, c) - px(x - 1, y, c)).abs());
                }
                if y > 0 && y + 1 < h {
                    g = g.max((px(x, y + 1, c) - px(x, y - 1, c)).abs());
                }
            }
            let k = kb / bb;
            let i = y * w + x;
            smooth[i] = g < opts.gradient_threshold;
            plain[i] = d < t && smooth[i];
            ratio[i] = k;
            chroma[i] = (0..3)
                .map(|c| (px(x, y, c) - k * bg[c]).abs())
                .fold(0f32, f32::max);
        }
    }
    let r = opts.opening_radius;
    let mut garment = garment_of(w, h, &morph::flood_from_border(w, h, &plain), r);

    let shadow_like = |i: usize| {
        chroma[i] < opts.shadow_chroma && (opts.shadow_min_ratio..=1.0).contains(&ratio[i])
    };
    let interior = morph::erode(w, h, &garment, 5);
    let n_inner = interior.iter().filter(|&&v| v).count();
    let n_like = (0..w * h)
        .filter(|&i| interior[i] && shadow_like(i))
        .count();
    if n_inner > 0 && (n_like as f32) < opts.shadow_guard * n_inner as f32 {
        let passable: Vec<bool> = (0..w * h)
            .map(|i| {
                plain[i] || (shadow_like(i) && (ratio[i] < opts.shadow_soft_ratio || smooth[i]))
            })
            .collect();
        garment = garment_of(w, h, &morph::flood_from_border(w, h, &passable), r);
    }
    if !garment.iter().any(|&g| g) {
        return Err(VtonError::EmptyMask {
            what: "no garment found against the background of the garment photo".into(),
        });
    }
    Mask::from_f32(
        w,
        h,
        garment.iter().map(|&g| if g { 1.0 } else { 0.0 }).collect(),
    )
}

/// Parameters of [`garment_matte`]; lengths are in pixels of a 512-pixel garment photo
/// (scaled with the photo's longer side).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MatteOptions {
    /// How far the opaque part of the matte lies inside the mask edge. Edge pixels of a
    /// product photo mix garment and background (on the bundled garments the outermost
    /// mask pixel is about a quarter background), so the matte starts inside.
    pub erode: f32,
    /// Width of the alpha ramp (box filter radius) around the eroded edge.
    pub feather: f32,
}

impl Default for MatteOptions {
    fn default() -> Self {
        MatteOptions {
            erode: 1.0,
            feather: 1.0,
        }
    }
}

/// A garment cut out of its product photo: colours and a soft alpha.
#[derive(Debug, Clone, PartialEq)]
pub struct GarmentMatte {
    /// Garment colours; near the edge they are replaced by the local mean of clean
    /// interior colours, so no background colour is left where `alpha > 0`.
    pub colour: RgbImage,
    /// Coverage in `[0, 1]`; 0 outside the garment mask.
    pub alpha: Mask,
}

/// Sums over `(2r+1)^2` windows (clipped at the image border) of `channels`-interleaved
/// values, through an integral image.
fn window_sums(w: usize, h: usize, v: &[f32], channels: usize, r: usize) -> Vec<f32> {
    let iw = w + 1;
    let mut integral = vec![0f64; iw * (h + 1) * channels];
    for y in 0..h {
        for x in 0..w {
            for c in 0..channels {
                let i = ((y + 1) * iw + x + 1) * channels + c;
                integral[i] = v[(y * w + x) * channels + c] as f64 + integral[i - channels]
                    - integral[i - iw * channels - channels]
                    + integral[i - iw * channels];
            }
        }
    }
    let mut out = vec![0f32; w * h * channels];
    for y in 0..h {
        let (y0, y1) = (y.saturating_sub(r), (y + r + 1).min(h));
        for x in 0..w {
            let (x0, x1) = (x.saturating_sub(r), (x + r + 1).min(w));
            for c in 0..channels {
                let at = |yy: usize, xx: usize| integral[(yy * iw + xx) * channels + c];
                out[(y * w + x) * channels + c] =
                    (at(y1, x1) - at(y0, x1) - at(y1, x0) + at(y0, x0)) as f32;
            }
        }
    }
    out
}

/// Cuts the garment out of its product photo (see [`GarmentMatte`]).
///
/// Method: the mask (binarised at 0.5) is eroded by `erode` and box-filtered with radius
/// `feather`, then limited to the mask, which gives the alpha: 1 inside, a ramp of about
/// `2 * feather + 1` pixels ending at least one pixel inside the mask edge, 0 outside.
/// Pixels with `alpha > 0` closer than `erode + feather + 1` pixels to the mask edge take
/// the mean colour of the clean pixels (farther in) within `erode + feather + 2` pixels;
/// where there are none they keep their own. Nothing outside the mask contributes to
/// either output, so with premultiplied warping no background colour reaches a try-on.
pub fn garment_matte(img: &RgbImage, mask: &Mask, opts: &MatteOptions) -> Result<GarmentMatte> {
    let (w, h) = (img.width, img.height);
    if (mask.width, mask.height) != (w, h) {
        return Err(VtonError::SizeMismatch {
            what: "garment mask vs garment image".into(),
            expected: format!("{w}x{h}"),
            actual: format!("{}x{}", mask.width, mask.height),
        });
    }
    for (name, v) in [("erode", opts.erode), ("feather", opts.feather)] {
        if !(v.is_finite() && (0.0..=64.0).contains(&v)) {
            return Err(VtonError::invalid(
                "matte options",
                format!("{name} = {v} is not in [0, 64]"),
            ));
        }
    }
    let m: Vec<bool> = mask.data.iter().map(|&v| v >= 0.5).collect();
    if !m.iter().any(|&v| v) {
        return Err(VtonError::EmptyMask {
            what: "garment mask has no pixel >= 0.5".into(),
        });
    }
    let scale = w.max(h) as f32 / 512.0;
    let e = (opts.erode * scale).round() as usize;
    let f = (opts.feather * scale).round() as usize;
    let mut core = morph::erode(w, h, &m, e);
    if !core.iter().any(|&v| v) {
        // A garment thinner than the erosion keeps its mask.
        core = m.clone();
    }
    let core_f: Vec<f32> = core.iter().map(|&c| c as u8 as f32).collect();
    let area = ((2 * f + 1) * (2 * f + 1)) as f32;
    let alpha: Vec<f32> = window_sums(w, h, &core_f, 1, f)
        .iter()
        .zip(&m)
        .map(|(&s, &inside)| if inside { (s / area).min(1.0) } else { 0.0 })
        .collect();

    let clean = morph::erode(w, h, &m, e + f + 1);
    let mut weighted = vec![0f32; w * h * 4];
    for (p, &c) in clean.iter().enumerate() {
        if c {
            weighted[p * 4..p * 4 + 3].copy_from_slice(&img.data[p * 3..p * 3 + 3]);
            weighted[p * 4 + 3] = 1.0;
        }
    }
    let sums = window_sums(w, h, &weighted, 4, e + f + 2);
    let mut colour = img.clone();
    for p in 0..w * h {
        let n = sums[p * 4 + 3];
        if alpha[p] > 0.0 && !clean[p] && n > 0.5 {
            for c in 0..3 {
                colour.data[p * 3 + c] = sums[p * 4 + c] / n;
            }
        }
    }
    Ok(GarmentMatte {
        colour,
        alpha: Mask::from_f32(w, h, alpha)?,
    })
}
