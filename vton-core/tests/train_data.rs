//! Training data loading (`vton_core::train::data`): the HR-VITON and CP-VTON+ dataset
//! classes on the bundled VITON-HD-layout fixture (tests/fixtures/vitonhd_tiny), a
//! synthetic CP-VTON (VITON-layout) set and a `vton preprocess`-layout set built from it
//! in temporary folders, and the batch loader (seeded shuffling, worker prefetch, bad
//! samples).

mod common;

use std::path::{Path, PathBuf};

use vton_core::io::pose::COCO18_TO_BODY25;
use vton_core::io::{read_image, read_mask, ParseMap};
use vton_core::train::data::{
    collate, epoch_order, BatchLoader, Chw, CpvtonDataset, CpvtonStage, DataLayout, HrVitonDataset,
    Sample,
};
use vton_core::VtonError;

const PEOPLE: [&str; 2] = ["00001_00", "00002_00"];

fn tiny() -> PathBuf {
    common::fixture("vitonhd_tiny")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

/// A copy of the fixture, with `lines` as its pairs file.
fn fixture_copy(lines: usize) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&tiny(), tmp.path());
    let text: String = (0..lines)
        .map(|i| format!("{}.jpg {}.jpg\n", PEOPLE[i % 2], PEOPLE[(i + 1) % 2]))
        .collect();
    std::fs::write(tmp.path().join("test_pairs.txt"), text).unwrap();
    tmp
}

fn assert_set(what: &str, a: &Chw, allowed: &[f32]) {
    for &v in &a.data {
        assert!(allowed.contains(&v), "{what}: value {v} not in {allowed:?}");
    }
    for &v in allowed {
        assert!(a.data.contains(&v), "{what}: no pixel is {v}");
    }
}

fn assert_range(what: &str, a: &Chw, lo: f32, hi: f32) {
    let (mn, mx) = a.min_max();
    assert!(
        mn >= lo && mx <= hi,
        "{what}: [{mn}, {mx}] outside [{lo}, {hi}]"
    );
}

/// A photo-like array: within [-1, 1] and spanning most of it.
fn assert_photo(what: &str, a: &Chw, h: usize, w: usize) {
    assert_eq!(a.shape(), [3, h, w], "{what}");
    let (mn, mx) = a.min_max();
    assert!(mn >= -1.0 && mx <= 1.0, "{what}: [{mn}, {mx}]");
    assert!(mx - mn > 1.0, "{what}: [{mn}, {mx}] spans too little");
}

fn plane(a: &Chw, c: usize) -> &[f32] {
    let n = a.height * a.width;
    &a.data[c * n..(c + 1) * n]
}

/// Checks a one-hot map: every pixel has exactly one channel at 1.
fn assert_one_hot(what: &str, a: &Chw) {
    assert_set(what, a, &[0.0, 1.0]);
    let n = a.height * a.width;
    for p in 0..n {
        let s: f32 = (0..a.channels).map(|c| a.data[c * n + p]).sum();
        assert_eq!(s, 1.0, "{what}: pixel {p} has {s} hot channels");
    }
}

fn grey_value() -> f32 {
    (128.0f32 / 255.0 - 0.5) / 0.5
}

// ---------------------------------------------------------------------------------------
// HR-VITON
// ---------------------------------------------------------------------------------------

