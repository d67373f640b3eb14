//! The weight-free try-on on every person x garment pair of the bundled corpus.

mod common;
use common::*;
use vton_core::io::{Joint, Mask};
use vton_core::pipelines::geometric::{evaluate_quality, GeometricTryOn, TryOnInputs};
use vton_core::VtonError;

const PEOPLE: [&str; 6] = [
    "mpl_grace_hopper",
    "openvto_ai3_selfie",
    "openvto_ai_avatar1_upper",
    "openvto_ai_avatar2_upper",
    "openvto_real1_selfie",
    "skimage_astronaut",
];
const GARMENTS: [&str; 6] = ["jacket1", "jacket2", "shirt1", "shirt2", "shirt3", "shirt4"];

fn inputs(person: &str, garment: &str, with_garment_mask: bool) -> TryOnInputs {
    TryOnInputs::from_paths(
        example(&format!("person/{person}.png")),
        example(&format!("person/{person}_keypoints.json")),
        Some(example(&format!("person/{person}_mask.png"))),
        None::<&str>,
        example(&format!("garment/openvto_{garment}_front.png")),
        with_garment_mask.then(|| example(&format!("garment/openvto_{garment}_front_mask.png"))),
    )
    .unwrap()
}

#[test]
fn quality_on_every_corpus_pair() {
    let dev = test_device();
    let pipe = GeometricTryOn::default();
    let (mut shares, mut errs) = (Vec::new(), Vec::new());
    println!("| person | garment | torso share | shoulder error px | rel |");
    for p in PEOPLE {
        for g in GARMENTS {
            let inp = inputs(p, g, true);
            let out = pipe.run(&inp, &dev).unwrap();
            assert_eq!(
                (out.image.width, out.image.height),
                (inp.person.width, inp.person.height)
            );
            let q = evaluate_quality(&out, &inp.pose, inp.person_mask.as_ref().unwrap()).unwrap();
            println!(
                "| {p} | {g} | {:.3} | {:.1} | {:.3} |",
                q.torso_share, q.shoulder_error_px, q.shoulder_error_rel
            );
            // Per-pair floors (measured minimum minus a margin, docs/quality.md).
            assert!(
                q.torso_share > 0.4,
                "{p} x {g}: torso share {:.3}",
                q.torso_share
            );
            assert!(
                q.shoulder_error_rel < 0.85,
                "{p} x {g}: shoulder error {:.3}",
                q.shoulder_error_rel
            );
            // The head stays as it was.
            let (nx, ny) = inp.pose.get(Joint::Nose).unwrap();
            let i = (ny as usize * inp.person.width + nx as usize) * 3;
            assert_eq!(
                &out.image.data[i..i + 3],
                &inp.person.data[i..i + 3],
                "{p} x {g}: nose pixel changed"
            );
            shares.push(q.torso_share);
            errs.push(q.shoulder_error_rel);
        }
    }
    let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
    println!(
        "mean torso share {:.3}, mean shoulder error {:.3} shoulder widths",
        mean(&shares),
        mean(&errs)
    );
    assert!(mean(&shares) > 0.8);
    assert!(mean(&errs) < 0.3);
}

#[test]
fn estimated_garment_mask_path_runs() {
    let out = GeometricTryOn::default()
        .run(
            &inputs("openvto_ai_avatar1_upper", "shirt3", false),
            &test_device(),
        )
        .unwrap();
    assert!(out.warped_mask.count() > 1000);
    assert!(out.garment_mask.count() > 10000);
}

#[test]
fn bad_inputs_are_typed_errors() {
    let dev = test_device();
    let pipe = GeometricTryOn::default();
    let mut inp = inputs("skimage_astronaut", "shirt1", true);
    inp.pose.keypoints[Joint::RShoulder as usize].confidence = 0.0;
    match pipe.run(&inp, &dev) {
        Err(VtonError::MissingKeypoints { missing, .. }) => assert!(missing.contains("RShoulder")),
        other => panic!("{other:?}"),
    }
    let mut inp = inputs("skimage_astronaut", "shirt1", true);
    inp.garment_mask = Some(Mask::zeros(512, 512));
    assert!(matches!(
        pipe.run(&inp, &dev),
        Err(VtonError::EmptyMask { .. })
    ));
    let mut inp = inputs("skimage_astronaut", "shirt1", true);
    inp.person_mask = Some(Mask::zeros(100, 100));
    assert!(matches!(
        pipe.run(&inp, &dev),
        Err(VtonError::SizeMismatch { .. })
    ));
    let mut inp = inputs("skimage_astronaut", "shirt1", true);
    inp.person_mask = None;
    assert!(matches!(
        pipe.run(&inp, &dev),
        Err(VtonError::InvalidArgument { .. })
    ));
    let mut inp = inputs("skimage_astronaut", "shirt1", true);
    inp.person_mask = Some(Mask::zeros(512, 512));
    assert!(matches!(
        pipe.run(&inp, &dev),
        Err(VtonError::EmptyMask { .. })
    ));
}
