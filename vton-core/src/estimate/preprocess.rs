//! MediaPipe's CPU image pre-processing, reproduced bit for bit where it matters.
//!
//! * [`image_to_tensor`]: `ImageToTensorCalculator` on its OpenCV path: a (rotated) ROI
//!   of the uint8 RGB image is sampled with `cv::warpPerspective(INTER_LINEAR)`, the
//!   uint8 result is converted to a float range. With `keep_aspect_ratio` the ROI is
//!   first widened to the tensor's aspect ([`pad_roi`]) and the letterbox padding is
//!   reported.
//! * [`warp_perspective_u8`]: OpenCV 3.4's uint8 bilinear warp (MediaPipe 0.10.14 links
//!   OpenCV 3.4.20): source positions rounded to 1/32 pixel (`INTER_BITS` 5), 15-bit
//!   fixed-point weights (`INTER_REMAP_COEF_BITS`), round-half-up of the weighted sum.
//! * [`warp_affine_inverse_f32`]: `cv::warpAffine(WARP_INVERSE_MAP, INTER_LINEAR)` on a
//!   float mask (positions in 1/1024 then 1/32 pixel, float weights), as
//!   `WarpAffineCalculator` uses to put the pose mask back on the image.
//! * [`resize_linear_f32`]: `cv::resize(INTER_LINEAR)` on a float mask (half-pixel
//!   centres, edge clamping), as `TensorsToSegmentationCalculator` upsamples.

use crate::error::{Result, VtonError};
use crate::io::RgbImage;
use crate::tflite::HostTensor;

/// An 8-bit interleaved RGB image: what MediaPipe's calculators work on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageU8 {
    pub width: usize,
    pub height: usize,
    /// `height * width * 3` bytes, row-major RGB.
    pub data: Vec<u8>,
}

impl ImageU8 {
    /// Converts a `[0, 1]` float image with `round(v * 255)` (values clamped, NaN -> 0).
    pub fn from_rgb(image: &RgbImage) -> Result<Self> {
        if image.width == 0 || image.height == 0 {
            return Err(VtonError::invalid(
                "image",
                format!("image size {}x{} is empty", image.width, image.height),
            ));
        }
        let n = image.width * image.height * 3;
        if image.data.len() != n {
            return Err(VtonError::SizeMismatch {
                what: "RGB image buffer length".into(),
                expected: n.to_string(),
                actual: image.data.len().to_string(),
            });
        }
        let data = image
            .data
            .iter()
            .map(|&v| {
                if v.is_nan() {
                    0
                } else {
                    (v.clamp(0.0, 1.0) * 255.0).round() as u8
                }
            })
            .collect();
        Ok(ImageU8 {
            width: image.width,
            height: image.height,
            data,
        })
    }
}

/// A rotated rectangle normalised to the image size (MediaPipe's `NormalizedRect`):
/// centre and size as fractions of the image width / height, rotation in radians
/// (clockwise in image coordinates).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Roi {
    pub x_center: f32,
    pub y_center: f32,
    pub width: f32,
    pub height: f32,
    pub rotation: f32,
}

impl Roi {
    /// The whole image (what `ImageToTensorCalculator` uses without a `NORM_RECT`).
    pub fn whole() -> Self {
        Roi {
            x_center: 0.5,
            y_center: 0.5,
            width: 1.0,
            height: 1.0,
            rotation: 0.0,
        }
    }

    /// In pixels of a `width x height` image (MediaPipe's `GetRoi`).
    pub fn to_pixels(&self, width: usize, height: usize) -> PixelRoi {
        let (w, h) = (width as f32, height as f32);
        PixelRoi {
            center_x: self.x_center * w,
            center_y: self.y_center * h,
            width: self.width * w,
            height: self.height * h,
            rotation: self.rotation,
        }
    }
}

/// A rotated rectangle in pixels (MediaPipe's `RotatedRect`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PixelRoi {
    pub center_x: f32,
    pub center_y: f32,
    pub width: f32,
    pub height: f32,
    pub rotation: f32,
}

/// Letterbox padding as fractions of the tensor: `[left, top, right, bottom]`.
pub type Padding = [f32; 4];

