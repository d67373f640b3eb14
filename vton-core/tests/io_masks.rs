//! Image, pose and parse-map I/O; agnostic and garment masks.

mod common;
use common::*;
use vton_core::io::{
    pose::parse_people, pose::select_person, read_image, read_keypoints, read_mask, Joint, Mask,
    ParseMap, PersonSelection, Pose, RgbImage, ValueRange,
};
use vton_core::masks::{
    agnostic_from_keypoints, agnostic_from_parse, estimate_garment_mask, GarmentCategory,
    GarmentMaskOptions,
};
use vton_core::VtonError;

const GARMENTS: [&str; 6] = ["jacket1", "jacket2", "shirt1", "shirt2", "shirt3", "shirt4"];

#[test]
fn image_tensor_round_trip_and_ranges() {
    let img = read_image(example("person/skimage_astronaut.png")).unwrap();
    assert_eq!((img.width, img.height), (512, 512));
    let dev = test_device();
    let t = img.to_tensor(&dev, ValueRange::MinusOneOne);
    assert_eq!(t.dims(), [1, 3, 512, 512]);
    let v = vton_core::io::image::tensor_to_vec(t.clone()).unwrap();
    assert!(v.iter().all(|x| (-1.0..=1.0).contains(x)));
    // NCHW: first plane is red; pixel (0,0) red value maps to 2r-1.
    assert!((v[0] - (img.data[0] * 2.0 - 1.0)).abs() < 1e-6);
    assert!((v[512 * 512] - (img.data[1] * 2.0 - 1.0)).abs() < 1e-6);
    let back = RgbImage::from_tensor(t, ValueRange::MinusOneOne).unwrap();
    assert!(back
        .data
        .iter()
        .zip(&img.data)
        .all(|(a, b)| (a - b).abs() < 1e-6));
    let dir = std::env::temp_dir().join(format!("vton-io-{}", std::process::id()));
    let p = dir.join("a.png");
    img.save_png(&p).unwrap();
    assert_eq!(read_image(&p).unwrap().to_rgb8(), img.to_rgb8());
    let jpg = dir.join("a.jpg");
    image::save_buffer(
        &jpg,
        &img.to_rgb8(),
        512,
        512,
        image::ExtendedColorType::Rgb8,
    )
    .unwrap();
    let j = read_image(&jpg).unwrap();
    let mae: f32 = j
        .data
        .iter()
        .zip(&img.data)
        .map(|(a, b)| (a - b).abs())
        .sum::<f32>()
        / j.data.len() as f32;
    assert!(mae < 0.02, "JPEG round trip mean error {mae}");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn image_errors_are_typed() {
    assert!(matches!(
        read_image("/nonexistent/x.png"),
        Err(VtonError::FileNotFound { .. })
    ));
    assert!(matches!(
        read_image(fixture("cpvton_tps.json")),
        Err(VtonError::Image { .. })
    ));
    assert!(matches!(
        RgbImage::from_rgb8(4, 4, &[0; 47]),
        Err(VtonError::SizeMismatch { .. })
    ));
    assert!(Mask::from_f32(2, 1, vec![0.0, f32::NAN]).is_err());
}

#[test]
fn openpose_body25_coco18_and_multiple_people() {
    let pose = read_keypoints(
        example("person/skimage_astronaut_keypoints.json"),
        PersonSelection::Largest,
    )
    .unwrap();
    assert_eq!(pose.keypoints.len(), 25);
    let (x, y) = pose.get(Joint::RShoulder).unwrap();
    assert!((x - 112.66).abs() < 1e-3 && (y - 239.95).abs() < 1e-3);
    assert!(
        pose.get(Joint::LWrist).is_none(),
        "confidence-0 points are missing"
    );
    assert!(pose.get(Joint::RWrist).is_some());
    // COCO-18: RHip is index 8 there, 9 in BODY_25; MidHip is synthesised.
    let mut coco = vec![0f32; 54];
    for (i, (x, y)) in [
        (1, (50.0, 20.0)),
        (2, (40.0, 20.0)),
        (5, (60.0, 20.0)),
        (8, (44.0, 60.0)),
        (11, (56.0, 60.0)),
    ] {
        coco[i * 3] = x;
        coco[i * 3 + 1] = y;
        coco[i * 3 + 2] = 0.9;
    }
    let p = Pose::from_flat(&coco).unwrap();
    assert_eq!(p.get(Joint::RHip), Some((44.0, 60.0)));
    assert_eq!(p.get(Joint::LHip), Some((56.0, 60.0)));
    assert_eq!(p.get(Joint::MidHip), Some((50.0, 60.0)));
    assert!(Pose::from_flat(&[0.0; 30]).is_err());
    // Two people: the larger one is chosen by default, an index picks explicitly.
    let small: Vec<String> = (0..25)
        .map(|i| format!("{},{},0.9", 10 + i % 3, 10 + i % 2))
        .collect();
    let big: Vec<String> = (0..25)
        .map(|i| format!("{},{},0.9", 100 + 10 * (i % 5), 100 + 20 * (i % 4)))
        .collect();
    let doc = format!(
        r#"{{"people":[{{"pose_keypoints_2d":[{}]}},{{"pose_keypoints_2d":[{}]}}]}}"#,
        small.join(","),
        big.join(",")
    );
    let people = parse_people(&doc, "doc").unwrap();
    let chosen = select_person(people.clone(), PersonSelection::Largest, "doc").unwrap();
    assert_eq!(chosen.keypoints[0].x, 100.0);
    assert_eq!(
        select_person(people.clone(), PersonSelection::Index(0), "doc")
            .unwrap()
            .keypoints[0]
            .x,
        10.0
    );
    assert!(matches!(
        select_person(people, PersonSelection::Index(5), "doc"),
        Err(VtonError::NoPerson { available: 2, .. })
    ));
    assert!(matches!(
        parse_people("{\"people\": 3}", "doc"),
        Err(VtonError::Json { .. })
    ));
    assert!(matches!(
        select_person(vec![], PersonSelection::Largest, "doc"),
        Err(VtonError::NoPerson { .. })
    ));
}

fn write_palette_png(path: &std::path::Path, w: u32, h: u32, labels: &[u8]) {
    let f = std::fs::File::create(path).unwrap();
    let mut enc = png::Encoder::new(std::io::BufWriter::new(f), w, h);
    enc.set_color(png::ColorType::Indexed);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_palette(
        (0..256u32)
            .flat_map(|i| {
                [
                    (i * 37 % 256) as u8,
                    (i * 91 % 256) as u8,
                    (i * 13 % 256) as u8,
                ]
            })
            .collect::<Vec<u8>>(),
    );
    let mut wr = enc.write_header().unwrap();
    wr.write_image_data(labels).unwrap();
}

fn synthetic_parse(w: usize, h: usize, pose: &Pose) -> Vec<u8> {
    // Face disc around the nose, upper clothes box around the torso, pants below the hips.
    let (nx, ny) = pose.get(Joint::Nose).unwrap();
    let (hx, hy) = pose.get(Joint::MidHip).unwrap();
    (0..w * h)
        .map(|i| {
            let (x, y) = ((i % w) as f32, (i / w) as f32);
            if (x - nx).powi(2) + (y - ny).powi(2) < 400.0 {
                13
            } else if y > hy {
                9
            } else if (x - hx).abs() < 60.0 && y > ny + 30.0 {
                5
            } else {
                0
            }
        })
        .collect()
}

#[test]
fn parse_map_palette_png_and_hrviton_groups() {
    let pose = read_keypoints(
        example("person/openvto_ai_avatar1_upper_keypoints.json"),
        PersonSelection::Largest,
    )
    .unwrap();
    let (w, h) = (384, 512);
    let labels = synthetic_parse(w, h, &pose);
    let dir = std::env::temp_dir().join(format!("vton-parse-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("parse.png");
    write_palette_png(&p, w as u32, h as u32, &labels);
    let parse = ParseMap::read(&p).unwrap();
    assert_eq!(parse.labels, labels, "palette indices are the labels");
    let g = parse.to_hrviton13().unwrap();
    let at = |i: usize| (parse.labels[i], g.labels[i]);
    for i in (0..w * h).step_by(997) {
        let (l, gl) = at(i);
        let expect = match l {
            0 => 0,
            13 => 2,
            5 => 3,
            9 => 4,
            _ => unreachable!(),
        };
        assert_eq!(gl, expect);
    }
    assert_eq!(g.one_hot().len(), 13 * w * h);
    // Grey PNG with an out-of-scheme label is rejected.
    let bad = dir.join("bad.png");
    image::save_buffer(&bad, &vec![25u8; 16], 4, 4, image::ExtendedColorType::L8).unwrap();
    assert!(matches!(ParseMap::read(&bad), Err(VtonError::Image { .. })));

    // VITON-HD agnostic: face and pants kept, torso masked.
    let m = agnostic_from_parse(&parse, &pose, GarmentCategory::UpperBody).unwrap();
    let (nx, ny) = pose.get(Joint::Nose).unwrap();
    let (hx, hy) = pose.get(Joint::MidHip).unwrap();
    let (sx, sy) = pose.get(Joint::Neck).unwrap();
    assert!(!m.on(nx as usize, ny as usize), "face is kept");
    assert!(!m.on(hx as usize, hy as usize + 20), "pants are kept");
    assert!(
        m.on(hx as usize, ((sy + hy) / 2.0) as usize),
        "torso is masked"
    );
    assert!(m.on(sx as usize, sy as usize), "neck base is masked");
    assert!(matches!(
        agnostic_from_parse(&parse, &pose, GarmentCategory::Dress),
        Err(VtonError::Unsupported { .. })
    ));
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn keypoint_agnostic_covers_torso_keeps_head() {
    for name in [
        "openvto_ai_avatar1_upper",
        "skimage_astronaut",
        "mpl_grace_hopper",
        "openvto_real1_selfie",
    ] {
        let pose = read_keypoints(
            example(&format!("person/{name}_keypoints.json")),
            PersonSelection::Largest,
        )
        .unwrap();
        let pm = read_mask(example(&format!("person/{name}_mask.png"))).unwrap();
        let m = agnostic_from_keypoints(&pose, &pm, GarmentCategory::UpperBody).unwrap();
        let (nx, ny) = pose.get(Joint::Nose).unwrap();
        assert!(!m.on(nx as usize, ny as usize), "{name}: nose not masked");
        let (rx, ry) = pose.get(Joint::RShoulder).unwrap();
        let (lx, ly) = pose.get(Joint::LShoulder).unwrap();
        let c = (
            ((rx + lx) / 2.0) as usize,
            ((ry + ly) / 2.0 + 0.4 * (lx - rx)).min(pm.height as f32 - 1.0) as usize,
        );
        assert!(m.on(c.0, c.1), "{name}: chest masked");
        assert!(
            m.minus(&pm.binarized()).count() == 0,
            "{name}: inside the person mask"
        );
    }
    let pose = read_keypoints(
        example("person/skimage_astronaut_keypoints.json"),
        PersonSelection::Largest,
    )
    .unwrap();
    let empty = Mask::zeros(512, 512);
    assert!(matches!(
        agnostic_from_keypoints(&pose, &empty, GarmentCategory::UpperBody),
        Err(VtonError::EmptyMask { .. })
    ));
    let mut no_shoulder = pose.clone();
    no_shoulder.keypoints[Joint::LShoulder as usize].confidence = 0.0;
    let pm = read_mask(example("person/skimage_astronaut_mask.png")).unwrap();
    match agnostic_from_keypoints(&no_shoulder, &pm, GarmentCategory::UpperBody) {
        Err(VtonError::MissingKeypoints { missing, .. }) => assert!(missing.contains("LShoulder")),
        other => panic!("expected MissingKeypoints, got {other:?}"),
    }
    assert!(matches!(
        agnostic_from_keypoints(&pose, &pm, GarmentCategory::LowerBody),
        Err(VtonError::Unsupported { .. })
    ));
}

#[test]
fn garment_mask_estimation_iou_on_corpus() {
    // Bounds from the measured figures (docs/quality.md) minus a margin of ~0.03.
    let mut report = Vec::new();
    for n in GARMENTS {
        let img = read_image(example(&format!("garment/openvto_{n}_front.png"))).unwrap();
        let gt = read_mask(example(&format!("garment/openvto_{n}_front_mask.png"))).unwrap();
        let m = estimate_garment_mask(&img, &GarmentMaskOptions::default()).unwrap();
        let iou = m.iou(&gt);
        report.push(format!("{n}: IoU {iou:.3}"));
        assert!(iou > 0.83, "{n}: IoU {iou:.3}");
    }
    println!("garment mask IoU vs given masks: {}", report.join(", "));
    let flat = RgbImage::filled(64, 64, [0.9, 0.9, 0.9]);
    assert!(matches!(
        estimate_garment_mask(&flat, &GarmentMaskOptions::default()),
        Err(VtonError::EmptyMask { .. })
    ));
}

#[test]
fn devices_by_name() {
    assert!(vton_core::device_from_name("cpu").is_ok());
    assert!(vton_core::device_from_name("FLEX").is_ok());
    assert!(matches!(
        vton_core::device_from_name("tpu"),
        Err(VtonError::InvalidArgument { .. })
    ));
    assert!(matches!(
        vton_core::device_from_name("cuda:x"),
        Err(VtonError::InvalidArgument { .. })
    ));
    #[cfg(not(feature = "cuda"))]
    match vton_core::device_from_name("cuda:0") {
        Err(VtonError::Unsupported { what }) => assert!(what.contains("feature `cuda`"), "{what}"),
        other => panic!("expected Unsupported, got {other:?}"),
    }
}

#[test]
fn fit_padded_keeps_aspect_and_centres() {
    let img = vton_core::io::RgbImage::filled(40, 20, [1.0, 0.0, 0.0]);
    let out = img.fit_padded(30, 30, [1.0, 1.0, 1.0]);
    assert_eq!((out.width, out.height), (30, 30));
    // 40x20 scaled by 0.75 -> 30x15, rows 7..22 red, the rest white.
    assert_eq!(out.get(15, 3), [1.0, 1.0, 1.0]);
    assert_eq!(out.get(15, 15), [1.0, 0.0, 0.0]);
    assert_eq!(out.get(15, 27), [1.0, 1.0, 1.0]);
}

#[test]
fn pil_bilinear_resize_matches_pillow() {
    // Expected values from Pillow 13: Image.fromarray(a, "F").resize(size, Image.BILINEAR)
    // (the filter CP-VTON+'s dataset uses for the body shape: shrink 16x, grow back).
    use vton_core::io::Mask;
    let data: Vec<f32> = (0..16)
        .flat_map(|y| (0..12).map(move |x| ((x * 7 + y * 13) % 17) as f32 / 16.0))
        .collect();
    let m = Mask {
        width: 12,
        height: 16,
        data,
    };
    let down = m.resize_pil_bilinear(3, 4);
    let want = [
        0.505341, 0.481585, 0.483578, 0.487165, 0.5, 0.512835, 0.504604, 0.51062, 0.499442,
        0.522003, 0.491978, 0.475845,
    ];
    for (g, w) in down.data.iter().zip(want) {
        assert!((g - w).abs() < 2e-6, "down: {g} vs {w}");
    }
    let up = down.resize_pil_bilinear(12, 16);
    let row5 = [
        0.489437, 0.489437, 0.49047, 0.492535, 0.4946, 0.496665, 0.499133, 0.502003, 0.504873,
        0.507743, 0.509178, 0.509178,
    ];
    for (g, w) in up.data[5 * 12..6 * 12].iter().zip(row5) {
        assert!((g - w).abs() < 2e-6, "up: {g} vs {w}");
    }
}