#[test]
fn hrviton_fixture_every_key() {
    let (h, w) = (128, 96);
    let ds = HrVitonDataset::open(tiny(), h, w, 13).unwrap();
    assert_eq!(ds.len(), 2);
    let s = ds.get(0).unwrap();
    assert_eq!(s.keys(), HrVitonDataset::ALL_KEYS.to_vec());
    assert_eq!(s.c_name, "00001_00.jpg", "training is paired");
    for k in [
        "cloth",
        "image",
        "densepose",
        "pose",
        "agnostic",
        "parse_cloth",
    ] {
        assert_photo(k, s.get(k).unwrap(), h, w);
    }
    let cm = s.get("cloth_mask").unwrap();
    assert_eq!(cm.shape(), [1, h, w]);
    assert_set("cloth_mask", cm, &[0.0, 1.0]);

    let parse = s.get("parse").unwrap();
    assert_eq!(parse.shape(), [13, h, w]);
    assert_one_hot("parse", parse);
    let onehot = s.get("parse_onehot").unwrap();
    assert_eq!(onehot.shape(), [1, h, w]);
    let n = h * w;
    for p in 0..n {
        let g = onehot.data[p];
        assert_eq!(g, g.round());
        assert_eq!(
            parse.data[g as usize * n + p],
            1.0,
            "parse_onehot vs parse at {p}"
        );
    }
    let pcm = s.get("pcm").unwrap();
    assert_eq!(pcm.shape(), [1, h, w]);
    assert_eq!(&pcm.data[..], plane(parse, 3));
    assert!(
        pcm.data.iter().sum::<f32>() > 0.05 * n as f32,
        "the upper garment is visible"
    );
    let im = s.get("image").unwrap();
    let pc = s.get("parse_cloth").unwrap();
    for c in 0..3 {
        for p in 0..n {
            let want = if pcm.data[p] == 1.0 {
                im.data[c * n + p]
            } else {
                1.0
            };
            assert_eq!(pc.data[c * n + p], want);
        }
    }
    let pa = s.get("parse_agnostic").unwrap();
    assert_eq!(pa.shape(), [13, h, w]);
    assert_one_hot("parse_agnostic", pa);
    assert_eq!(
        plane(pa, 3).iter().sum::<f32>(),
        0.0,
        "no upper garment left"
    );

    // The agnostic image: grey (PIL 'gray' = 128) over the torso, the photo elsewhere.
    let agn = s.get("agnostic").unwrap();
    let grey = grey_value();
    let is_grey = |p: usize| (0..3).all(|c| agn.data[c * n + p] == grey);
    let grey_px: Vec<usize> = (0..n).filter(|&p| is_grey(p)).collect();
    assert!(grey_px.len() > n / 20, "{} grey pixels", grey_px.len());
    let same = (0..n)
        .filter(|&p| (0..3).all(|c| agn.data[c * n + p] == im.data[c * n + p]))
        .count();
    assert!(same > n / 3, "{same} of {n} pixels equal the photo");
    // Most of the upper garment is grey.
    let garment = (0..n).filter(|&p| pcm.data[p] == 1.0).count();
    let garment_grey = (0..n).filter(|&p| pcm.data[p] == 1.0 && is_grey(p)).count();
    eprintln!(
        "garment {garment} grey {garment_grey}, grey {} same {same} of {n}",
        grey_px.len()
    );
    assert!(
        garment_grey as f32 > 0.8 * garment as f32,
        "{garment_grey} of {garment} garment pixels grey"
    );
    // No face pixel is grey (the face is pasted back).
    let face = plane(parse, 2);
    let face_grey = (0..n).filter(|&p| face[p] == 1.0 && is_grey(p)).count();
    assert_eq!(face_grey, 0);
}

#[test]
fn hrviton_size_rules() {
    // 384x512 with Resize(96) gives 96x128: another fine_height is a clear error.
    let ds = HrVitonDataset::open(tiny(), 100, 96, 13).unwrap();
    let e = ds.get(0).unwrap_err().to_string();
    assert!(e.contains("96x128") && e.contains("00001_00"), "{e}");
    // semantic_nc below the 13 groups is refused; above, the extra planes are zero.
    assert!(HrVitonDataset::open(tiny(), 128, 96, 12).is_err());
    let layout = DataLayout::detect(tiny()).unwrap();
    let ds = HrVitonDataset::open_layout(layout, 128, 96, 15, &["parse"]).unwrap();
    let s = ds.get(1).unwrap();
    assert_eq!(s.keys(), vec!["parse"]);
    let p = s.get("parse").unwrap();
    assert_eq!(p.channels, 15);
    assert_eq!(plane(p, 13).iter().chain(plane(p, 14)).sum::<f32>(), 0.0);
    assert!(HrVitonDataset::open_layout(
        DataLayout::detect(tiny()).unwrap(),
        128,
        96,
        13,
        &["nope"]
    )
    .is_err());
}

// ---------------------------------------------------------------------------------------
// A `vton preprocess --layout vitonhd` folder: no DensePose, no rendered poses.
// ---------------------------------------------------------------------------------------

