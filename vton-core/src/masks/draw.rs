//! Filled raster shapes on a [`Mask`], sampled at pixel centres. These reproduce
//! what `PIL.ImageDraw` draws for the shapes the VITON-HD agnostic procedure uses
//! (filled polygon, ellipse, rectangle, wide line) up to one-pixel edge differences.

use crate::io::Mask;

pub type Pt = (f32, f32);

fn paint_where(mask: &mut Mask, bbox: (f32, f32, f32, f32), inside: impl Fn(f32, f32) -> bool) {
    let (x0, y0, x1, y1) = bbox;
    let xs = (x0.floor().max(0.0) as usize).min(mask.width);
    let ys = (y0.floor().max(0.0) as usize).min(mask.height);
    let xe = ((x1.ceil() + 1.0).max(0.0) as usize).min(mask.width);
    let ye = ((y1.ceil() + 1.0).max(0.0) as usize).min(mask.height);
    for y in ys..ye {
        for x in xs..xe {
            if inside(x as f32, y as f32) {
                mask.data[y * mask.width + x] = 1.0;
            }
        }
    }
}

/// Fills a simple polygon (even-odd rule).
pub fn fill_polygon(mask: &mut Mask, pts: &[Pt]) {
    if pts.len() < 3 {
        return;
    }
    let bbox = pts
        .iter()
        .fold((f32::MAX, f32::MAX, f32::MIN, f32::MIN), |b, p| {
            (b.0.min(p.0), b.1.min(p.1), b.2.max(p.0), b.3.max(p.1))
        });
    paint_where(mask, bbox, |x, y| point_in_polygon(pts, (x, y)));
}

/// Even-odd point-in-polygon test; points on an edge count as inside.
pub fn point_in_polygon(pts: &[Pt], p: Pt) -> bool {
    let mut inside = false;
    let n = pts.len();
    for i in 0..n {
        let (a, b) = (pts[i], pts[(i + 1) % n]);
        if dist_to_segment(p, a, b) <= 0.5 {
            return true;
        }
        if (a.1 > p.1) != (b.1 > p.1) {
            let x = a.0 + (p.1 - a.1) / (b.1 - a.1) * (b.0 - a.0);
            if p.0 < x {
                inside = !inside;
            }
        }
    }
    inside
}

/// Fills the axis-aligned ellipse inscribed in `(x0, y0, x1, y1)`.
pub fn fill_ellipse(mask: &mut Mask, x0: f32, y0: f32, x1: f32, y1: f32) {
    let (cx, cy) = ((x0 + x1) / 2.0, (y0 + y1) / 2.0);
    let (rx, ry) = (((x1 - x0) / 2.0).max(0.5), ((y1 - y0) / 2.0).max(0.5));
    paint_where(mask, (x0, y0, x1, y1), |x, y| {
        let (dx, dy) = ((x - cx) / rx, (y - cy) / ry);
        dx * dx + dy * dy <= 1.0
    });
}

/// Fills the axis-aligned rectangle `(x0, y0)..=(x1, y1)`.
pub fn fill_rect(mask: &mut Mask, x0: f32, y0: f32, x1: f32, y1: f32) {
    paint_where(mask, (x0, y0, x1, y1), |x, y| {
        x >= x0 && x <= x1 && y >= y0 && y <= y1
    });
}

/// A line of the given width with flat ends, as `ImageDraw.line(width=...)` draws it.
pub fn wide_line(mask: &mut Mask, a: Pt, b: Pt, width: f32) {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let len = (dx * dx + dy * dy).sqrt();
    if len < 1e-6 {
        return;
    }
    let (nx, ny) = (-dy / len * width / 2.0, dx / len * width / 2.0);
    fill_polygon(
        mask,
        &[
            (a.0 + nx, a.1 + ny),
            (b.0 + nx, b.1 + ny),
            (b.0 - nx, b.1 - ny),
            (a.0 - nx, a.1 - ny),
        ],
    );
}

/// A segment with round ends (all points within `radius` of the segment).
pub fn capsule(mask: &mut Mask, a: Pt, b: Pt, radius: f32) {
    let bbox = (
        a.0.min(b.0) - radius,
        a.1.min(b.1) - radius,
        a.0.max(b.0) + radius,
        a.1.max(b.1) + radius,
    );
    paint_where(mask, bbox, |x, y| dist_to_segment((x, y), a, b) <= radius);
}

/// Filled disc.
pub fn disc(mask: &mut Mask, c: Pt, radius: f32) {
    capsule(mask, c, c, radius);
}

/// Euclidean distance from `p` to segment `ab`.
pub fn dist_to_segment(p: Pt, a: Pt, b: Pt) -> f32 {
    let (vx, vy) = (b.0 - a.0, b.1 - a.1);
    let l2 = vx * vx + vy * vy;
    let t = if l2 > 0.0 {
        (((p.0 - a.0) * vx + (p.1 - a.1) * vy) / l2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let (qx, qy) = (a.0 + t * vx - p.0, a.1 + t * vy - p.1);
    (qx * qx + qy * qy).sqrt()
}