/// `PadRoi` of `ImageToTensorCalculator` (keep_aspect_ratio): widens the ROI to the
/// tensor aspect and returns the padding `[left, top, right, bottom]`.
pub fn pad_roi(tensor_width: usize, tensor_height: usize, roi: &mut PixelRoi) -> Padding {
    let tensor_aspect = tensor_height as f32 / tensor_width as f32;
    let roi_aspect = roi.height / roi.width;
    let (mut hpad, mut vpad) = (0.0f32, 0.0f32);
    let (new_w, new_h);
    if tensor_aspect > roi_aspect {
        new_w = roi.width;
        new_h = roi.width * tensor_aspect;
        vpad = (1.0 - roi_aspect / tensor_aspect) / 2.0;
    } else {
        new_w = roi.height / tensor_aspect;
        new_h = roi.height;
        hpad = (1.0 - tensor_aspect / roi_aspect) / 2.0;
    }
    roi.width = new_w;
    roi.height = new_h;
    [hpad, vpad, hpad, vpad]
}

/// How pixels outside the image are filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BorderMode {
    /// `BORDER_CONSTANT` with 0 (`BORDER_ZERO` in MediaPipe's options).
    Zero,
    /// `BORDER_REPLICATE` (`ImageToTensorCalculator`'s default).
    Replicate,
}

/// The corners of a rotated rectangle in `cv::boxPoints` order (bottom-left,
/// top-left, top-right, bottom-right), computed in `f32` as OpenCV's
/// `RotatedRect::points` does (angle passed through degrees as MediaPipe does).
pub fn box_points(roi: &PixelRoi) -> [[f32; 2]; 4] {
    let degrees = ((roi.rotation * 180.0f32) as f64 / std::f64::consts::PI) as f32;
    let angle = degrees as f64 * std::f64::consts::PI / 180.0;
    let b = (angle.cos() as f32) * 0.5;
    let a = (angle.sin() as f32) * 0.5;
    let (cx, cy, w, h) = (roi.center_x, roi.center_y, roi.width, roi.height);
    let p0 = [cx - a * h - b * w, cy + b * h - a * w];
    let p1 = [cx + a * h - b * w, cy - b * h - a * w];
    let p2 = [2.0 * cx - p0[0], 2.0 * cy - p0[1]];
    let p3 = [2.0 * cx - p1[0], 2.0 * cy - p1[1]];
    [p0, p1, p2, p3]
}

/// `cv::getPerspectiveTransform` (8x8 system in `f64`): the 3x3 matrix mapping
/// `src[i]` to `dst[i]`, row-major, `m[8] = 1`.
pub fn perspective_transform(src: &[[f32; 2]; 4], dst: &[[f32; 2]; 4]) -> Result<[f64; 9]> {
    let mut a = [[0f64; 9]; 8];
    for i in 0..4 {
        let (sx, sy) = (src[i][0] as f64, src[i][1] as f64);
        let (dx, dy) = (dst[i][0] as f64, dst[i][1] as f64);
        a[i] = [sx, sy, 1.0, 0.0, 0.0, 0.0, -sx * dx, -sy * dx, dx];
        a[i + 4] = [0.0, 0.0, 0.0, sx, sy, 1.0, -sx * dy, -sy * dy, dy];
    }
    // Gaussian elimination with partial pivoting.
    for col in 0..8 {
        let mut piv = col;
        for r in col + 1..8 {
            if a[r][col].abs() > a[piv][col].abs() {
                piv = r;
            }
        }
        if !greater(a[piv][col].abs(), 1e-12) {
            return Err(VtonError::Numerical {
                operation: "perspective transform".into(),
                message: "degenerate ROI corners (zero-area rectangle)".into(),
            });
        }
        a.swap(col, piv);
        for r in 0..8 {
            if r != col {
                let f = a[r][col] / a[col][col];
                if f != 0.0 {
                    let pivot_row = a[col];
                    for (v, p) in a[r].iter_mut().zip(pivot_row).skip(col) {
                        *v -= f * p;
                    }
                }
            }
        }
    }
    let mut m = [0f64; 9];
    for i in 0..8 {
        m[i] = a[i][8] / a[i][i];
    }
    m[8] = 1.0;
    Ok(m)
}

/// `v > t`, false when either is NaN.
fn greater(v: f64, t: f64) -> bool {
    v.partial_cmp(&t) == Some(std::cmp::Ordering::Greater)
}