fn preprocess_layout() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let src = tiny().join("test");
    for f in [
        "image",
        "cloth",
        "openpose_json",
        "agnostic-v3.2",
        "image-parse-v3",
        "image-parse-agnostic-v3.2",
    ] {
        copy_dir(&src.join(f), &root.join(f));
    }
    // vton preprocess writes garment masks as PNG content under the .jpg name.
    for p in PEOPLE {
        read_mask(src.join("cloth-mask").join(format!("{p}.jpg")))
            .unwrap()
            .save_png(root.join("cloth-mask").join(format!("{p}.jpg")))
            .unwrap();
    }
    std::fs::write(
        root.join("test_pairs.txt"),
        "00001_00.jpg 00001_00.jpg\n00002_00.jpg 00002_00.jpg\n",
    )
    .unwrap();
    tmp
}

#[test]
fn preprocess_layout_as_input() {
    let tmp = preprocess_layout();
    let layout = DataLayout::detect(tmp.path()).unwrap();
    assert_eq!(layout.data, tmp.path());
    // Everything HR-VITON's condition stage needs but DensePose: the error names it.
    let e = HrVitonDataset::open(tmp.path(), 128, 96, 13).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("image-densepose"), "{msg}");
    let e =
        HrVitonDataset::open_layout(layout.clone(), 128, 96, 13, &HrVitonDataset::CONDITION_KEYS)
            .unwrap_err()
            .to_string();
    assert!(e.contains("image-densepose"), "{e}");
    // What is there loads.
    let keys = [
        "agnostic",
        "cloth",
        "cloth_mask",
        "image",
        "parse",
        "parse_agnostic",
        "parse_cloth",
        "parse_onehot",
        "pcm",
    ];
    let ds = HrVitonDataset::open_layout(layout, 128, 96, 13, &keys).unwrap();
    let s = ds.get(1).unwrap();
    assert_eq!(s.keys(), keys.to_vec());
    assert_set("cloth_mask", s.get("cloth_mask").unwrap(), &[0.0, 1.0]);
    // The same values as from the original folder (the PNG mask is the JPEG's decode).
    let orig = HrVitonDataset::open_layout(DataLayout::detect(tiny()).unwrap(), 128, 96, 13, &keys)
        .unwrap()
        .get(1)
        .unwrap();
    assert_eq!(s.arrays, orig.arrays);
    // CP-VTON+'s GMM reads it too (parse from image-parse-v3, BODY_25 keypoints).
    let cp = CpvtonDataset::open(tmp.path(), CpvtonStage::Gmm, 256, 192, 3.0).unwrap();
    assert_eq!(cp.sources(), ("image-parse-v3", "openpose_json", false));
    assert_eq!(cp.get(0).unwrap().get("agnostic").unwrap().channels, 22);
    // ... but not the TOM stage, which needs the GMM's warped garments.
    let e = CpvtonDataset::open(tmp.path(), CpvtonStage::Tom, 256, 192, 3.0)
        .unwrap_err()
        .to_string();
    assert!(e.contains("warp-cloth"), "{e}");
}

// ---------------------------------------------------------------------------------------
// CP-VTON+ on a synthetic VITON-layout set at the fine size
// ---------------------------------------------------------------------------------------

