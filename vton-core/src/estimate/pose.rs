//! MediaPipe's legacy Pose graph (`PoseLandmarkCpu`, static image mode,
//! model_complexity 1): pose detection, the landmark ROI, landmark decoding and
//! refinement, projection to the image, world landmarks and the segmentation mask.
//!
//! Every constant is an option of MediaPipe 0.10.14's expanded graph; the comment on
//! each names the calculator option it comes from. The post-processing steps are pure
//! functions of the models' raw outputs, so they are tested against MediaPipe's own
//! intermediate results independently of the network.

use burn::tensor::Device;

use super::preprocess::{
    image_to_tensor, invert_affine, subrect_to_rect_matrix, warp_affine_inverse_f32, BorderMode,
    ImageU8, Padding, PixelRoi, Roi,
};
use crate::error::{Result, VtonError};
use crate::io::{Mask, PersonSelection, Pose, RgbImage};
use crate::tflite::{HostTensor, TfliteModel};

// ---- Pose detector (PoseDetectionCpu) -------------------------------------------------

/// ImageToTensorCalculator `output_tensor_width` / `output_tensor_height` (detector).
pub const DETECTOR_INPUT_SIZE: usize = 224;
/// ImageToTensorCalculator `output_tensor_float_range` (detector).
pub const DETECTOR_RANGE: (f32, f32) = (-1.0, 1.0);
/// SsdAnchorsCalculator `num_layers`.
pub const ANCHOR_NUM_LAYERS: usize = 5;
/// SsdAnchorsCalculator `strides`.
pub const ANCHOR_STRIDES: [usize; 5] = [8, 16, 32, 32, 32];
/// SsdAnchorsCalculator `anchor_offset_x` / `anchor_offset_y`.
pub const ANCHOR_OFFSET: f32 = 0.5;
/// SsdAnchorsCalculator `aspect_ratios` (one ratio) plus the default
/// `interpolated_scale_aspect_ratio` 1.0: two anchors per layer and location.
pub const ANCHORS_PER_LAYER: usize = 2;
/// TensorsToDetectionsCalculator `num_boxes`.
pub const NUM_BOXES: usize = 2254;
/// TensorsToDetectionsCalculator `num_coords`.
pub const NUM_COORDS: usize = 12;
/// TensorsToDetectionsCalculator `box_coord_offset`.
pub const BOX_COORD_OFFSET: usize = 0;
/// TensorsToDetectionsCalculator `keypoint_coord_offset`.
pub const KEYPOINT_COORD_OFFSET: usize = 4;
/// TensorsToDetectionsCalculator `num_keypoints`.
pub const NUM_KEYPOINTS: usize = 4;
/// TensorsToDetectionsCalculator `num_values_per_keypoint`.
pub const VALUES_PER_KEYPOINT: usize = 2;
/// TensorsToDetectionsCalculator `x_scale`, `y_scale`, `w_scale`, `h_scale`.
pub const BOX_SCALE: f32 = 224.0;
/// TensorsToDetectionsCalculator `score_clipping_thresh` (with `sigmoid_score` true).
pub const SCORE_CLIPPING_THRESH: f32 = 100.0;
/// NonMaxSuppressionCalculator `min_suppression_threshold` (algorithm WEIGHTED,
/// overlap_type INTERSECTION_OVER_UNION).
pub const NMS_MIN_SUPPRESSION_THRESHOLD: f32 = 0.3;

// ---- ROI (PoseDetectionToRoi) ------------------------------------------------------

/// AlignmentPointsRectsCalculator `rotation_vector_start_keypoint_index` (mid-hip).
pub const ROI_START_KEYPOINT: usize = 0;
/// AlignmentPointsRectsCalculator `rotation_vector_end_keypoint_index` (full-body point).
pub const ROI_END_KEYPOINT: usize = 1;
/// AlignmentPointsRectsCalculator `rotation_vector_target_angle_degrees`.
pub const ROI_TARGET_ANGLE_DEGREES: f32 = 90.0;
/// RectTransformationCalculator `scale_x` / `scale_y` (with `square_long` true).
pub const ROI_SCALE: f32 = 1.25;

// ---- Landmark model (PoseLandmarkByRoiCpu) ------------------------------------------

/// ImageToTensorCalculator `output_tensor_width` / `height` (landmark model) and
/// TensorsToLandmarksCalculator `input_image_width` / `input_image_height`.
pub const LANDMARK_INPUT_SIZE: usize = 256;
/// ImageToTensorCalculator `output_tensor_float_range` (landmark model).
pub const LANDMARK_RANGE: (f32, f32) = (0.0, 1.0);
/// TensorsToLandmarksCalculator `num_landmarks`.
pub const NUM_RAW_LANDMARKS: usize = 39;
/// SplitNormalizedLandmarkListCalculator range `0..33`: the body landmarks.
pub const NUM_LANDMARKS: usize = 33;
/// RefineLandmarksFromHeatmapCalculator `kernel_size`.
pub const HEATMAP_KERNEL_SIZE: usize = 7;
/// RefineLandmarksFromHeatmapCalculator `min_confidence_to_refine` (its default).
pub const HEATMAP_MIN_CONFIDENCE: f32 = 0.5;
/// Heatmap grid of `Identity_3` (64 x 64 x 39).
pub const HEATMAP_SIZE: usize = 64;

