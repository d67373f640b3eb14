//! MediaPipe legacy Pose + Selfie Segmentation (`vton_core::estimate`) against
//! MediaPipe 0.10.14's own results (tests/fixtures/mediapipe, trimmed from the
//! reference set by scripts/fixtures/mediapipe_fixtures.py).
//!
//! * Decoding tests feed the stored raw model outputs (LiteRT reference kernels) of the
//!   photo case (mpl_grace_hopper.png) to vton's post-processing and compare with what
//!   MediaPipe's calculators made of them (its graph ran XNNPACK, so ~1e-6 kernel noise
//!   remains).
//! * Pre-processing tests rebuild the stored model inputs from the photo.
//! * End-to-end tests run the bundled models on the six corpus photos and compare with
//!   MediaPipe's pipeline (landmarks, masks). Stored masks are 8-bit PNGs (round(v*255)),
//!   so mask comparisons allow 0.5/255 of quantisation.

mod common;

use std::collections::HashMap;

use serde_json::Value;
use vton_core::estimate::pose::{
    decode_detections, decode_landmark_outputs, decode_raw_landmarks,
    refine_landmarks_from_heatmap, remove_detection_letterbox, roi_from_detection, ssd_anchors,
    warp_roi_mask, weighted_nms, world_landmarks, Detection, Landmark, RawLandmarkOutputs,
};
use vton_core::estimate::preprocess::{image_to_tensor, pad_roi, BorderMode, ImageU8, Roi};
use vton_core::estimate::segmentation::selfie_mask_to_image;
use vton_core::estimate::{PoseEstimator, SelfieSegmenter};
use vton_core::io::{read_image, read_keypoints, read_mask, Mask, PersonSelection};
use vton_core::VtonError;

const PHOTOS: [&str; 6] = [
    "mpl_grace_hopper",
    "openvto_ai3_selfie",
    "openvto_ai_avatar1_upper",
    "openvto_ai_avatar2_upper",
    "openvto_real1_selfie",
    "skimage_astronaut",
];

fn fx(name: &str) -> std::path::PathBuf {
    common::fixture(&format!("mediapipe/{name}"))
}

fn json(name: &str) -> Value {
    let text = std::fs::read_to_string(fx(name)).expect("fixture json");
    serde_json::from_str(&text).expect("valid json")
}

enum T {
    F32(Vec<f32>),
    U8(Vec<u8>),
}

fn tensors() -> HashMap<String, T> {
    let bytes = std::fs::read(fx("model_cases.safetensors")).expect("model_cases");
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
    let mut out = HashMap::new();
    for (name, view) in st.tensors() {
        let data = view.data();
        let t = match view.dtype() {
            safetensors::Dtype::U8 => T::U8(data.to_vec()),
            safetensors::Dtype::F32 => T::F32(
                data.chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            ),
            d => panic!("unexpected dtype {d:?}"),
        };
        out.insert(name, t);
    }
    out
}

fn f32s<'a>(t: &'a HashMap<String, T>, k: &str) -> &'a [f32] {
    match t.get(k) {
        Some(T::F32(v)) => v,
        _ => panic!("no f32 tensor {k}"),
    }
}

fn u8s<'a>(t: &'a HashMap<String, T>, k: &str) -> &'a [u8] {
    match t.get(k) {
        Some(T::U8(v)) => v,
        _ => panic!("no u8 tensor {k}"),
    }
}

fn nums(v: &Value) -> Vec<f32> {
    match v {
        Value::Array(a) => a.iter().flat_map(nums).collect(),
        Value::Number(n) => vec![n.as_f64().expect("number") as f32],
        _ => panic!("not numeric: {v}"),
    }
}

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn detection_from_json(v: &Value) -> Detection {
    let b = nums(&v["bbox_xmin_ymin_width_height"]);
    let k = nums(&v["keypoints_xy"]);
    Detection {
        score: nums(&v["score"])[0],
        xmin: b[0],
        ymin: b[1],
        width: b[2],
        height: b[3],
        keypoints: [[k[0], k[1]], [k[2], k[3]], [k[4], k[5]], [k[6], k[7]]],
    }
}

fn detection_values(d: &Detection) -> Vec<f32> {
    let mut v = vec![d.score, d.xmin, d.ymin, d.width, d.height];
    v.extend(d.keypoints.iter().flatten());
    v
}