/// `ROOT/train_pairs.txt` and `ROOT/train/{image, cloth, cloth-mask, image-parse-new,
/// image-mask, pose, warp-cloth, warp-mask}` at `w x h`, made from the fixture: grey
/// label PNGs, COCO-18 keypoints under the old `pose_keypoints` key.
fn viton_layout(w: usize, h: usize) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("train");
    let src = tiny().join("test");
    for f in [
        "image",
        "cloth",
        "cloth-mask",
        "image-parse-new",
        "image-mask",
        "pose",
        "warp-cloth",
        "warp-mask",
    ] {
        std::fs::create_dir_all(d.join(f)).unwrap();
    }
    for p in PEOPLE {
        let img = read_image(src.join("image").join(format!("{p}.jpg"))).unwrap();
        let (sx, sy) = (w as f32 / img.width as f32, h as f32 / img.height as f32);
        img.resize(w, h)
            .save_png(d.join("image").join(format!("{p}.jpg")))
            .unwrap();
        let cloth = read_image(src.join("cloth").join(format!("{p}.jpg")))
            .unwrap()
            .resize(w, h);
        cloth
            .save_png(d.join("cloth").join(format!("{p}.jpg")))
            .unwrap();
        cloth
            .save_png(d.join("warp-cloth").join(format!("{p}.jpg")))
            .unwrap();
        let cm = read_mask(src.join("cloth-mask").join(format!("{p}.jpg")))
            .unwrap()
            .resize(w, h);
        cm.save_png(d.join("cloth-mask").join(format!("{p}.jpg")))
            .unwrap();
        cm.save_png(d.join("warp-mask").join(format!("{p}.jpg")))
            .unwrap();
        let parse = ParseMap::read(src.join("image-parse-v3").join(format!("{p}.png")))
            .unwrap()
            .resize_nearest(w, h);
        image::GrayImage::from_raw(w as u32, h as u32, parse.labels.clone())
            .unwrap()
            .save(d.join("image-parse-new").join(format!("{p}.png")))
            .unwrap();
        // Body mask: the parse's foreground minus the hair, so it differs from parse > 0.
        let body: Vec<u8> = parse
            .labels
            .iter()
            .map(|&l| if l > 0 && l != 2 { 255 } else { 0 })
            .collect();
        image::GrayImage::from_raw(w as u32, h as u32, body)
            .unwrap()
            .save(d.join("image-mask").join(format!("{p}.png")))
            .unwrap();
        let json: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(
                src.join("openpose_json")
                    .join(format!("{p}_keypoints.json")),
            )
            .unwrap(),
        )
        .unwrap();
        let flat: Vec<f64> = json["people"][0]["pose_keypoints_2d"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let mut coco = Vec::new();
        for &b in COCO18_TO_BODY25.iter() {
            let (x, y, c) = (flat[b * 3], flat[b * 3 + 1], flat[b * 3 + 2]);
            coco.extend([x * sx as f64, y * sy as f64, c]);
        }
        let doc = serde_json::json!({"version": 1.0, "people": [{"pose_keypoints": coco}]});
        std::fs::write(
            d.join("pose").join(format!("{p}_keypoints.json")),
            doc.to_string(),
        )
        .unwrap();
    }
    std::fs::write(
        tmp.path().join("train_pairs.txt"),
        "00001_00.jpg 00001_00.jpg\n00002_00.jpg 00002_00.jpg\n00001_00.jpg 00002_00.jpg\n",
    )
    .unwrap();
    tmp
}

fn coco_points(root: &Path, person: &str) -> Vec<(f32, f32)> {
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            root.join("train/pose")
                .join(format!("{person}_keypoints.json")),
        )
        .unwrap(),
    )
    .unwrap();
    json["people"][0]["pose_keypoints"]
        .as_array()
        .unwrap()
        .chunks(3)
        .map(|c| (c[0].as_f64().unwrap() as f32, c[1].as_f64().unwrap() as f32))
        .collect()
}

/// `resized`: the photos were not at the fine size (masks then come out of a bilinear
/// resize, not binary).
fn check_cpvton_sample(
    s: &Sample,
    h: usize,
    w: usize,
    radius: usize,
    pts: &[(f32, f32)],
    resized: bool,
) {
    let n = h * w;
    assert_eq!(
        s.keys(),
        vec![
            "agnostic",
            "cloth",
            "cloth_mask",
            "head",
            "image",
            "parse_cloth",
            "parse_cloth_mask",
            "pose_image",
            "shape",
            "shape_ori"
        ]
    );
    assert_photo("cloth", s.get("cloth").unwrap(), h, w);
    assert_photo("image", s.get("image").unwrap(), h, w);
    let cm = s.get("cloth_mask").unwrap();
    assert_eq!(cm.shape(), [1, h, w]);
    assert_set("cloth_mask", cm, &[0.0, 1.0]);
    let agn = s.get("agnostic").unwrap();
    assert_eq!(agn.shape(), [22, h, w]);
    let shape = s.get("shape").unwrap();
    let head = s.get("head").unwrap();
    assert_eq!(shape.shape(), [1, h, w]);
    assert_eq!(head.shape(), [3, h, w]);
    assert_eq!(plane(agn, 0), &shape.data[..]);
    assert_eq!(&agn.data[n..4 * n], &head.data[..]);
    // The shape is blurred by the /16 round trip: in [-1, 1], with in-between values.
    assert_range("shape", shape, -1.0, 1.0);
    let mid = shape.data.iter().filter(|&&v| v > -0.9 && v < 0.9).count();
    assert!(mid > n / 50, "{mid} blurred shape pixels");
    // shape_ori at the fine size is the mask itself.
    if resized {
        assert_range("shape_ori", s.get("shape_ori").unwrap(), -1.0, 1.0);
    } else {
        assert_set("shape_ori", s.get("shape_ori").unwrap(), &[-1.0, 1.0]);
    }
    // Pose map: one (2r+1)^2 square per joint inside the image, -1 elsewhere.
    let pose_image = s.get("pose_image").unwrap();
    let mut union = vec![-1.0f32; n];
    for (j, &(x, y)) in pts.iter().enumerate() {
        let ch = plane(agn, 4 + j);
        let on = ch.iter().filter(|&&v| v == 1.0).count();
        assert!(ch.iter().all(|&v| v == 1.0 || v == -1.0));
        if x > 1.0 && y > 1.0 {
            let (xi, yi) = (x as usize, y as usize);
            if x >= radius as f32 && y >= radius as f32 && xi + radius < w && yi + radius < h {
                let side = 2 * radius + 1;
                assert_eq!(on, side * side, "joint {j} square");
                assert_eq!(ch[yi * w + xi], 1.0, "joint {j} centre");
            }
        } else {
            assert_eq!(on, 0, "missing joint {j} drawn");
        }
        for p in 0..n {
            union[p] = union[p].max(ch[p]);
        }
    }
    assert_eq!(pose_image.data, union);
    // head / parse_cloth composition.
    let im = s.get("image").unwrap();
    let pcm = s.get("parse_cloth_mask").unwrap();
    assert_set("parse_cloth_mask", pcm, &[0.0, 1.0]);
    let pc = s.get("parse_cloth").unwrap();
    for c in 0..3 {
        for p in 0..n {
            let v = im.data[c * n + p];
            let want = if pcm.data[p] == 1.0 { v } else { 1.0 };
            assert_eq!(pc.data[c * n + p], want);
            assert!(head.data[c * n + p] == -1.0 || head.data[c * n + p] == v);
        }
    }
}