/// The 33 BlazePose landmark names, in model order.
pub const LANDMARK_NAMES: [&str; 33] = [
    "NOSE",
    "LEFT_EYE_INNER",
    "LEFT_EYE",
    "LEFT_EYE_OUTER",
    "RIGHT_EYE_INNER",
    "RIGHT_EYE",
    "RIGHT_EYE_OUTER",
    "LEFT_EAR",
    "RIGHT_EAR",
    "MOUTH_LEFT",
    "MOUTH_RIGHT",
    "LEFT_SHOULDER",
    "RIGHT_SHOULDER",
    "LEFT_ELBOW",
    "RIGHT_ELBOW",
    "LEFT_WRIST",
    "RIGHT_WRIST",
    "LEFT_PINKY",
    "RIGHT_PINKY",
    "LEFT_INDEX",
    "RIGHT_INDEX",
    "LEFT_THUMB",
    "RIGHT_THUMB",
    "LEFT_HIP",
    "RIGHT_HIP",
    "LEFT_KNEE",
    "RIGHT_KNEE",
    "LEFT_ANKLE",
    "RIGHT_ANKLE",
    "LEFT_HEEL",
    "RIGHT_HEEL",
    "LEFT_FOOT_INDEX",
    "RIGHT_FOOT_INDEX",
];

/// Options of the pose pipeline, with the legacy `mediapipe.solutions.pose.Pose`
/// defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PoseOptions {
    /// `min_detection_confidence` (TensorsToDetectionsCalculator `min_score_thresh`):
    /// detector anchors scoring below it are dropped. Default 0.5.
    pub min_detection_confidence: f32,
    /// `min_tracking_confidence` (ThresholdingCalculator `threshold` on the landmark
    /// model's pose-presence flag): a detection whose flag is below it yields no pose.
    /// Default 0.5.
    pub min_presence_confidence: f32,
    /// `enable_segmentation`: compute the image-sized person mask. Default true.
    pub enable_segmentation: bool,
}

impl Default for PoseOptions {
    fn default() -> Self {
        PoseOptions {
            min_detection_confidence: 0.5,
            min_presence_confidence: 0.5,
            enable_segmentation: true,
        }
    }
}

/// One pose detection: a score, the face box and four keypoints (0 mid-hip centre,
/// 1 full-body size/rotation point, 2 mid-shoulder centre, 3 upper-body size/rotation
/// point), normalised to the image (or to the detector tensor before
/// [`remove_detection_letterbox`]).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Detection {
    pub score: f32,
    pub xmin: f32,
    pub ymin: f32,
    pub width: f32,
    pub height: f32,
    pub keypoints: [[f32; 2]; 4],
}

/// One SSD anchor (`x_center`, `y_center`, `w`, `h`), normalised to the tensor.
pub type Anchor = [f32; 4];

/// SsdAnchorsCalculator with the pose detector's options: 2254 anchors, ordered by
/// layer group (equal strides merged), row, column, anchor; `w = h = 1`
/// (`fixed_anchor_size`).
pub fn ssd_anchors() -> Vec<Anchor> {
    let mut anchors = Vec::with_capacity(NUM_BOXES);
    let mut layer = 0;
    while layer < ANCHOR_NUM_LAYERS {
        let stride = ANCHOR_STRIDES[layer];
        let mut last = layer;
        while last < ANCHOR_STRIDES.len() && ANCHOR_STRIDES[last] == stride {
            last += 1;
        }
        let per_location = ANCHORS_PER_LAYER * (last - layer);
        let fm = (DETECTOR_INPUT_SIZE as f32 / stride as f32).ceil() as usize;
        for y in 0..fm {
            for x in 0..fm {
                let xc = (x as f32 + ANCHOR_OFFSET) / fm as f32;
                let yc = (y as f32 + ANCHOR_OFFSET) / fm as f32;
                for _ in 0..per_location {
                    anchors.push([xc, yc, 1.0, 1.0]);
                }
            }
        }
        layer = last;
    }
    anchors
}

/// `v >= min`, false when either is NaN.
fn at_least(v: f32, min: f32) -> bool {
    v.partial_cmp(&min)
        .is_some_and(|o| o != std::cmp::Ordering::Less)
}

fn sigmoid(v: f32) -> f32 {
    1.0 / (1.0 + (-v).exp())
}