fn roi_from_json(v: &Value) -> Roi {
    let g = |k: &str| v[k].as_f64().expect("roi field") as f32;
    Roi {
        x_center: g("x_center"),
        y_center: g("y_center"),
        width: g("width"),
        height: g("height"),
        rotation: g("rotation"),
    }
}

fn landmark_values(lms: &[Landmark], with_presence: bool) -> Vec<f32> {
    lms.iter()
        .flat_map(|l| {
            let mut v = vec![l.x, l.y, l.z, l.visibility];
            if with_presence {
                v.push(l.presence);
            }
            v
        })
        .collect()
}

#[test]
fn anchors_equal_mediapipe() {
    let t = tensors();
    let want = f32s(&t, "det.anchors");
    let got: Vec<f32> = ssd_anchors().concat();
    assert_eq!(got.len(), 2254 * 4);
    let d = max_abs(&got, want);
    println!("anchors: 2254, max |diff| {d:e}");
    assert!(d <= 1e-7, "anchors differ by {d}");
}

#[test]
fn detector_decoding_and_nms_match_mediapipe() {
    let t = tensors();
    let case = &json("pose_detection.json")["mediapipe_graph_on_photo_case"];
    let anchors = ssd_anchors();
    let dets =
        decode_detections(f32s(&t, "det.boxes"), f32s(&t, "det.scores"), &anchors, 0.5).unwrap();
    let want: Vec<Detection> = case["unfiltered_detections_score_ge_0.5"]
        .as_array()
        .unwrap()
        .iter()
        .map(detection_from_json)
        .collect();
    assert_eq!(dets.len(), want.len(), "detections with score >= 0.5");
    let mut worst = 0f32;
    for (g, w) in dets.iter().zip(&want) {
        worst = worst.max(max_abs(&detection_values(g), &detection_values(w)));
    }
    println!(
        "detections before NMS: {} , max |diff| {worst:e}",
        dets.len()
    );
    assert!(worst <= 1e-5);

    let nms = weighted_nms(&dets);
    let want_nms: Vec<Detection> = case["detections_after_weighted_nms"]
        .as_array()
        .unwrap()
        .iter()
        .map(detection_from_json)
        .collect();
    assert_eq!(nms.len(), want_nms.len());
    let d = max_abs(&detection_values(&nms[0]), &detection_values(&want_nms[0]));
    println!(
        "detections after weighted NMS: {}, max |diff| {d:e}",
        nms.len()
    );
    assert!(d <= 1e-5);

    // Letterbox removal (padding of the 512x600 photo in a 224x224 tensor) and the ROI.
    let pose = json("pose_mpl_grace_hopper.json");
    let mut px = Roi::whole().to_pixels(512, 600);
    let padding = pad_roi(224, 224, &mut px);
    let case_pad = nums(&json("pose_detection.json")["cases"][2]["letterbox_padding_ltrb"]);
    assert!(max_abs(&padding, &case_pad) <= 1e-7);
    let det = remove_detection_letterbox(&nms[0], &padding);
    let want_det = detection_from_json(&pose["pose_detection"]);
    let d = max_abs(&detection_values(&det), &detection_values(&want_det));
    println!("detection on the photo: max |diff| {d:e}");
    assert!(d <= 1e-5);
    let roi = roi_from_detection(&det, 512, 600);
    let want_roi = roi_from_json(&pose["pose_rect_from_detection"]);
    let r = [
        roi.x_center,
        roi.y_center,
        roi.width,
        roi.height,
        roi.rotation,
    ];
    let w = [
        want_roi.x_center,
        want_roi.y_center,
        want_roi.width,
        want_roi.height,
        want_roi.rotation,
    ];
    let d = max_abs(&r, &w);
    println!("ROI from detection: {r:?}, max |diff| {d:e}");
    assert!(d <= 1e-4, "ROI {r:?} vs {w:?}");
    // The same from MediaPipe's own detection, tighter.
    let roi2 = roi_from_detection(&want_det, 512, 600);
    let r2 = [
        roi2.x_center,
        roi2.y_center,
        roi2.width,
        roi2.height,
        roi2.rotation,
    ];
    assert!(max_abs(&r2, &w) <= 1e-6, "{r2:?} vs {w:?}");
}