/// Inverse of a 3x3 matrix (as `cv::invert` gives for a well-conditioned one).
pub fn invert3(m: &[f64; 9]) -> Result<[f64; 9]> {
    let det = m[0] * (m[4] * m[8] - m[5] * m[7]) - m[1] * (m[3] * m[8] - m[5] * m[6])
        + m[2] * (m[3] * m[7] - m[4] * m[6]);
    if !greater(det.abs(), 1e-300) || !det.is_finite() {
        return Err(VtonError::Numerical {
            operation: "perspective transform inverse".into(),
            message: format!("singular matrix (determinant {det})"),
        });
    }
    let d = 1.0 / det;
    Ok([
        (m[4] * m[8] - m[5] * m[7]) * d,
        (m[2] * m[7] - m[1] * m[8]) * d,
        (m[1] * m[5] - m[2] * m[4]) * d,
        (m[5] * m[6] - m[3] * m[8]) * d,
        (m[0] * m[8] - m[2] * m[6]) * d,
        (m[2] * m[3] - m[0] * m[5]) * d,
        (m[3] * m[7] - m[4] * m[6]) * d,
        (m[1] * m[6] - m[0] * m[7]) * d,
        (m[0] * m[4] - m[1] * m[3]) * d,
    ])
}

/// OpenCV's `INTER_BITS` (source positions in 1/32 pixel).
const INTER_BITS: i32 = 5;
const INTER_TAB_SIZE: i32 = 1 << INTER_BITS;
/// OpenCV's `INTER_REMAP_COEF_BITS` (15-bit fixed-point bilinear weights).
const REMAP_COEF_BITS: i32 = 15;

/// OpenCV's fixed-point bilinear weights for fractional position `(fx, fy)` in 1/32
/// (`BilinearTab_i`). The (0, 0) entry is `[32767, 0, 0, 1]`: 32768 does not fit a
/// `short`, and `initInterTab2D` moves the missing unit to the last weight.
fn bilinear_weights_i(fx: i32, fy: i32) -> [i32; 4] {
    if fx == 0 && fy == 0 {
        return [32767, 0, 0, 1];
    }
    let s = INTER_TAB_SIZE;
    let k = (1 << REMAP_COEF_BITS) / (s * s);
    [
        (s - fy) * (s - fx) * k,
        (s - fy) * fx * k,
        fy * (s - fx) * k,
        fy * fx * k,
    ]
}

fn round_to_int(v: f64) -> i32 {
    // saturate_cast<int>(double): round half to even, saturating.
    let r = v.round_ties_even();
    if r.is_nan() {
        0
    } else {
        r.clamp(i32::MIN as f64, i32::MAX as f64) as i32
    }
}

fn to_i16(v: i32) -> i32 {
    v.clamp(i16::MIN as i32, i16::MAX as i32)
}

/// Source index along one axis for a border mode; `None` = constant 0.
#[inline]
fn border_index(i: i32, n: usize, border: BorderMode) -> Option<usize> {
    let n = n as i32;
    if i >= 0 && i < n {
        return Some(i as usize);
    }
    match border {
        BorderMode::Zero => None,
        BorderMode::Replicate => Some(i.clamp(0, n - 1) as usize),
    }
}