fn check_len(what: &str, data: &[f32], expected: usize) -> Result<()> {
    if data.len() != expected {
        return Err(VtonError::Shape {
            what: what.into(),
            expected: format!("{expected} values"),
            actual: vec![data.len()],
        });
    }
    Ok(())
}

/// TensorsToDetectionsCalculator: decodes the detector's raw boxes (`[2254 * 12]`,
/// `[x, y, w, h, kp0.x, kp0.y, ...]` in 224-pixel units relative to the anchor) and
/// score logits (`[2254]`, clipped to +-100 then sigmoid) into detections normalised
/// to the tensor, keeping those with score >= `min_score` and a non-negative box, in
/// anchor order.
pub fn decode_detections(
    raw_boxes: &[f32],
    raw_scores: &[f32],
    anchors: &[Anchor],
    min_score: f32,
) -> Result<Vec<Detection>> {
    check_len("detector boxes", raw_boxes, NUM_BOXES * NUM_COORDS)?;
    check_len("detector scores", raw_scores, NUM_BOXES)?;
    if anchors.len() != NUM_BOXES {
        return Err(VtonError::Shape {
            what: "detector anchors".into(),
            expected: format!("{NUM_BOXES} anchors"),
            actual: vec![anchors.len()],
        });
    }
    let mut out = Vec::new();
    for (i, anchor) in anchors.iter().enumerate() {
        let score = raw_scores[i].clamp(-SCORE_CLIPPING_THRESH, SCORE_CLIPPING_THRESH);
        let score = sigmoid(score);
        if !at_least(score, min_score) {
            continue;
        }
        let r = &raw_boxes[i * NUM_COORDS..(i + 1) * NUM_COORDS];
        let o = BOX_COORD_OFFSET;
        // reverse_output_order: [x_center, y_center, w, h].
        let xc = r[o] / BOX_SCALE * anchor[2] + anchor[0];
        let yc = r[o + 1] / BOX_SCALE * anchor[3] + anchor[1];
        let w = r[o + 2] / BOX_SCALE * anchor[2];
        let h = r[o + 3] / BOX_SCALE * anchor[3];
        let (ymin, xmin, ymax, xmax) = (yc - h / 2.0, xc - w / 2.0, yc + h / 2.0, xc + w / 2.0);
        let mut keypoints = [[0f32; 2]; 4];
        for (k, kp) in keypoints.iter_mut().enumerate() {
            let off = KEYPOINT_COORD_OFFSET + k * VALUES_PER_KEYPOINT;
            kp[0] = r[off] / BOX_SCALE * anchor[2] + anchor[0];
            kp[1] = r[off + 1] / BOX_SCALE * anchor[3] + anchor[1];
        }
        let (width, height) = (xmax - xmin, ymax - ymin);
        // Boxes with negative or NaN size are dropped (b/171391719).
        if !at_least(width, 0.0) || !at_least(height, 0.0) {
            continue;
        }
        out.push(Detection {
            score,
            xmin,
            ymin,
            width,
            height,
            keypoints,
        });
    }
    Ok(out)
}

fn iou(a: &Detection, b: &Detection) -> f32 {
    let (ax1, ay1) = (a.xmin + a.width, a.ymin + a.height);
    let (bx1, by1) = (b.xmin + b.width, b.ymin + b.height);
    let ix0 = a.xmin.max(b.xmin);
    let iy0 = a.ymin.max(b.ymin);
    let ix1 = ax1.min(bx1);
    let iy1 = ay1.min(by1);
    if ix1 < ix0 || iy1 < iy0 {
        return 0.0;
    }
    let inter = (ix1 - ix0) * (iy1 - iy0);
    let norm = a.width * a.height + b.width * b.height - inter;
    if norm > 0.0 {
        inter / norm
    } else {
        0.0
    }
}