#[test]
fn cpvton_viton_layout_gmm_and_tom() {
    let (h, w) = (128, 96);
    let tmp = viton_layout(w, h);
    let gmm = CpvtonDataset::open(tmp.path(), CpvtonStage::Gmm, h, w, 3.0).unwrap();
    assert_eq!(gmm.len(), 3);
    assert_eq!(gmm.sources(), ("image-parse-new", "pose", true));
    let s = gmm.get(2).unwrap();
    assert_eq!(
        (s.im_name.as_str(), s.c_name.as_str()),
        ("00001_00.jpg", "00002_00.jpg")
    );
    check_cpvton_sample(&s, h, w, 3, &coco_points(tmp.path(), "00001_00"), false);
    // The garment is the pair list's (00002's), the person 00001.
    let own = gmm.get(0).unwrap();
    assert_ne!(s.get("cloth"), own.get("cloth"));
    assert_eq!(s.get("image"), own.get("image"));

    // The body shape comes from image-mask (no hair): hair pixels are -1 in shape_ori.
    let parse = ParseMap::read(tiny().join("test/image-parse-v3/00001_00.png"))
        .unwrap()
        .resize_nearest(w, h);
    let so = own.get("shape_ori").unwrap();
    for (p, &l) in parse.labels.iter().enumerate() {
        assert_eq!(so.data[p], if l > 0 && l != 2 { 1.0 } else { -1.0 });
    }

    let tom = CpvtonDataset::open(tmp.path(), CpvtonStage::Tom, h, w, 3.0).unwrap();
    let t = tom.get(2).unwrap();
    check_cpvton_sample(&t, h, w, 3, &coco_points(tmp.path(), "00001_00"), false);
    // TOM reads warp-cloth/<person>; its head keeps hair and lower body too.
    assert_eq!(t.c_name, "00001_00.jpg");
    assert_eq!(t.get("cloth"), own.get("cloth"));
    let kept = |s: &Sample| {
        s.get("head")
            .unwrap()
            .data
            .iter()
            .filter(|&&v| v != -1.0)
            .count()
    };
    assert!(
        kept(&t) > kept(&own),
        "TOM keeps more than GMM: {} vs {}",
        kept(&t),
        kept(&own)
    );
    // Without image-mask the shape is parse > 0 (CP-VTON's rule): hair is body again.
    std::fs::remove_dir_all(tmp.path().join("train/image-mask")).unwrap();
    let gmm2 = CpvtonDataset::open(tmp.path(), CpvtonStage::Gmm, h, w, 3.0).unwrap();
    let so2 = gmm2.get(0).unwrap();
    let so2 = so2.get("shape_ori").unwrap();
    for (p, &l) in parse.labels.iter().enumerate() {
        assert_eq!(so2.data[p], if l > 0 { 1.0 } else { -1.0 });
    }
}