#[test]
fn landmark_decoding_refinement_and_projection_match_mediapipe() {
    let t = tensors();
    let case = &json("pose_landmark_full.json")["mediapipe_graph_on_photo_case"];
    let raw = decode_raw_landmarks(f32s(&t, "lm.landmarks")).unwrap();
    let want_raw = nums(&case["raw_landmarks_39"]);
    let d_raw = max_abs(&landmark_values(&raw, true), &want_raw);
    let mut refined = raw.clone();
    refine_landmarks_from_heatmap(&mut refined, f32s(&t, "lm.heatmap")).unwrap();
    let want_ref = nums(&case["heatmap_refined_landmarks_39"]);
    let d_ref = max_abs(&landmark_values(&refined, true), &want_ref);
    println!("landmarks (tensor-normalised): raw max |diff| {d_raw:e}, heatmap-refined {d_ref:e}");
    assert!(d_raw <= 1e-5 && d_ref <= 1e-5);
    let moved = raw
        .iter()
        .zip(&refined)
        .filter(|(a, b)| a.x != b.x || a.y != b.y)
        .count();
    assert!(
        moved >= 10,
        "the heatmap refines the confident landmarks ({moved})"
    );

    // The graph on the tensor-sized image: identity ROI.
    let flag = f32s(&t, "lm.flag")[0];
    assert!((flag - case["pose_presence_score"].as_f64().unwrap() as f32).abs() <= 1e-5);
    let raw_out = RawLandmarkOutputs {
        landmarks: f32s(&t, "lm.landmarks"),
        pose_flag: flag,
        segmentation: f32s(&t, "lm.segmentation"),
        heatmap: f32s(&t, "lm.heatmap"),
        world: f32s(&t, "lm.world"),
    };
    let dec = decode_landmark_outputs(&raw_out, &[0.0; 4], &Roi::whole(), 0.5, true)
        .unwrap()
        .unwrap();
    let d33 = max_abs(
        &landmark_values(&dec.landmarks, true),
        &nums(&case["landmarks_33"]),
    );
    let dw = max_abs(
        &landmark_values(&dec.world, true),
        &nums(&case["world_landmarks_33"]),
    );
    println!("identity ROI: landmarks max |diff| {d33:e}, world {dw:e}");
    assert!(d33 <= 1e-5 && dw <= 5e-5);
    let mask = dec.roi_mask.unwrap();
    let dm = max_abs(&mask, f32s(&t, "lm.mediapipe_roi_mask"));
    println!("ROI mask (sigmoid of reference-kernel logits) vs MediaPipe's: max |diff| {dm:e}");
    assert!(
        dm <= 0.005,
        "XNNPACK noise bound from the fixture's cross-check"
    );
    assert!(
        decode_landmark_outputs(&raw_out, &[0.0; 4], &Roi::whole(), flag + 1e-3, true)
            .unwrap()
            .is_none(),
        "a pose flag below the threshold gives no pose"
    );

    // Projection with the pipeline ROI onto the 512x600 photo.
    let pose = json("pose_mpl_grace_hopper.json");
    let roi = roi_from_json(&pose["pose_rect_from_detection"]);
    let mut px = roi.to_pixels(512, 600);
    let padding = pad_roi(256, 256, &mut px);
    let dec = decode_landmark_outputs(&raw_out, &padding, &roi, 0.5, false)
        .unwrap()
        .unwrap();
    let dp = max_abs(
        &landmark_values(&dec.landmarks, true),
        &nums(&pose["pose_landmarks_with_presence"]),
    );
    let dw = max_abs(
        &landmark_values(&dec.world, true),
        &nums(&pose["pose_world_landmarks"]),
    );
    println!("pipeline ROI: landmarks (image-normalised) max |diff| {dp:e}, world {dw:e}");
    assert!(dp <= 2e-5 && dw <= 5e-5);
    let w2 = world_landmarks(f32s(&t, "lm.world"), roi.rotation, &dec.landmarks).unwrap();
    assert_eq!(w2.len(), 33);
}

fn mask_stats(got: &Mask, want: &Mask) -> (f32, f32, usize) {
    assert_eq!((got.width, got.height), (want.width, want.height));
    let mut sum = 0f64;
    let mut max = 0f32;
    let mut over = 0;
    for (a, b) in got.data.iter().zip(&want.data) {
        let d = (a - b).abs();
        sum += d as f64;
        max = max.max(d);
        if d > 1.0 / 255.0 {
            over += 1;
        }
    }
    ((sum / got.data.len() as f64) as f32, max, over)
}

