//! CP-VTON+ and HR-VITON on images: agnostic construction, the VITON-HD reader, and the
//! two chains end to end on real photos (random reduced-width weights from the parity
//! fixtures: these tests check the plumbing and invariants, the parity tests the maths).

mod common;
use common::*;
use vton_core::io::vitonhd::{PairMode, VitonHdDataset};
use vton_core::io::{read_image, read_keypoints, read_mask, PersonSelection};
use vton_core::models::cpvton::{GmmConfig, TomConfig};
use vton_core::models::hrviton::{ConditionGeneratorConfig, HRVitonGeneratorConfig, SpadeNoise};
use vton_core::pipelines::cpvton::{CPVTONPipeline, CpvtonOptions, CpvtonPerson};
use vton_core::pipelines::hrviton::{HRVitonOptions, HRVitonPipeline};

fn gan(name: &str) -> std::path::PathBuf {
    fixture(&format!("gan/{name}"))
}

fn cpvton(dev: &burn::tensor::Device) -> CPVTONPipeline {
    CPVTONPipeline::from_checkpoints(
        gan("cpvton_gmm.pth"),
        gan("cpvton_tom.pth"),
        GmmConfig::default(),
        TomConfig {
            ngf: 8,
            ..TomConfig::default()
        },
        CpvtonOptions::default(),
        dev,
    )
    .unwrap()
}

fn hrviton(dev: &burn::tensor::Device, h: usize, w: usize) -> HRVitonPipeline {
    HRVitonPipeline::from_checkpoints(
        gan("hrviton_tocg.pth"),
        gan("hrviton_gen.pth"),
        ConditionGeneratorConfig {
            ngf: 8,
            ..ConditionGeneratorConfig::default()
        },
        HRVitonGeneratorConfig {
            ngf: 2,
            fine_height: h,
            fine_width: w,
            ..HRVitonGeneratorConfig::default()
        },
        HRVitonOptions::default(),
        dev,
    )
    .unwrap()
}

#[test]
fn vitonhd_reader_lists_pairs_and_reads_samples() {
    let ds = VitonHdDataset::open(fixture("vitonhd_tiny"), None).unwrap();
    assert!(ds.data.ends_with("test"));
    let un = ds.pairs(PairMode::Unpaired);
    assert_eq!(un.len(), 2);
    assert_eq!(
        (un[0].person.as_str(), un[0].cloth.as_str()),
        ("00001_00.jpg", "00002_00.jpg")
    );
    assert_eq!(un[0].output_name(), "00001_00_00002_00.png");
    let pa = ds.pairs(PairMode::Paired);
    assert_eq!(pa[0].cloth, "00001_00.jpg");
    let s = ds.hrviton_sample(&un[0]).unwrap();
    assert_eq!((s.cloth.width, s.cloth.height), (384, 512));
    assert_eq!(s.parse_agnostic.num_labels, 20);
    // The parse-agnostic map has no upper clothes or arms.
    assert!(s
        .parse_agnostic
        .labels
        .iter()
        .all(|l| ![5, 14, 15].contains(l)));
    let c = ds.cpvton_sample(&un[1]).unwrap();
    assert!(c.parse.labels.contains(&5));
    assert!(c.pose.get(vton_core::io::Joint::Neck).is_some());
    // Bad layouts are named.
    let e = VitonHdDataset::open(fixture("vitonhd_tiny"), Some("nope.txt")).unwrap_err();
    assert!(e.to_string().contains("nope.txt"), "{e}");
    let e = VitonHdDataset::open(fixture("gan"), None).unwrap_err();
    assert!(e.to_string().contains("test_pairs.txt"), "{e}");
}

#[test]
fn cpvton_agnostic_follows_cp_dataset() {
    let ds = VitonHdDataset::open(fixture("vitonhd_tiny"), None).unwrap();
    let s = ds.cpvton_sample(&ds.pairs(PairMode::Unpaired)[0]).unwrap();
    let p = CpvtonPerson::prepare(&s.person, &s.pose, Some(&s.parse), None, 192, 256).unwrap();
    let dev = test_device();
    let a = values(p.agnostic(&p.gmm_head, 5, &dev));
    let n = 192 * 256;
    assert_eq!(a.len(), 22 * n);
    // Head channels are -1 outside the head region and the photo inside it.
    for px in 0..n {
        let inside = p.gmm_head.data[px] > 0.5;
        let v = a[n + px];
        if !inside {
            assert_eq!(v, -1.0);
        } else {
            assert!((v - (p.image.data[px * 3] * 2.0 - 1.0)).abs() < 1e-6);
        }
    }
    // Each present keypoint is an 11x11 square of 1s (COCO order: channel 4+1 = neck).
    let neck = p.pose.get(vton_core::io::Joint::Neck).unwrap();
    let plane = &a[(4 + 1) * n..(4 + 2) * n];
    assert_eq!(plane.iter().filter(|&&v| v == 1.0).count(), 121);
    assert_eq!(plane[neck.1 as usize * 192 + neck.0 as usize], 1.0);
    // The TOM stage keeps more of the photo (hair, pants).
    assert!(p.tom_head.count() > p.gmm_head.count());
    // Shape channel: in [-1, 1], blurred (values strictly between the extremes exist).
    assert!(a[..n].iter().all(|v| (-1.0..=1.0).contains(v)));
    assert!(a[..n].iter().any(|v| v.abs() < 0.9));
}