#[test]
fn cpvton_on_vitonhd_fixture_resizes() {
    // 384x512 photos, BODY_25 keypoints, palette parse maps, fine size 192x256.
    let ds = CpvtonDataset::open(tiny(), CpvtonStage::Gmm, 256, 192, 3.0).unwrap();
    let s = ds.get(0).unwrap();
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(tiny().join("test/openpose_json/00001_00_keypoints.json"))
            .unwrap(),
    )
    .unwrap();
    let flat: Vec<f32> = json["people"][0]["pose_keypoints_2d"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    let pts: Vec<(f32, f32)> = COCO18_TO_BODY25
        .iter()
        .map(|&b| (flat[b * 3] * 0.5, flat[b * 3 + 1] * 0.5))
        .collect();
    check_cpvton_sample(&s, 256, 192, 3, &pts, true);
}

// ---------------------------------------------------------------------------------------
// Batch loader
// ---------------------------------------------------------------------------------------

fn light_dataset(root: &Path) -> HrVitonDataset {
    HrVitonDataset::open_layout(
        DataLayout::detect(root).unwrap(),
        128,
        96,
        13,
        &["cloth", "cloth_mask", "pcm"],
    )
    .unwrap()
}

#[test]
fn shuffling_is_seeded_and_per_epoch() {
    let tmp = fixture_copy(10);
    let ds = light_dataset(tmp.path());
    let order = |seed: u64, drop_last: bool| {
        let mut l = BatchLoader::new(ds.clone(), 4, true, seed, drop_last, 0, false).unwrap();
        (0..9)
            .map(|_| {
                let b = l.next_batch().unwrap();
                (b.epoch, b.index_in_epoch, b.indices)
            })
            .collect::<Vec<_>>()
    };
    let a = order(7, false);
    assert_eq!(a, order(7, false), "same seed, same batches");
    assert_ne!(a, order(8, false), "another seed, another order");
    // 10 samples in batches of 4: 4, 4, 2 per epoch, epochs rolling over.
    let sizes: Vec<(usize, usize, usize)> = a.iter().map(|(e, i, v)| (*e, *i, v.len())).collect();
    assert_eq!(
        sizes,
        vec![
            (0, 0, 4),
            (0, 1, 4),
            (0, 2, 2),
            (1, 0, 4),
            (1, 1, 4),
            (1, 2, 2),
            (2, 0, 4),
            (2, 1, 4),
            (2, 2, 2)
        ]
    );
    let epoch = |e: usize| -> Vec<usize> {
        a.iter()
            .filter(|b| b.0 == e)
            .flat_map(|b| b.2.clone())
            .collect()
    };
    for e in 0..3 {
        assert_eq!(epoch(e), epoch_order(10, true, 7, e));
        let mut s = epoch(e);
        s.sort();
        assert_eq!(s, (0..10).collect::<Vec<_>>(), "epoch {e} is a permutation");
    }
    assert_ne!(epoch(0), epoch(1), "each epoch is reshuffled");
    // drop_last: the short batch goes, two batches per epoch.
    let d = order(7, true);
    assert!(d.iter().all(|b| b.2.len() == 4));
    assert_eq!(d[2].0, 1);
    assert_eq!(d[0].2, a[0].2);
    // No shuffle: the list order.
    let mut l = BatchLoader::new(ds, 3, false, 0, false, 0, false).unwrap();
    assert_eq!(l.next_batch().unwrap().indices, vec![0, 1, 2]);
    assert_eq!(l.batches_per_epoch(), 4);
}