/// NonMaxSuppressionCalculator, algorithm WEIGHTED: detections sorted by score; the
/// best one and every remaining detection overlapping it with IoU >
/// [`NMS_MIN_SUPPRESSION_THRESHOLD`] (itself included) are averaged, weighted by
/// score (box corners and keypoints), keeping the best score; repeat on the rest.
pub fn weighted_nms(detections: &[Detection]) -> Vec<Detection> {
    let mut order: Vec<usize> = (0..detections.len()).collect();
    order.sort_by(|&a, &b| {
        detections[b]
            .score
            .partial_cmp(&detections[a].score)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let mut remaining = order;
    let mut out = Vec::new();
    while let Some(&best_i) = remaining.first() {
        let best = detections[best_i];
        let (mut candidates, mut rest) = (Vec::new(), Vec::new());
        for &i in &remaining {
            if iou(&detections[i], &best) > NMS_MIN_SUPPRESSION_THRESHOLD {
                candidates.push(i);
            } else {
                rest.push(i);
            }
        }
        let mut weighted = best;
        if !candidates.is_empty() {
            let (mut x0, mut y0, mut x1, mut y1, mut total) = (0f32, 0f32, 0f32, 0f32, 0f32);
            let mut kps = [0f32; 8];
            for &i in &candidates {
                let d = &detections[i];
                let s = d.score;
                total += s;
                x0 += d.xmin * s;
                y0 += d.ymin * s;
                x1 += (d.xmin + d.width) * s;
                y1 += (d.ymin + d.height) * s;
                for k in 0..4 {
                    kps[2 * k] += d.keypoints[k][0] * s;
                    kps[2 * k + 1] += d.keypoints[k][1] * s;
                }
            }
            weighted.xmin = x0 / total;
            weighted.ymin = y0 / total;
            weighted.width = x1 / total - weighted.xmin;
            weighted.height = y1 / total - weighted.ymin;
            for k in 0..4 {
                weighted.keypoints[k] = [kps[2 * k] / total, kps[2 * k + 1] / total];
            }
        }
        out.push(weighted);
        if rest.len() == remaining.len() {
            break;
        }
        remaining = rest;
    }
    out
}

/// DetectionLetterboxRemovalCalculator: from tensor to image coordinates.
pub fn remove_detection_letterbox(d: &Detection, padding: &Padding) -> Detection {
    let [l, t, r, b] = *padding;
    let (sx, sy) = (1.0 - l - r, 1.0 - t - b);
    let mut out = *d;
    out.xmin = (d.xmin - l) / sx;
    out.ymin = (d.ymin - t) / sy;
    out.width = d.width / sx;
    out.height = d.height / sy;
    for k in 0..4 {
        out.keypoints[k] = [(d.keypoints[k][0] - l) / sx, (d.keypoints[k][1] - t) / sy];
    }
    out
}

fn normalize_radians(angle: f32) -> f32 {
    use std::f32::consts::PI;
    angle - 2.0 * PI * ((angle - (-PI)) / (2.0 * PI)).floor()
}

/// PoseDetectionToRoi: AlignmentPointsRectsCalculator (centre = keypoint 0, side = 2 x
/// the pixel distance from keypoint 0 to 1, rotation so that 0 -> 1 points up), then
/// RectTransformationCalculator (`square_long`, scale 1.25). Normalised to the image.
pub fn roi_from_detection(d: &Detection, image_w: usize, image_h: usize) -> Roi {
    let (w, h) = (image_w as f32, image_h as f32);
    let [p0, p1] = [
        d.keypoints[ROI_START_KEYPOINT],
        d.keypoints[ROI_END_KEYPOINT],
    ];
    let (x0, y0) = (p0[0] * w, p0[1] * h);
    let (x1, y1) = (p1[0] * w, p1[1] * h);
    let box_size = ((x1 - x0) * (x1 - x0) + (y1 - y0) * (y1 - y0)).sqrt() * 2.0;
    let target = std::f32::consts::PI * ROI_TARGET_ANGLE_DEGREES / 180.0;
    let rotation = normalize_radians(target - (-(y1 - y0)).atan2(x1 - x0));
    let (rw, rh) = (box_size / w, box_size / h);
    let long_side = (rw * w).max(rh * h);
    Roi {
        x_center: x0 / w,
        y_center: y0 / h,
        width: long_side / w * ROI_SCALE,
        height: long_side / h * ROI_SCALE,
        rotation,
    }
}

/// One landmark: `x`, `y` (normalised or pixels, see where it comes from), `z` (same
/// scale as `x`; metres for world landmarks), visibility and presence in `[0, 1]`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Landmark {
    pub x: f32,
    pub y: f32,
    pub z: f32,
    pub visibility: f32,
    pub presence: f32,
}

/// The landmark model's raw outputs (`Identity` .. `Identity_4`), flattened.
#[derive(Debug, Clone, Copy)]
pub struct RawLandmarkOutputs<'a> {
    /// `Identity` `[1, 195]`: 39 x (x, y, z, visibility logit, presence logit), pixels
    /// of the 256 x 256 tensor.
    pub landmarks: &'a [f32],
    /// `Identity_1` `[1, 1]`: pose presence probability.
    pub pose_flag: f32,
    /// `Identity_2` `[1, 256, 256, 1]`: segmentation logits.
    pub segmentation: &'a [f32],
    /// `Identity_3` `[1, 64, 64, 39]`: heatmap logits, HWC.
    pub heatmap: &'a [f32],
    /// `Identity_4` `[1, 117]`: world landmarks, 39 x (x, y, z) metres.
    pub world: &'a [f32],
}

