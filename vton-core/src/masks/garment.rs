//! Garment mask estimation from a product photo on a plain background.
//!
//! Method: the background colour is the per-channel median of a border strip, and its
//! noise level the median absolute deviation there. After a 3x3 box blur, a pixel is
//! background-like when its largest channel difference from the background colour is
//! below `max(min_threshold, mad_factor * MAD)` and its local gradient is below
//! `gradient_threshold`. The background is what is reachable from the image border
//! through background-like pixels; the garment is the largest connected component of
//! the rest after a morphological opening, with holes filled. Measured on the bundled garments in
//! `docs/quality.md`.

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
}

impl Default for GarmentMaskOptions {
    fn default() -> Self {
        GarmentMaskOptions {
            mad_factor: 4.0,
            min_threshold: 0.015,
            gradient_threshold: 0.03,
            opening_radius: 3,
        }
    }
}

fn median(v: &mut [f32]) -> f32 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
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
    let mut passable = vec![false; w * h];
    for y in 0..h {
        for x in 0..w {
            let mut d = 0f32;
            let mut g = 0f32;
            for c in 0..3 {
                d = d.max((px(x, y, c) - bg[c]).abs());
                if x > 0 && x + 1 < w {
                    g = g.max((px(x + 1, y, c) - px(x - 1, y, c)).abs());
                }
                if y > 0 && y + 1 < h {
                    g = g.max((px(x, y + 1, c) - px(x, y - 1, c)).abs());
                }
            }
            passable[y * w + x] = d < t && g < opts.gradient_threshold;
        }
    }
    let background = morph::flood_from_border(w, h, &passable);
    let fg: Vec<bool> = background.iter().map(|&b| !b).collect();
    // Opening removes speckle and the thin bridges it makes to the garment.
    let r = opts.opening_radius;
    let fg = morph::dilate(w, h, &morph::erode(w, h, &fg, r), r);
    let garment = morph::largest_component(w, h, &fg);
    let garment = morph::fill_holes(w, h, &garment);
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
