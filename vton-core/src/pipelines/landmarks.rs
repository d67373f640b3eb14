//! Garment landmarks from a front-view garment mask.
//!
//! Conventions: "right"/"left" are the wearer's, so the wearer's right shoulder is on
//! the image's left in a front view, as for a person facing the camera.
//!
//! * torso edges: among rows between 60 % and 95 % of the garment height, the run of
//!   mask pixels (gaps under 1/30 of the width bridged, at least 35 % of the garment
//!   width) that contains the centre column and is narrowest (rows where hanging
//!   sleeves touch the body are wider, so this finds the body panel);
//! * shoulder tips: the top of the mask in the two torso-edge columns;
//! * collar centre: the top of the mask in the centre column;
//! * hem corners and hem centre: the torso edges and centre at 97 % of the height;
//! * armpits: on each torso edge, where the column just outside it leaves the sleeve
//!   (capped at 45 % of the shoulder-to-hem height for sleeves that hang along the body);
//! * sleeve ends: the centre of the sleeve pixels (outside the torso edges) farthest from
//!   the shoulder tip, `None` for sleeveless garments.

use crate::error::{Result, VtonError};
use crate::io::Mask;
use crate::masks::draw::Pt;

/// Landmarks of a front-view upper-body garment, in pixels of its mask.
#[derive(Debug, Clone, PartialEq)]
pub struct GarmentLandmarks {
    pub collar: Pt,
    pub r_shoulder: Pt,
    pub l_shoulder: Pt,
    pub r_armpit: Pt,
    pub l_armpit: Pt,
    pub r_hem: Pt,
    pub l_hem: Pt,
    pub hem_center: Pt,
    pub r_sleeve_end: Option<Pt>,
    pub l_sleeve_end: Option<Pt>,
}

impl GarmentLandmarks {
    /// Distance between the shoulder tips.
    pub fn shoulder_width(&self) -> f32 {
        dist(self.r_shoulder, self.l_shoulder)
    }
}

pub(crate) fn dist(a: Pt, b: Pt) -> f32 {
    ((a.0 - b.0).powi(2) + (a.1 - b.1).powi(2)).sqrt()
}

/// The run of mask pixels in row `y` around column `x`, bridging gaps up to `gap` pixels
/// (seams, shadows or holes inside the garment).
fn run_containing(mask: &Mask, y: usize, x: usize, gap: usize) -> Option<(usize, usize)> {
    let near =
        (x.saturating_sub(gap)..=(x + gap).min(mask.width - 1)).find(|&xx| mask.on(xx, y))?;
    let (mut l, mut r) = (near, near);
    loop {
        match (l.saturating_sub(gap + 1)..l)
            .rev()
            .find(|&xx| mask.on(xx, y))
        {
            Some(xx) => l = xx,
            None => break,
        }
    }
    loop {
        match (r + 1..=(r + gap + 1).min(mask.width - 1)).find(|&xx| mask.on(xx, y)) {
            Some(xx) => r = xx,
            None => break,
        }
    }
    Some((l, r))
}

fn column_top(mask: &Mask, x: usize, from: usize) -> Option<usize> {
    (from..mask.height).find(|&y| mask.on(x, y))
}

/// Finds the landmarks of a garment mask (see the module docs).
pub fn garment_landmarks(mask: &Mask) -> Result<GarmentLandmarks> {
    let (x0, y0, x1, y1) = mask.bbox().ok_or_else(|| VtonError::EmptyMask {
        what: "garment mask has no pixel >= 0.5".into(),
    })?;
    let (gw, gh) = (x1 - x0 + 1, y1 - y0 + 1);
    if gw < 8 || gh < 8 {
        return Err(VtonError::EmptyMask {
            what: format!("garment mask covers only {gw}x{gh} pixels"),
        });
    }
    let (mut sx, mut n) = (0f64, 0usize);
    for y in y0..=y1 {
        for x in x0..=x1 {
            if mask.on(x, y) {
                sx += x as f64;
                n += 1;
            }
        }
    }
    let cx = (sx / n as f64).round() as usize;
    let row = |f: f32| y0 + ((gh - 1) as f32 * f).round() as usize;
    let mut torso: Option<(usize, usize)> = None;
    let gap = (gw / 30).max(2);
    for y in row(0.6)..=row(0.95) {
        if let Some((l, r)) = run_containing(mask, y, cx, gap) {
            if (r - l + 1) * 20 >= gw * 7 && torso.is_none_or(|(tl, tr)| r - l < tr - tl) {
                torso = Some((l, r));
            }
        }
    }
    let (tl, tr) = torso.ok_or_else(|| VtonError::EmptyMask {
        what:
            "garment mask has no body panel through its centre column (not an upper-body garment?)"
                .into(),
    })?;
    if tr - tl < 4 {
        return Err(VtonError::EmptyMask {
            what: "garment body panel is too narrow".into(),
        });
    }
    let top = |x: usize| column_top(mask, x, y0).unwrap_or(y0);
    let collar = (cx as f32, top(cx) as f32);
    let r_shoulder = (tl as f32, top(tl) as f32);
    let l_shoulder = (tr as f32, top(tr) as f32);
    let y_hem = row(0.97);
    let hem_of = |x: usize| (x as f32, y_hem as f32);
    let r_hem = hem_of(tl);
    let l_hem = hem_of(tr);
    let hem_center = hem_of(cx);

    let delta = ((tr - tl) as f32 * 0.04).ceil() as usize + 1;
    let armpit = |edge: usize, outside: Option<usize>, shoulder: Pt| -> Pt {
        let cap = shoulder.1 + 0.45 * (y_hem as f32 - shoulder.1);
        let y = match outside {
            Some(ox) => {
                let start = top(ox);
                (start..mask.height)
                    .find(|&y| !mask.on(ox, y))
                    .map(|y| y as f32)
                    .unwrap_or(cap)
            }
            None => shoulder.1 + 0.25 * (y_hem as f32 - shoulder.1),
        };
        (edge as f32, y.min(cap).max(shoulder.1 + 1.0))
    };
    let r_out = tl.checked_sub(delta).filter(|&x| mask.on(x, top(x)));
    let l_out = Some(tr + delta).filter(|&x| x < mask.width && mask.on(x, top(x)));
    let r_armpit = armpit(tl, r_out, r_shoulder);
    let l_armpit = armpit(tr, l_out, l_shoulder);

    let sleeve_end = |right: bool, shoulder: Pt| -> Option<Pt> {
        let mut pts = Vec::new();
        for y in y0..=y1 {
            for x in x0..=x1 {
                let outside = if right {
                    x + delta < tl
                } else {
                    x > tr + delta
                };
                if outside && mask.on(x, y) {
                    pts.push((x as f32, y as f32));
                }
            }
        }
        if pts.len() < (n / 100).max(8) {
            return None;
        }
        let dmax = pts.iter().map(|&p| dist(p, shoulder)).fold(0f32, f32::max);
        let far: Vec<&Pt> = pts
            .iter()
            .filter(|&&p| dist(p, shoulder) >= 0.93 * dmax)
            .collect();
        let k = far.len() as f32;
        Some((
            far.iter().map(|p| p.0).sum::<f32>() / k,
            far.iter().map(|p| p.1).sum::<f32>() / k,
        ))
    };
    Ok(GarmentLandmarks {
        collar,
        r_shoulder,
        l_shoulder,
        r_armpit,
        l_armpit,
        r_hem,
        l_hem,
        hem_center,
        r_sleeve_end: sleeve_end(true, r_shoulder),
        l_sleeve_end: sleeve_end(false, l_shoulder),
    })
}