/// TensorsToLandmarksCalculator: 39 landmarks normalised to the tensor, visibility and
/// presence through a sigmoid.
pub fn decode_raw_landmarks(raw: &[f32]) -> Result<Vec<Landmark>> {
    check_len("landmark tensor", raw, NUM_RAW_LANDMARKS * 5)?;
    let s = LANDMARK_INPUT_SIZE as f32;
    Ok(raw
        .chunks_exact(5)
        .map(|c| Landmark {
            x: c[0] / s,
            y: c[1] / s,
            z: c[2] / s,
            visibility: sigmoid(c[3]),
            presence: sigmoid(c[4]),
        })
        .collect())
}

/// RefineLandmarksFromHeatmapCalculator (kernel 7, min confidence 0.5, no presence or
/// visibility refinement): each landmark inside the map moves to the confidence-
/// weighted mean of its 7x7 heatmap window (sigmoid of the logits) when the window's
/// maximum confidence reaches 0.5. Reproduces MediaPipe's bound check, which tests the
/// column twice and the row against 0 only.
pub fn refine_landmarks_from_heatmap(lms: &mut [Landmark], heatmap: &[f32]) -> Result<()> {
    let (hm_h, hm_w, ch) = (HEATMAP_SIZE as i64, HEATMAP_SIZE as i64, lms.len() as i64);
    check_len("heatmap", heatmap, (hm_h * hm_w * ch) as usize)?;
    let offset = (HEATMAP_KERNEL_SIZE as i64 - 1) / 2;
    for (li, lm) in lms.iter_mut().enumerate() {
        // C++ float -> int conversion truncates toward zero.
        let col = (lm.x * hm_w as f32) as i64;
        let row = (lm.y * hm_h as f32) as i64;
        if col < 0 || col >= hm_w || row < 0 || col >= hm_h {
            continue;
        }
        let (c0, c1) = ((col - offset).max(0), (col + offset + 1).min(hm_w));
        let (r0, r1) = ((row - offset).max(0), (row + offset + 1).min(hm_h));
        let (mut sum, mut wc, mut wr, mut maxc) = (0f32, 0f32, 0f32, 0f32);
        for r in r0..r1 {
            for c in c0..c1 {
                let idx = (hm_w * ch * r + ch * c + li as i64) as usize;
                let conf = sigmoid(heatmap.get(idx).copied().unwrap_or(f32::NEG_INFINITY));
                sum += conf;
                maxc = maxc.max(conf);
                wc += c as f32 * conf;
                wr += r as f32 * conf;
            }
        }
        if maxc >= HEATMAP_MIN_CONFIDENCE && sum > 0.0 {
            lm.x = wc / hm_w as f32 / sum;
            lm.y = wr / hm_h as f32 / sum;
        }
    }
    Ok(())
}

/// LandmarkLetterboxRemovalCalculator then LandmarkProjectionCalculator: from tensor
/// coordinates to coordinates normalised to the image (`z` scaled like `x`).
pub fn project_landmark(lm: &Landmark, padding: &Padding, roi: &Roi) -> Landmark {
    let [l, t, r, b] = *padding;
    let x = (lm.x - l) / (1.0 - l - r);
    let y = (lm.y - t) / (1.0 - t - b);
    let z = lm.z / (1.0 - l - r);
    let (x, y) = (x - 0.5, y - 0.5);
    let a = roi.rotation;
    let nx = a.cos() * x - a.sin() * y;
    let ny = a.sin() * x + a.cos() * y;
    Landmark {
        x: nx * roi.width + roi.x_center,
        y: ny * roi.height + roi.y_center,
        z: z * roi.width,
        ..*lm
    }
}

/// World landmarks: `Identity_4` as 39 x (x, y, z) metres, the first 33 kept, x/y
/// rotated by the ROI rotation (WorldLandmarkProjectionCalculator), visibility and
/// presence copied from the image landmarks (VisibilityCopyCalculator).
pub fn world_landmarks(
    raw: &[f32],
    rotation: f32,
    image_lms: &[Landmark],
) -> Result<Vec<Landmark>> {
    check_len("world landmark tensor", raw, NUM_RAW_LANDMARKS * 3)?;
    let (c, s) = (rotation.cos(), rotation.sin());
    Ok(raw
        .chunks_exact(3)
        .take(NUM_LANDMARKS)
        .zip(image_lms)
        .map(|(p, lm)| Landmark {
            x: c * p[0] - s * p[1],
            y: s * p[0] + c * p[1],
            z: p[2],
            visibility: lm.visibility,
            presence: lm.presence,
        })
        .collect())
}

/// TensorsToSegmentationCalculator (activation SIGMOID) on the 256x256 logits.
pub fn roi_mask_from_logits(logits: &[f32]) -> Result<Vec<f32>> {
    check_len(
        "segmentation tensor",
        logits,
        LANDMARK_INPUT_SIZE * LANDMARK_INPUT_SIZE,
    )?;
    Ok(logits.iter().map(|&v| sigmoid(v)).collect())
}