/// `cv::warpPerspective(src, dst, M, (out_w, out_h), INTER_LINEAR, border)` on a
/// uint8 RGB image, `m_inv` being the dst -> src matrix (OpenCV inverts `M`), emulating
/// OpenCV 3.4's fixed-point arithmetic (see the module docs).
pub fn warp_perspective_u8(
    src: &ImageU8,
    m_inv: &[f64; 9],
    out_w: usize,
    out_h: usize,
    border: BorderMode,
) -> Vec<u8> {
    let mut out = vec![0u8; out_w * out_h * 3];
    if src.width == 0 || src.height == 0 || out_w == 0 || out_h == 0 {
        return out;
    }
    // WarpPerspectiveInvoker evaluates positions per block of `bw0` columns.
    let bh0 = 16.min(out_h);
    let bw0 = (1024 / bh0).min(out_w).max(1);
    let m = m_inv;
    let (sw, sh) = (src.width as i32, src.height as i32);
    for y in 0..out_h {
        let yf = y as f64;
        for x in 0..out_w {
            let xb = (x / bw0) * bw0;
            let x1 = (x - xb) as f64;
            let xbf = xb as f64;
            let x0 = m[0] * xbf + m[1] * yf + m[2];
            let y0 = m[3] * xbf + m[4] * yf + m[5];
            let w0 = m[6] * xbf + m[7] * yf + m[8];
            let w = w0 + m[6] * x1;
            let w = if w != 0.0 {
                INTER_TAB_SIZE as f64 / w
            } else {
                0.0
            };
            let fx = ((x0 + m[0] * x1) * w).clamp(i32::MIN as f64, i32::MAX as f64);
            let fy = ((y0 + m[3] * x1) * w).clamp(i32::MIN as f64, i32::MAX as f64);
            let xi = round_to_int(fx);
            let yi = round_to_int(fy);
            let sx = to_i16(xi >> INTER_BITS);
            let sy = to_i16(yi >> INTER_BITS);
            let wt = bilinear_weights_i(xi & (INTER_TAB_SIZE - 1), yi & (INTER_TAB_SIZE - 1));
            let d = (y * out_w + x) * 3;
            if border == BorderMode::Zero && (sx >= sw || sx + 1 < 0 || sy >= sh || sy + 1 < 0) {
                continue; // already 0
            }
            let xs = [
                border_index(sx, src.width, border),
                border_index(sx + 1, src.width, border),
            ];
            let ys = [
                border_index(sy, src.height, border),
                border_index(sy + 1, src.height, border),
            ];
            for c in 0..3 {
                let px = |yy: Option<usize>, xx: Option<usize>| -> i32 {
                    match (yy, xx) {
                        (Some(yy), Some(xx)) => src
                            .data
                            .get((yy * src.width + xx) * 3 + c)
                            .copied()
                            .unwrap_or(0) as i32,
                        _ => 0,
                    }
                };
                let v = px(ys[0], xs[0]) * wt[0]
                    + px(ys[0], xs[1]) * wt[1]
                    + px(ys[1], xs[0]) * wt[2]
                    + px(ys[1], xs[1]) * wt[3];
                let v = (v + (1 << (REMAP_COEF_BITS - 1))) >> REMAP_COEF_BITS;
                out[d + c] = v.clamp(0, 255) as u8;
            }
        }
    }
    out
}

/// The uint8 tensor image and the padding of one `ImageToTensorCalculator` call.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorImage {
    pub width: usize,
    pub height: usize,
    /// `height * width * 3`, RGB.
    pub data: Vec<u8>,
    /// Letterbox padding `[left, top, right, bottom]` (zeros without keep_aspect_ratio).
    pub padding: Padding,
    /// The ROI actually sampled (after `PadRoi`), in pixels.
    pub roi: PixelRoi,
}

impl TensorImage {
    /// The NHWC float tensor: `u8 * (max - min) / 255 + min`, in `f32` as MediaPipe's
    /// `convertTo` does.
    pub fn to_tensor(&self, range: (f32, f32)) -> HostTensor {
        let scale = (range.1 - range.0) / 255.0;
        HostTensor {
            shape: vec![1, self.height, self.width, 3],
            data: self
                .data
                .iter()
                .map(|&u| u as f32 * scale + range.0)
                .collect(),
        }
    }
}

/// `ImageToTensorCalculator` (OpenCV path): samples `roi` (normalised to the image) into
/// a `tensor_w x tensor_h` uint8 image.
pub fn image_to_tensor(
    image: &ImageU8,
    roi: &Roi,
    tensor_w: usize,
    tensor_h: usize,
    keep_aspect_ratio: bool,
    border: BorderMode,
) -> Result<TensorImage> {
    let mut px = roi.to_pixels(image.width, image.height);
    let finite = [px.center_x, px.center_y, px.width, px.height, px.rotation]
        .iter()
        .all(|v| v.is_finite());
    if !finite || px.width <= 0.0 || px.height <= 0.0 {
        return Err(VtonError::invalid(
            "roi",
            format!(
                "ROI width and height must be > 0 and finite, got {}x{} px",
                px.width, px.height
            ),
        ));
    }
    let padding = if keep_aspect_ratio {
        pad_roi(tensor_w, tensor_h, &mut px)
    } else {
        [0.0; 4]
    };
    let src = box_points(&px);
    let (tw, th) = (tensor_w as f32, tensor_h as f32);
    let dst = [[0.0, th], [0.0, 0.0], [tw, 0.0], [tw, th]];
    let m = perspective_transform(&src, &dst)?;
    let m_inv = invert3(&m)?;
    let data = warp_perspective_u8(image, &m_inv, tensor_w, tensor_h, border);
    Ok(TensorImage {
        width: tensor_w,
        height: tensor_h,
        data,
        padding,
        roi: px,
    })
}