#[test]
fn mask_warp_back_and_selfie_resize_match_mediapipe() {
    let t = tensors();
    let pose = json("pose_mpl_grace_hopper.json");
    let roi = roi_from_json(&pose["pose_rect_from_detection"]);
    let mut px = roi.to_pixels(512, 600);
    pad_roi(256, 256, &mut px);
    let got = warp_roi_mask(f32s(&t, "lm.mediapipe_roi_mask"), &px, 512, 600).unwrap();
    let want = read_mask(fx("mpl_grace_hopper_pose_segmentation.png")).unwrap();
    let (mean, max, over) = mask_stats(&got, &want);
    println!(
        "pose mask warp-back vs MediaPipe (8-bit): mean {mean:e}, max {max:e}, {over} px > 1/255"
    );
    assert!(mean <= 2.0 / 255.0 * 0.5 + 1e-4);
    assert!(max <= 1.0 / 32.0 + 0.5 / 255.0 + 1e-4);
    assert!(over <= 200, "{over} pixels off by more than 1/255");

    for (key, w, h, name) in [
        ("selfie.output", 256, 256, "selfie_general"),
        ("selfie_landscape.output", 256, 144, "selfie_landscape"),
    ] {
        let got = selfie_mask_to_image(f32s(&t, key), w, h, 512, 600).unwrap();
        let want = read_mask(fx(&format!("mpl_grace_hopper_{name}.png"))).unwrap();
        let (mean, max, over) = mask_stats(&got, &want);
        println!("{name} resize vs MediaPipe (8-bit): mean {mean:e}, max {max:e}");
        assert!(max <= 0.5 / 255.0 + 1e-4 && over == 0, "{name}: max {max}");
    }
    assert!(selfie_mask_to_image(&[0.5; 3], 2, 2, 4, 4).is_err());
}

fn u8_diff(got: &[u8], want: &[u8]) -> (u8, usize) {
    assert_eq!(got.len(), want.len());
    let mut max = 0u8;
    let mut n = 0;
    for (a, b) in got.iter().zip(want) {
        let d = a.abs_diff(*b);
        max = max.max(d);
        n += (d > 0) as usize;
    }
    (max, n)
}

#[test]
fn preprocessing_reproduces_model_inputs() {
    let t = tensors();
    let photo = read_image(common::example("person/mpl_grace_hopper.png")).unwrap();
    let img = ImageU8::from_rgb(&photo).unwrap();
    let pose = json("pose_mpl_grace_hopper.json");
    let lm_roi = roi_from_json(&pose["pose_rect_from_detection"]);
    let cases = [
        (
            "detector",
            Roi::whole(),
            224,
            224,
            true,
            BorderMode::Zero,
            "det.input_u8",
        ),
        (
            "landmark",
            lm_roi,
            256,
            256,
            true,
            BorderMode::Replicate,
            "lm.input_u8",
        ),
        (
            "selfie",
            Roi::whole(),
            256,
            256,
            false,
            BorderMode::Zero,
            "selfie.input_u8",
        ),
        (
            "selfie_landscape",
            Roi::whole(),
            256,
            144,
            false,
            BorderMode::Zero,
            "selfie_landscape.input_u8",
        ),
    ];
    for (name, roi, w, h, keep, border, key) in cases {
        let got = image_to_tensor(&img, &roi, w, h, keep, border).unwrap();
        let (max, n) = u8_diff(&got.data, u8s(&t, key));
        println!(
            "{name} input ({w}x{h}): max uint8 diff {max}, {n} of {} values differ",
            got.data.len()
        );
        assert!(
            max <= 1 && n * 1000 <= got.data.len(),
            "{name}: max {max}, {n} differ"
        );
    }
}

#[test]
fn body25_mapping_matches_corpus_keypoints() {
    let mut worst = 0f32;
    for photo in PHOTOS {
        let pose = json(&format!("pose_{photo}.json"));
        let (w, h) = (
            pose["image_size"]["width"].as_u64().unwrap() as usize,
            pose["image_size"]["height"].as_u64().unwrap() as usize,
        );
        let lms: Vec<Landmark> = pose["pose_landmarks_with_presence"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                let v = nums(l);
                Landmark {
                    x: v[0] * w as f32,
                    y: v[1] * h as f32,
                    z: v[2] * w as f32,
                    visibility: v[3],
                    presence: v[4],
                }
            })
            .collect();
        let ours = vton_core::estimate::to_body25(&lms, w, h);
        let theirs = read_keypoints(
            common::example(&format!("person/{photo}_keypoints.json")),
            PersonSelection::Index(0),
        )
        .unwrap();
        for (i, (a, b)) in ours.keypoints.iter().zip(&theirs.keypoints).enumerate() {
            assert_eq!(
                a.present(),
                b.present(),
                "{photo} BODY_25 point {i}: {a:?} vs {b:?}"
            );
            if a.present() {
                let d = (a.x - b.x).hypot(a.y - b.y);
                worst = worst.max(d);
                assert!((a.confidence - b.confidence).abs() <= 0.02, "{photo} {i}");
            }
        }
    }
    // The corpus was made by MediaPipe 0.10.21, the fixtures by 0.10.14.
    println!("BODY_25 vs corpus keypoints: presence identical, max position diff {worst:.2} px");
    assert!(worst <= 5.0);
}