/// WarpAffineCalculator (BORDER_ZERO): puts the 256x256 ROI mask back on the
/// `image_w x image_h` image with the inverse of the ROI -> image matrix (`roi_px` is
/// the ROI the tensor was sampled from, in pixels). Outside the ROI the mask is 0.
pub fn warp_roi_mask(
    roi_mask: &[f32],
    roi_px: &PixelRoi,
    image_w: usize,
    image_h: usize,
) -> Result<Mask> {
    let n = LANDMARK_INPUT_SIZE;
    check_len("ROI mask", roi_mask, n * n)?;
    let m = subrect_to_rect_matrix(roi_px, image_w, image_h);
    let inv = invert_affine(&m)?;
    // OpenCV works in pixels: src_px = 256 * inv * (dst_px / (W, H)) (all f32).
    let (sw, sh) = (n as f32, n as f32);
    let (iw, ih) = (1.0 / image_w as f32, 1.0 / image_h as f32);
    let full = [
        ((sw * inv[0]) * iw) as f64,
        ((sw * inv[1]) * ih) as f64,
        (sw * inv[2]) as f64,
        ((sh * inv[3]) * iw) as f64,
        ((sh * inv[4]) * ih) as f64,
        (sh * inv[5]) as f64,
    ];
    if full.iter().any(|v| !v.is_finite()) {
        return Err(VtonError::Numerical {
            operation: "mask warp-back".into(),
            message: "non-finite ROI matrix".into(),
        });
    }
    let data = warp_affine_inverse_f32(roi_mask, n, n, &full, image_w, image_h);
    Mask::from_f32(image_w, image_h, data)
}

/// Everything the landmark stage derives from the raw outputs, before conversion to
/// pixels: MediaPipe's normalised landmarks (33), world landmarks and the mask.
#[derive(Debug, Clone)]
pub struct DecodedLandmarks {
    /// Raw landmarks (39) after heatmap refinement, normalised to the tensor.
    pub refined: Vec<Landmark>,
    /// The 33 body landmarks normalised to the image (MediaPipe's `pose_landmarks`).
    pub landmarks: Vec<Landmark>,
    /// The 33 world landmarks in metres.
    pub world: Vec<Landmark>,
    /// The pose presence flag.
    pub pose_flag: f32,
    /// The ROI mask (sigmoid), 256x256, when asked for.
    pub roi_mask: Option<Vec<f32>>,
}

/// The landmark stage's post-processing: decode, refine, split, project, world
/// landmarks, optional ROI mask. `None` when the pose flag is below
/// `min_presence_confidence`.
pub fn decode_landmark_outputs(
    raw: &RawLandmarkOutputs<'_>,
    padding: &Padding,
    roi: &Roi,
    min_presence_confidence: f32,
    with_mask: bool,
) -> Result<Option<DecodedLandmarks>> {
    if !at_least(raw.pose_flag, min_presence_confidence) {
        return Ok(None);
    }
    let mut refined = decode_raw_landmarks(raw.landmarks)?;
    refine_landmarks_from_heatmap(&mut refined, raw.heatmap)?;
    let landmarks: Vec<Landmark> = refined
        .iter()
        .take(NUM_LANDMARKS)
        .map(|lm| project_landmark(lm, padding, roi))
        .collect();
    let world = world_landmarks(raw.world, roi.rotation, &landmarks)?;
    let roi_mask = if with_mask {
        Some(roi_mask_from_logits(raw.segmentation)?)
    } else {
        None
    };
    Ok(Some(DecodedLandmarks {
        refined,
        landmarks,
        world,
        pose_flag: raw.pose_flag,
        roi_mask,
    }))
}

// ---- The estimator --------------------------------------------------------------------

/// One person found by [`PoseEstimator::estimate`].
#[derive(Debug, Clone, PartialEq)]
pub struct PoseEstimate {
    /// The 33 BlazePose landmarks: `x`, `y` in pixels of the input image, `z` in the
    /// same pixel scale (MediaPipe's normalised `z` times the image width; smaller =
    /// closer, hip centre near 0), visibility and presence in `[0, 1]`.
    pub landmarks: Vec<Landmark>,
    /// The 33 world landmarks in metres (origin at the hip centre), visibility and
    /// presence as in `landmarks`.
    pub world_landmarks: Vec<Landmark>,
    /// The detector's score for this person.
    pub score: f32,
    /// The landmark model's pose-presence flag.
    pub pose_presence: f32,
    /// The detection (letterbox removed, normalised to the image).
    pub detection: Detection,
    /// The ROI the landmark model saw, normalised to the image.
    pub roi: Roi,
    /// Image-sized person probability, when segmentation is enabled.
    pub mask: Option<Mask>,
    /// `(width, height)` of the image the pose was estimated on.
    pub image_size: (usize, usize),
}