/// `GetRotatedSubRectToRectTransformMatrix`: the 2x3 part of the matrix mapping
/// normalised sub-rect (tensor) coordinates to normalised image coordinates, `f32`.
pub fn subrect_to_rect_matrix(sub: &PixelRoi, rect_w: usize, rect_h: usize) -> [f32; 6] {
    let (a, w, h) = (sub.rotation, sub.width, sub.height);
    let (cos_a, sin_a) = (a.cos(), a.sin());
    let (rw, rh) = (rect_w as f32, rect_h as f32);
    [
        (w * cos_a) / rw,
        (-h * sin_a) / rw,
        (-0.5 * w * cos_a + 0.5 * h * sin_a + sub.center_x) / rw,
        (w * sin_a) / rh,
        (h * cos_a) / rh,
        (-0.5 * w * sin_a - 0.5 * h * cos_a + sub.center_y) / rh,
    ]
}

/// Inverse of a 2x3 affine matrix (`[a, b, tx, c, d, ty]`), in `f32`.
pub fn invert_affine(m: &[f32; 6]) -> Result<[f32; 6]> {
    let det = m[0] * m[4] - m[1] * m[3];
    if det == 0.0 || !det.is_finite() {
        return Err(VtonError::Numerical {
            operation: "affine inverse".into(),
            message: format!("singular matrix (determinant {det})"),
        });
    }
    let (a, b, c, d) = (m[4] / det, -m[1] / det, -m[3] / det, m[0] / det);
    Ok([a, b, -(a * m[2] + b * m[5]), c, d, -(c * m[2] + d * m[5])])
}

/// `cv::warpAffine(src, dst, M, (out_w, out_h), INTER_LINEAR | WARP_INVERSE_MAP,
/// BORDER_CONSTANT 0)` on a float image: `m` maps dst pixels to src pixels. Positions
/// go through OpenCV's `AB_BITS` 10 fixed point and are rounded to 1/32 pixel; the
/// weights are float (`BilinearTab_f`).
pub fn warp_affine_inverse_f32(
    src: &[f32],
    src_w: usize,
    src_h: usize,
    m: &[f64; 6],
    out_w: usize,
    out_h: usize,
) -> Vec<f32> {
    const AB_BITS: i32 = 10;
    const AB_SCALE: f64 = (1 << AB_BITS) as f64;
    let round_delta = (1 << AB_BITS) / INTER_TAB_SIZE / 2;
    let mut out = vec![0f32; out_w * out_h];
    if src.len() != src_w * src_h || src_w == 0 || src_h == 0 {
        return out;
    }
    let adelta: Vec<i32> = (0..out_w)
        .map(|x| round_to_int(m[0] * x as f64 * AB_SCALE))
        .collect();
    let bdelta: Vec<i32> = (0..out_w)
        .map(|x| round_to_int(m[3] * x as f64 * AB_SCALE))
        .collect();
    let (sw, sh) = (src_w as i32, src_h as i32);
    let tab = INTER_TAB_SIZE as f32;
    for y in 0..out_h {
        let yf = y as f64;
        let x0 = round_to_int((m[1] * yf + m[2]) * AB_SCALE).saturating_add(round_delta);
        let y0 = round_to_int((m[4] * yf + m[5]) * AB_SCALE).saturating_add(round_delta);
        for x in 0..out_w {
            let xi = x0.saturating_add(adelta[x]) >> (AB_BITS - INTER_BITS);
            let yi = y0.saturating_add(bdelta[x]) >> (AB_BITS - INTER_BITS);
            let sx = to_i16(xi >> INTER_BITS);
            let sy = to_i16(yi >> INTER_BITS);
            if sx >= sw || sx + 1 < 0 || sy >= sh || sy + 1 < 0 {
                continue;
            }
            let fx = (xi & (INTER_TAB_SIZE - 1)) as f32 / tab;
            let fy = (yi & (INTER_TAB_SIZE - 1)) as f32 / tab;
            let w = [
                (1.0 - fy) * (1.0 - fx),
                (1.0 - fy) * fx,
                fy * (1.0 - fx),
                fy * fx,
            ];
            let px = |yy: i32, xx: i32| -> f32 {
                if yy >= 0 && yy < sh && xx >= 0 && xx < sw {
                    src.get(yy as usize * src_w + xx as usize)
                        .copied()
                        .unwrap_or(0.0)
                } else {
                    0.0
                }
            };
            out[y * out_w + x] = px(sy, sx) * w[0]
                + px(sy, sx + 1) * w[1]
                + px(sy + 1, sx) * w[2]
                + px(sy + 1, sx + 1) * w[3];
        }
    }
    out
}