#[test]
fn cpvton_try_on_on_a_photo_without_parse() {
    let dev = test_device();
    let pipe = cpvton(&dev);
    let person = read_image(example("person/mpl_grace_hopper.png")).unwrap();
    let mask = read_mask(example("person/mpl_grace_hopper_mask.png")).unwrap();
    let pose = read_keypoints(
        example("person/mpl_grace_hopper_keypoints.json"),
        PersonSelection::Largest,
    )
    .unwrap();
    let cloth = read_image(example("garment/openvto_shirt1_front.png")).unwrap();
    let cmask = read_mask(example("garment/openvto_shirt1_front_mask.png")).unwrap();
    let p = CpvtonPerson::prepare(&person, &pose, None, Some(&mask), 192, 256).unwrap();
    let r = pipe.try_on(&p, &cloth, &cmask, &dev).unwrap();
    assert_eq!((r.image.width, r.image.height), (192, 256));
    // The composite is p_rendered * (1 - m) + warped * m, pixel by pixel.
    for i in (0..192 * 256).step_by(97) {
        let m = r.composition_mask.data[i];
        for c in 0..3 {
            let want = r.rendered.data[i * 3 + c] * (1.0 - m) + r.warped_cloth.data[i * 3 + c] * m;
            assert!((r.image.data[i * 3 + c] - want).abs() < 2e-3, "pixel {i}");
        }
    }
    assert!(r.warped_mask.count() > 0);
    // Mismatched inputs are typed errors.
    let bad = cmask.resize(cmask.width / 2, cmask.height);
    let e = pipe.try_on(&p, &cloth, &bad, &dev).unwrap_err();
    assert!(
        matches!(e, vton_core::VtonError::SizeMismatch { .. }),
        "{e}"
    );
    assert!(CpvtonPerson::prepare(&person, &pose, None, None, 192, 256).is_err());
}

#[test]
fn hrviton_try_on_on_a_dataset_sample() {
    let dev = test_device();
    let pipe = hrviton(&dev, 512, 384);
    let ds = VitonHdDataset::open(fixture("vitonhd_tiny"), None).unwrap();
    let s = ds.hrviton_sample(&ds.pairs(PairMode::Unpaired)[0]).unwrap();
    let a = pipe.try_on(&s, &mut SpadeNoise::Zero, &dev).unwrap();
    assert_eq!((a.image.width, a.image.height), (384, 512));
    assert!(a
        .image
        .data
        .iter()
        .all(|v| v.is_finite() && (0.0..=1.0).contains(v)));
    // Deterministic without noise; these weights have noise_scale 0, so a seed changes nothing.
    let b = pipe.try_on(&s, &mut SpadeNoise::seeded(7), &dev).unwrap();
    assert_eq!(a.image, b.image);
    // The warped cloth is white where the (occlusion-corrected) mask is 0.
    for (i, &m) in a.warped_mask.data.iter().enumerate() {
        if m == 0.0 {
            assert!((a.warped_cloth.data[i * 3] - 1.0).abs() < 1e-5);
        }
    }
}

#[test]
fn cpvton_warp_follows_test_py_for_both_torch_conventions() {
    let dev = test_device();
    let t = read_safetensors(&fixture("cpvton_warp.safetensors"));
    let (atol, rtol) = fixture_tolerance("cpvton_warp.json");
    let mut pipe = cpvton(&dev);
    for (ac, suffix) in [(true, "true"), (false, "false")] {
        pipe.options.align_corners = ac;
        let (c, m) = pipe
            .warp(
                tensor(&t, "input.c", &dev),
                tensor(&t, "input.cm", &dev),
                tensor(&t, "input.grid", &dev),
            )
            .unwrap();
        let key = |w: &str| format!("output.{w}.align_corners_{suffix}");
        assert_close(
            "warped cloth",
            &values(c),
            &t[&key("warped_cloth")].1,
            atol,
            rtol,
        );
        assert_close(
            "warped mask",
            &values(m),
            &t[&key("warped_mask")].1,
            atol,
            rtol,
        );
    }
}

#[test]
fn hrviton_runs_at_the_released_1024x768() {
    let dev = test_device();
    let pipe = hrviton(&dev, 1024, 768);
    let ds = VitonHdDataset::open(fixture("vitonhd_tiny"), None).unwrap();
    let s = ds.hrviton_sample(&ds.pairs(PairMode::Paired)[1]).unwrap();
    let r = pipe.try_on(&s, &mut SpadeNoise::Zero, &dev).unwrap();
    assert_eq!((r.image.width, r.image.height), (768, 1024));
    assert_eq!((r.warped_mask.width, r.warped_mask.height), (768, 1024));
    assert!(r.image.data.iter().all(|v| v.is_finite()));
}