impl PoseEstimate {
    /// `[x, y, z, visibility, presence]` per landmark (pixels), 33 rows.
    pub fn landmarks_array(&self) -> Vec<[f32; 5]> {
        self.landmarks
            .iter()
            .map(|l| [l.x, l.y, l.z, l.visibility, l.presence])
            .collect()
    }

    /// The pose in OpenPose BODY_25 order (see [`super::body25`] for the table and
    /// which points count as missing: outside the image, or visibility below
    /// [`super::body25::MIN_VISIBILITY`]).
    pub fn to_body25(&self) -> Pose {
        super::body25::to_body25(&self.landmarks, self.image_size.0, self.image_size.1)
    }

    /// Area of the landmarks' bounding box in pixels.
    pub fn bbox_area(&self) -> f32 {
        let (mut x0, mut y0, mut x1, mut y1) = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
        for l in self
            .landmarks
            .iter()
            .filter(|l| l.x.is_finite() && l.y.is_finite())
        {
            x0 = x0.min(l.x);
            y0 = y0.min(l.y);
            x1 = x1.max(l.x);
            y1 = y1.max(l.y);
        }
        if x1 < x0 {
            0.0
        } else {
            (x1 - x0) * (y1 - y0)
        }
    }
}

/// MediaPipe's legacy Pose pipeline (BlazePose detector + `pose_landmark_full`) on
/// still images.
#[derive(Debug)]
pub struct PoseEstimator {
    detector: TfliteModel,
    landmark: TfliteModel,
    anchors: Vec<Anchor>,
    /// Pipeline options (MediaPipe's defaults from [`PoseOptions::default`]).
    pub options: PoseOptions,
}

fn output_by_len<'a>(outs: &'a [HostTensor], len: usize, what: &str) -> Result<&'a [f32]> {
    outs.iter()
        .find(|t| t.data.len() == len)
        .map(|t| t.data.as_slice())
        .ok_or_else(|| VtonError::Shape {
            what: format!("{what} output"),
            expected: format!("an output with {len} values"),
            actual: outs.iter().map(|t| t.data.len()).collect(),
        })
}

impl PoseEstimator {
    /// The estimator on the models bundled with vton (no download).
    pub fn bundled(device: &Device) -> Result<Self> {
        Self::from_bytes(
            super::bundled::POSE_DETECTION,
            super::bundled::POSE_LANDMARK_FULL,
            device,
        )
    }

    /// The estimator on user-given `pose_detection.tflite` and `pose_landmark_*.tflite`
    /// files (same inputs and outputs as MediaPipe's).
    pub fn from_files(
        detector: impl AsRef<std::path::Path>,
        landmark: impl AsRef<std::path::Path>,
        device: &Device,
    ) -> Result<Self> {
        let read = |p: &std::path::Path| std::fs::read(p).map_err(|e| VtonError::io(p, e));
        let d = read(detector.as_ref())?;
        let l = read(landmark.as_ref())?;
        Self::from_bytes(&d, &l, device)
    }

    /// The estimator on models given as bytes.
    pub fn from_bytes(detector: &[u8], landmark: &[u8], device: &Device) -> Result<Self> {
        Ok(PoseEstimator {
            detector: TfliteModel::from_bytes(detector, device)?,
            landmark: TfliteModel::from_bytes(landmark, device)?,
            anchors: ssd_anchors(),
            options: PoseOptions::default(),
        })
    }

    /// The same estimator with other options.
    pub fn with_options(mut self, options: PoseOptions) -> Self {
        self.options = options;
        self
    }

    /// Runs the detector on the whole image: detections after weighted NMS, letterbox
    /// removed (normalised to the image), best first.
    pub fn detect(&self, image: &RgbImage) -> Result<Vec<Detection>> {
        let img = ImageU8::from_rgb(image)?;
        self.detect_u8(&img)
    }

    fn detect_u8(&self, img: &ImageU8) -> Result<Vec<Detection>> {
        // ImageToTensorCalculator: keep_aspect_ratio true, border_mode BORDER_ZERO.
        let t = image_to_tensor(
            img,
            &Roi::whole(),
            DETECTOR_INPUT_SIZE,
            DETECTOR_INPUT_SIZE,
            true,
            BorderMode::Zero,
        )?;
        let outs = self.detector.run(&[t.to_tensor(DETECTOR_RANGE)])?;
        let boxes = output_by_len(&outs, NUM_BOXES * NUM_COORDS, "detector boxes")?;
        let scores = output_by_len(&outs, NUM_BOXES, "detector scores")?;
        let dets = decode_detections(
            boxes,
            scores,
            &self.anchors,
            self.options.min_detection_confidence,
        )?;
        Ok(weighted_nms(&dets)
            .iter()
            .map(|d| remove_detection_letterbox(d, &t.padding))
            .collect())
    }