/// The bundled models (the test fails if they cannot be loaded).
fn bundled() -> (PoseEstimator, SelfieSegmenter, SelfieSegmenter) {
    let dev = common::test_device();
    (
        PoseEstimator::bundled(&dev).expect("pose estimator"),
        SelfieSegmenter::bundled(&dev, false).expect("selfie"),
        SelfieSegmenter::bundled(&dev, true).expect("selfie landscape"),
    )
}

fn mean_abs(a: &Mask, b: &Mask) -> f32 {
    let s: f64 = a
        .data
        .iter()
        .zip(&b.data)
        .map(|(x, y)| (x - y).abs() as f64)
        .sum();
    (s / a.data.len().max(1) as f64) as f32
}

#[test]
fn end_to_end_matches_mediapipe_on_corpus_photos() {
    let (est, selfie, landscape) = bundled();
    println!(
        "| photo | size | people | landmark error mean / max (px) | max (% of diagonal) | max visibility diff \
         | pose mask IoU / mean abs | selfie IoU / mean abs | landscape IoU / mean abs |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut all_mean = 0f32;
    for photo in PHOTOS {
        let image = read_image(common::example(&format!("person/{photo}.png"))).unwrap();
        let (w, h) = (image.width, image.height);
        let pose = json(&format!("pose_{photo}.json"));
        let people = est.estimate(&image).unwrap();
        assert!(!people.is_empty(), "{photo}: no person");
        let p = &people[0];
        assert_eq!(p.landmarks.len(), 33);
        assert_eq!(p.world_landmarks.len(), 33);
        let score = nums(&pose["pose_detection"]["score"])[0];
        assert!(
            (p.score - score).abs() <= 2e-3,
            "{photo}: score {} vs {score}",
            p.score
        );
        let want = nums(&pose["pose_landmarks_with_presence"]);
        let diag = ((w * w + h * h) as f32).sqrt();
        let (mut sum, mut max, mut vis) = (0f32, 0f32, 0f32);
        for (i, l) in p.landmarks.iter().enumerate() {
            let d = (l.x - want[5 * i] * w as f32).hypot(l.y - want[5 * i + 1] * h as f32);
            sum += d;
            max = max.max(d);
            vis = vis.max((l.visibility - want[5 * i + 3]).abs());
            vis = vis.max((l.presence - want[5 * i + 4]).abs());
        }
        let mean = sum / 33.0;
        all_mean += mean / PHOTOS.len() as f32;
        let load = |k: &str| read_mask(fx(&format!("{photo}_{k}.png"))).unwrap();
        let pm = p.mask.as_ref().expect("segmentation enabled");
        let (pw, sw, lw) = (
            load("pose_segmentation"),
            load("selfie_general"),
            load("selfie_landscape"),
        );
        let sm = selfie.segment(&image).unwrap();
        let lm = landscape.segment(&image).unwrap();
        let (iou, s_iou, l_iou) = (pm.iou(&pw), sm.iou(&sw), lm.iou(&lw));
        println!(
            "| {photo} | {w}x{h} | {} | {mean:.3} / {max:.3} | {:.4} | {vis:.1e} | {iou:.4} / {:.1e} \
             | {s_iou:.4} / {:.1e} | {l_iou:.4} / {:.1e} |",
            people.len(),
            100.0 * max / diag,
            mean_abs(pm, &pw),
            mean_abs(&sm, &sw),
            mean_abs(&lm, &lw),
        );
        // MediaPipe ran XNNPACK; other correct kernels move landmarks ~0.1 px.
        assert!(max <= 1.0, "{photo}: landmark error {max} px");
        assert!(vis <= 0.01, "{photo}: visibility/presence differ by {vis}");
        assert!(
            iou >= 0.995 && s_iou >= 0.995 && l_iou >= 0.995,
            "{photo}: IoU"
        );
        assert!(mean_abs(pm, &pw) <= 0.005 && mean_abs(&sm, &sw) <= 0.005);
        let one = est.estimate_one(&image, PersonSelection::Largest).unwrap();
        assert_eq!(one.landmarks_array().len(), 33);
        // BODY_25 from our own run against the corpus file (MediaPipe 0.10.21).
        let ours = one.to_body25();
        let theirs = read_keypoints(
            common::example(&format!("person/{photo}_keypoints.json")),
            PersonSelection::Index(0),
        )
        .unwrap();
        for (i, (a, b)) in ours.keypoints.iter().zip(&theirs.keypoints).enumerate() {
            assert_eq!(a.present(), b.present(), "{photo} BODY_25 point {i}");
            if a.present() {
                assert!(
                    (a.x - b.x).hypot(a.y - b.y) <= 5.0,
                    "{photo} BODY_25 point {i}"
                );
            }
        }
        let first = est.estimate_one(&image, PersonSelection::Index(0)).unwrap();
        assert_eq!(first.landmarks, p.landmarks);
    }
    println!("mean landmark error over the photos: {all_mean:.3} px");
    assert!(all_mean <= 0.3, "mean landmark error {all_mean} px");
}

#[test]
fn end_to_end_edge_cases() {
    let (est, selfie, _) = bundled();
    // 1x1 and flat images: no person, typed error from estimate_one, masks sized.
    for (w, h) in [(1, 1), (3, 200), (64, 64)] {
        let img = vton_core::io::RgbImage::filled(w, h, [0.5, 0.5, 0.5]);
        let people = est.estimate(&img).unwrap();
        assert!(people.is_empty(), "{w}x{h}: found {} people", people.len());
        assert!(matches!(
            est.estimate_one(&img, PersonSelection::Largest),
            Err(VtonError::NoPerson { .. })
        ));
        let m = selfie.segment(&img).unwrap();
        assert_eq!((m.width, m.height), (w, h));
    }
    // NaN pixels (the fields are public) are read as 0, as a uint8 conversion would.
    let mut img = vton_core::io::RgbImage::filled(16, 16, [0.2, 0.4, 0.6]);
    img.data[5] = f32::NAN;
    assert!(est.estimate(&img).is_ok() && selfie.segment(&img).is_ok());
    let empty = vton_core::io::RgbImage {
        width: 0,
        height: 0,
        data: vec![],
    };
    assert!(matches!(
        est.estimate(&empty),
        Err(VtonError::InvalidArgument { .. })
    ));
    let image = read_image(common::example("person/skimage_astronaut.png")).unwrap();
    assert!(matches!(
        est.estimate_one(&image, PersonSelection::Index(5)),
        Err(VtonError::NoPerson { .. })
    ));
}

#[test]
fn end_to_end_two_people_side_by_side() {
    let (est, _, _) = bundled();
    // avatar1 on the left, avatar2 at 3/4 size on the right (768x512 canvas).
    let a = read_image(common::example("person/openvto_ai_avatar1_upper.png")).unwrap();
    let b = read_image(common::example("person/openvto_ai_avatar2_upper.png")).unwrap();
    let small = b.resize(b.width * 3 / 4, b.height * 3 / 4);
    let (w, h) = (a.width * 2, a.height);
    let mut canvas = vton_core::io::RgbImage::filled(w, h, [1.0, 1.0, 1.0]);
    for (img, ox, oy) in [(&a, 0, 0), (&small, a.width + a.width / 8, a.height / 4)] {
        for y in 0..img.height {
            for x in 0..img.width {
                let d = ((oy + y) * w + ox + x) * 3;
                canvas.data[d..d + 3].copy_from_slice(&img.get(x, y));
            }
        }
    }
    let people = est.estimate(&canvas).unwrap();
    let noses: Vec<(f32, f32)> = people
        .iter()
        .map(|p| (p.landmarks[0].x, p.landmarks[0].y))
        .collect();
    println!("two people: {} estimates, noses {noses:?}", people.len());
    assert!(people.len() >= 2, "expected both people, got {noses:?}");
    assert!(people.windows(2).all(|p| p[0].score >= p[1].score));
    let big = est.estimate_one(&canvas, PersonSelection::Largest).unwrap();
    assert!(
        big.landmarks[0].x < a.width as f32,
        "largest is the left person"
    );
    let right = people
        .iter()
        .position(|p| p.landmarks[0].x > a.width as f32)
        .expect("right person");
    let r = est
        .estimate_one(&canvas, PersonSelection::Index(right))
        .unwrap();
    assert!(r.bbox_area() < big.bbox_area());
}
