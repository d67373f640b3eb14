//! Binary morphology and connectivity on boolean grids.

use std::collections::VecDeque;

/// Pixels reachable from the image border through `passable` pixels (4-connectivity).
pub fn flood_from_border(w: usize, h: usize, passable: &[bool]) -> Vec<bool> {
    let mut seen = vec![false; w * h];
    let mut queue = VecDeque::new();
    for y in 0..h {
        for x in 0..w {
            if (y == 0 || x == 0 || y == h - 1 || x == w - 1) && passable[y * w + x] {
                seen[y * w + x] = true;
                queue.push_back((x, y));
            }
        }
    }
    flood(w, h, passable, &mut seen, &mut queue, |_| {});
    seen
}

fn flood(
    w: usize,
    h: usize,
    passable: &[bool],
    seen: &mut [bool],
    queue: &mut VecDeque<(usize, usize)>,
    mut visit: impl FnMut(usize),
) {
    while let Some((x, y)) = queue.pop_front() {
        visit(y * w + x);
        let mut push = |nx: usize, ny: usize| {
            let i = ny * w + nx;
            if passable[i] && !seen[i] {
                seen[i] = true;
                queue.push_back((nx, ny));
            }
        };
        if x > 0 {
            push(x - 1, y);
        }
        if x + 1 < w {
            push(x + 1, y);
        }
        if y > 0 {
            push(x, y - 1);
        }
        if y + 1 < h {
            push(x, y + 1);
        }
    }
}

/// The largest 4-connected component of `fg` (empty when `fg` is empty).
pub fn largest_component(w: usize, h: usize, fg: &[bool]) -> Vec<bool> {
    let mut seen = vec![false; w * h];
    let mut best: Vec<usize> = Vec::new();
    let mut queue = VecDeque::new();
    for start in 0..w * h {
        if fg[start] && !seen[start] {
            seen[start] = true;
            queue.push_back((start % w, start / w));
            let mut comp = Vec::new();
            flood(w, h, fg, &mut seen, &mut queue, |i| comp.push(i));
            if comp.len() > best.len() {
                best = comp;
            }
        }
    }
    let mut out = vec![false; w * h];
    for i in best {
        out[i] = true;
    }
    out
}

/// Fills holes: every pixel not reachable from the border through background becomes foreground.
pub fn fill_holes(w: usize, h: usize, fg: &[bool]) -> Vec<bool> {
    let bg: Vec<bool> = fg.iter().map(|&f| !f).collect();
    let outside = flood_from_border(w, h, &bg);
    outside.iter().map(|&o| !o).collect()
}

/// Square dilation with radius `r` (separable max filter).
pub fn dilate(w: usize, h: usize, m: &[bool], r: usize) -> Vec<bool> {
    let mut tmp = vec![false; w * h];
    for y in 0..h {
        for x in 0..w {
            let (a, b) = (x.saturating_sub(r), (x + r).min(w - 1));
            tmp[y * w + x] = (a..=b).any(|xx| m[y * w + xx]);
        }
    }
    let mut out = vec![false; w * h];
    for y in 0..h {
        let (a, b) = (y.saturating_sub(r), (y + r).min(h - 1));
        for x in 0..w {
            out[y * w + x] = (a..=b).any(|yy| tmp[yy * w + x]);
        }
    }
    out
}

/// Square erosion with radius `r`.
pub fn erode(w: usize, h: usize, m: &[bool], r: usize) -> Vec<bool> {
    let inv: Vec<bool> = m.iter().map(|&v| !v).collect();
    dilate(w, h, &inv, r).into_iter().map(|v| !v).collect()
}