    fn landmarks_for(&self, img: &ImageU8, det: &Detection) -> Result<Option<PoseEstimate>> {
        let roi = roi_from_detection(det, img.width, img.height);
        let valid = [
            roi.x_center,
            roi.y_center,
            roi.width,
            roi.height,
            roi.rotation,
        ]
        .iter()
        .all(|v| v.is_finite())
            && roi.width > 0.0
            && roi.height > 0.0;
        if !valid {
            // A degenerate detection (keypoints 0 and 1 equal): MediaPipe's
            // ImageToTensor rejects such a ROI; we skip the detection.
            return Ok(None);
        }
        // ImageToTensorCalculator: keep_aspect_ratio true, border unset (REPLICATE).
        let t = image_to_tensor(
            img,
            &roi,
            LANDMARK_INPUT_SIZE,
            LANDMARK_INPUT_SIZE,
            true,
            BorderMode::Replicate,
        )?;
        let outs = self.landmark.run(&[t.to_tensor(LANDMARK_RANGE)])?;
        let n = LANDMARK_INPUT_SIZE;
        let raw = RawLandmarkOutputs {
            landmarks: output_by_len(&outs, NUM_RAW_LANDMARKS * 5, "landmarks")?,
            pose_flag: output_by_len(&outs, 1, "pose flag")?
                .first()
                .copied()
                .unwrap_or(0.0),
            segmentation: output_by_len(&outs, n * n, "segmentation")?,
            heatmap: output_by_len(
                &outs,
                HEATMAP_SIZE * HEATMAP_SIZE * NUM_RAW_LANDMARKS,
                "heatmap",
            )?,
            world: output_by_len(&outs, NUM_RAW_LANDMARKS * 3, "world landmarks")?,
        };
        let Some(dec) = decode_landmark_outputs(
            &raw,
            &t.padding,
            &roi,
            self.options.min_presence_confidence,
            self.options.enable_segmentation,
        )?
        else {
            return Ok(None);
        };
        let mask = match &dec.roi_mask {
            Some(m) => Some(warp_roi_mask(m, &t.roi, img.width, img.height)?),
            None => None,
        };
        let (w, h) = (img.width as f32, img.height as f32);
        let landmarks = dec
            .landmarks
            .iter()
            .map(|l| Landmark {
                x: l.x * w,
                y: l.y * h,
                z: l.z * w,
                ..*l
            })
            .collect();
        Ok(Some(PoseEstimate {
            landmarks,
            world_landmarks: dec.world,
            score: det.score,
            pose_presence: dec.pose_flag,
            detection: *det,
            roi,
            mask,
            image_size: (img.width, img.height),
        }))
    }

    /// Every person: one estimate per detection kept after NMS whose landmark model
    /// reports a pose, in detection order (best score first; MediaPipe's single-person
    /// graph uses the first).
    pub fn estimate(&self, image: &RgbImage) -> Result<Vec<PoseEstimate>> {
        let img = ImageU8::from_rgb(image)?;
        let mut out = Vec::new();
        for det in self.detect_u8(&img)? {
            if let Some(p) = self.landmarks_for(&img, &det)? {
                out.push(p);
            }
        }
        Ok(out)
    }

    /// One person: [`PersonSelection::Largest`] = the largest landmark bounding box,
    /// [`PersonSelection::Index`] = that index of [`PoseEstimator::estimate`]'s list.
    /// [`VtonError::NoPerson`] when there is none.
    pub fn estimate_one(
        &self,
        image: &RgbImage,
        selection: PersonSelection,
    ) -> Result<PoseEstimate> {
        let people = self.estimate(image)?;
        crate::io::pose::select_by_area(
            people,
            PoseEstimate::bbox_area,
            selection,
            "pose estimation",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchor_count() {
        assert_eq!(ssd_anchors().len(), NUM_BOXES);
    }

    #[test]
    fn degenerate_inputs_do_not_panic() {
        let anchors = ssd_anchors();
        let boxes = vec![f32::NAN; NUM_BOXES * NUM_COORDS];
        let scores = vec![f32::NAN; NUM_BOXES];
        assert!(decode_detections(&boxes, &scores, &anchors, 0.5)
            .unwrap()
            .is_empty());
        assert!(decode_detections(&boxes[1..], &scores, &anchors, 0.5).is_err());
        let d = Detection::default();
        let roi = roi_from_detection(&d, 1, 1);
        assert_eq!(roi.width, 0.0);
        let mut lms = vec![
            Landmark {
                x: f32::NAN,
                y: 70.0,
                ..Default::default()
            };
            39
        ];
        refine_landmarks_from_heatmap(&mut lms, &vec![0.0; 64 * 64 * 39]).unwrap();
        // Zero-area boxes never overlap, not even themselves: MediaPipe's loop stops.
        assert_eq!(weighted_nms(&[d, d]).len(), 1);
    }
}