#[test]
fn workers_give_the_same_batches() {
    let tmp = fixture_copy(7);
    let ds = light_dataset(tmp.path());
    let run = |workers: usize| {
        let mut l = BatchLoader::new(ds.clone(), 3, true, 11, false, workers, false).unwrap();
        (0..7).map(|_| l.next_batch().unwrap()).collect::<Vec<_>>()
    };
    let base = run(0);
    for workers in [1, 3, 5] {
        let got = run(workers);
        for (i, (a, b)) in base.iter().zip(&got).enumerate() {
            assert_eq!(a.indices, b.indices, "workers {workers} batch {i}");
            assert_eq!(a.epoch, b.epoch);
            assert_eq!(a.arrays, b.arrays, "workers {workers} batch {i} arrays");
        }
    }
    // The collated arrays are the samples stacked.
    let b = &base[0];
    let s0 = ds.get(b.indices[0]).unwrap();
    let s1 = ds.get(b.indices[1]).unwrap();
    let cloth = &b.arrays["cloth"];
    assert_eq!(cloth.shape, [3, 3, 128, 96]);
    let per = 3 * 128 * 96;
    assert_eq!(&cloth.data[..per], &s0.get("cloth").unwrap().data[..]);
    assert_eq!(
        &cloth.data[per..2 * per],
        &s1.get("cloth").unwrap().data[..]
    );
    let device = common::test_device();
    let t = collate(&[s0, s1], &device).unwrap();
    assert_eq!(t["pcm"].dims(), [2, 1, 128, 96]);
    assert_eq!(b.to_tensors(&device)["cloth_mask"].dims(), [3, 1, 128, 96]);
}

#[test]
fn corrupt_sample_errors_or_is_skipped() {
    let tmp = fixture_copy(4);
    // Truncate a label PNG and a cloth JPEG of person 00002 (pairs 1 and 3).
    let png = tmp.path().join("test/image-parse-v3/00002_00.png");
    let bytes = std::fs::read(&png).unwrap();
    std::fs::write(&png, &bytes[..bytes.len() / 3]).unwrap();
    let layout = DataLayout::detect(tmp.path()).unwrap();
    let ds = HrVitonDataset::open_layout(layout, 128, 96, 13, &["image", "pcm"]).unwrap();
    let e = ds.get(1).unwrap_err();
    assert!(matches!(e, VtonError::Image { .. }), "{e:?}");
    assert!(e.to_string().contains("00002_00.png"), "{e}");

    for workers in [0, 2] {
        // Without skip_bad: the bad sample is an error naming the file, and loading
        // continues after it.
        let mut l = BatchLoader::new(ds.clone(), 1, false, 0, false, workers, false).unwrap();
        let mut got = Vec::new();
        for _ in 0..5 {
            match l.next_batch() {
                Ok(b) => got.push(Ok(b.indices[0])),
                Err(e) => {
                    let e = e.to_string();
                    assert!(
                        e.contains("image-parse-v3") && e.contains("00002_00.png"),
                        "{e}"
                    );
                    got.push(Err(()))
                }
            }
        }
        assert_eq!(got, vec![Ok(0), Err(()), Ok(2), Err(()), Ok(0)]);
        assert!(l.bad_samples().is_empty());

        // With skip_bad: bad samples are left out, batches filled from the next ones.
        let mut l = BatchLoader::new(ds.clone(), 2, false, 0, false, workers, true).unwrap();
        let got: Vec<(usize, Vec<usize>)> = (0..3)
            .map(|_| {
                let b = l.next_batch().unwrap();
                (b.epoch, b.indices)
            })
            .collect();
        assert_eq!(got, vec![(0, vec![0, 2]), (1, vec![0, 2]), (2, vec![0, 2])]);
        let bad = l.bad_samples();
        assert_eq!(bad.len(), 2, "{bad:?}");
        assert_eq!(bad[0].0, 1);
        assert_eq!(bad[1].0, 3);
        assert_eq!(bad[0].1, png);
        assert!(bad[0].2.contains("00002_00.png"));
    }
    // More samples per batch than good ones per epoch, with drop_last (batches never
    // span epochs): never full, a clear error rather than an endless loop.
    let mut l = BatchLoader::new(ds.clone(), 3, false, 0, true, 0, true).unwrap();
    let e = l.next_batch().unwrap_err().to_string();
    assert!(e.contains("too few good samples"), "{e}");
    // Every sample bad: an error, not an endless loop.
    for p in PEOPLE {
        std::fs::write(
            tmp.path().join(format!("test/image/{p}.jpg")),
            b"not a jpeg",
        )
        .unwrap();
    }
    let mut l = BatchLoader::new(ds, 2, true, 0, false, 2, true).unwrap();
    let e = l.next_batch().unwrap_err().to_string();
    assert!(e.contains("every one of its 4 samples failed"), "{e}");
}