/// One axis of `cv::resize(INTER_LINEAR)`: per output index the first source index
/// and the weight of the second (`fx`, `f32`), with OpenCV's edge clamping.
fn resize_axis(src: usize, dst: usize) -> Vec<(usize, usize, f32)> {
    let scale = src as f64 / dst as f64;
    (0..dst)
        .map(|d| {
            let f = ((d as f64 + 0.5) * scale - 0.5) as f32;
            let mut s = f.floor() as i64;
            let mut frac = f - s as f32;
            if s < 0 {
                s = 0;
                frac = 0.0;
            }
            if s >= src as i64 - 1 {
                s = src as i64 - 1;
                frac = 0.0;
            }
            let s = s.max(0) as usize;
            (s, (s + 1).min(src.saturating_sub(1)), frac)
        })
        .collect()
}

/// `cv::resize(src, (out_w, out_h), INTER_LINEAR)` on a float image: half-pixel centres,
/// horizontal pass then vertical pass in `f32`.
pub fn resize_linear_f32(
    src: &[f32],
    src_w: usize,
    src_h: usize,
    out_w: usize,
    out_h: usize,
) -> Vec<f32> {
    if src.len() != src_w * src_h || src_w == 0 || src_h == 0 {
        return vec![0.0; out_w * out_h];
    }
    let xs = resize_axis(src_w, out_w);
    let ys = resize_axis(src_h, out_h);
    let hrow = |sy: usize| -> Vec<f32> {
        let row = &src[sy * src_w..(sy + 1) * src_w];
        xs.iter()
            .map(|&(s0, s1, f)| {
                let a = row.get(s0).copied().unwrap_or(0.0);
                if f == 0.0 && s0 == s1 {
                    a
                } else {
                    a * (1.0 - f) + row.get(s1).copied().unwrap_or(0.0) * f
                }
            })
            .collect()
    };
    let rows: Vec<Vec<f32>> = (0..src_h).map(hrow).collect();
    let mut out = Vec::with_capacity(out_w * out_h);
    for &(s0, s1, f) in &ys {
        let (r0, r1) = (&rows[s0], &rows[s1]);
        for x in 0..out_w {
            out.push(r0[x] * (1.0 - f) + r1[x] * f);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_sum_to_scale() {
        for fy in 0..32 {
            for fx in 0..32 {
                let w = bilinear_weights_i(fx, fy);
                assert_eq!(w.iter().sum::<i32>(), 1 << 15);
            }
        }
    }

    #[test]
    fn identity_warp_copies() {
        let img = ImageU8 {
            width: 3,
            height: 2,
            data: (0..18).map(|v| v as u8 * 10).collect(),
        };
        let t = image_to_tensor(&img, &Roi::whole(), 3, 2, false, BorderMode::Zero).unwrap();
        assert_eq!(t.data, img.data);
    }

    #[test]
    fn tiny_and_degenerate_inputs() {
        let img = ImageU8 {
            width: 1,
            height: 1,
            data: vec![200, 100, 50],
        };
        let t = image_to_tensor(&img, &Roi::whole(), 4, 4, true, BorderMode::Replicate).unwrap();
        assert_eq!(t.data.len(), 48);
        let bad = Roi {
            width: 0.0,
            ..Roi::whole()
        };
        assert!(image_to_tensor(&img, &bad, 4, 4, true, BorderMode::Zero).is_err());
        let nan = Roi {
            x_center: f32::NAN,
            ..Roi::whole()
        };
        assert!(image_to_tensor(&img, &nan, 4, 4, true, BorderMode::Zero).is_err());
        assert_eq!(resize_linear_f32(&[0.5], 1, 1, 3, 2), vec![0.5; 6]);
    }
}