#[test]
fn missing_files_and_folders_are_named() {
    let tmp = fixture_copy(2);
    std::fs::remove_file(tmp.path().join("test/cloth/00002_00.jpg")).unwrap();
    let ds = light_dataset(tmp.path());
    let e = ds.get(1).unwrap_err();
    assert!(matches!(e, VtonError::FileNotFound { .. }), "{e:?}");
    assert!(e.to_string().contains("cloth/00002_00.jpg"), "{e}");
    std::fs::remove_dir_all(tmp.path().join("test/openpose_img")).unwrap();
    let e = HrVitonDataset::open(tmp.path(), 128, 96, 13)
        .unwrap_err()
        .to_string();
    assert!(e.contains("openpose_img"), "{e}");
    let e = CpvtonDataset::open(tmp.path().join("nowhere"), CpvtonStage::Gmm, 256, 192, 3.0)
        .unwrap_err()
        .to_string();
    assert!(e.contains("nowhere"), "{e}");
}

/// Against the original `cp_dataset.py` (run outside the test suite): with
/// `VTON_HRVITON_DATASET_CHECK=DIR`, DIR holds `data/` (a VITON-HD train layout at
/// 768x1024, lossless images) and `meta.json` + `out_<i>_<key>.f32` written by HR-VITON's
/// `CPDataset` at 256x192. Prints, per key, the largest difference and the share of
/// differing values; asserts every key but `agnostic` equal (PIL's shapes are drawn by
/// vton's rasteriser, which differs at edges).
#[test]
#[ignore = "needs VTON_HRVITON_DATASET_CHECK, a folder written by the original dataset class"]
fn hrviton_equals_original_dataset() {
    let Ok(dir) = std::env::var("VTON_HRVITON_DATASET_CHECK") else {
        return;
    };
    let dir = PathBuf::from(dir);
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("meta.json")).unwrap()).unwrap();
    let ds = HrVitonDataset::open(dir.join("data"), 256, 192, 13).unwrap();
    for i in 0..ds.len() {
        let s = ds.get(i).unwrap();
        for key in HrVitonDataset::ALL_KEYS {
            let shape: Vec<usize> = meta[format!("{i}_{key}")]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as usize)
                .collect();
            let bytes = std::fs::read(dir.join(format!("out_{i}_{key}.f32"))).unwrap();
            let want: Vec<f32> = bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            let got = s.get(key).unwrap();
            assert_eq!(got.shape().to_vec(), shape, "{key}");
            let diff: Vec<f32> = got
                .data
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .collect();
            let max = diff.iter().cloned().fold(0.0, f32::max);
            let differing = diff.iter().filter(|&&d| d > 0.0).count();
            eprintln!(
                "sample {i} {key:>15}: max |diff| {max:.4}, {differing} of {} values differ",
                diff.len()
            );
            if key != "agnostic" {
                assert_eq!(differing, 0, "sample {i} {key}");
            }
        }
    }
}

/// Against CP-VTON+'s `CPDataset` (GMM, 256x192, radius 3), run outside the test suite:
/// with `VTON_CPVTON_DATASET_CHECK=DIR`, DIR holds `data/` (a VITON train layout at the
/// fine size, lossless images, grey label PNGs, `image-mask/`, COCO-18 `pose/`) and
/// `meta.json` + `out_<i>_<key>.f32` from the original class (its 1-channel
/// `Normalize` as old torchvision's per-channel zip). Asserts every key bitwise equal.
#[test]
#[ignore = "needs VTON_CPVTON_DATASET_CHECK, a folder written by the original dataset class"]
fn cpvton_equals_original_dataset() {
    let Ok(dir) = std::env::var("VTON_CPVTON_DATASET_CHECK") else {
        return;
    };
    let dir = PathBuf::from(dir);
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("meta.json")).unwrap()).unwrap();
    let ds = CpvtonDataset::open(dir.join("data"), CpvtonStage::Gmm, 256, 192, 3.0).unwrap();
    for i in 0..ds.len() {
        let s = ds.get(i).unwrap();
        for key in s.keys() {
            let shape: Vec<usize> = meta[format!("{i}_{key}")]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as usize)
                .collect();
            let bytes = std::fs::read(dir.join(format!("out_{i}_{key}.f32"))).unwrap();
            let want: Vec<f32> = bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            let got = s.get(key).unwrap();
            assert_eq!(got.shape().to_vec(), shape, "{key}");
            let differing = got.data.iter().zip(&want).filter(|(a, b)| a != b).count();
            eprintln!(
                "sample {i} {key:>16}: {differing} of {} values differ",
                want.len()
            );
            assert_eq!(differing, 0, "sample {i} {key}");
        }
    }
}
