//! DCI-VITON's composed pipeline (`pipelines::dci_viton`) on the tiny VITON-HD sample
//! (`tests/fixtures/vitonhd_tiny`, 384x512: photo, LIP parse, BODY_25 keypoints,
//! DensePose, cloth and cloth mask) with the random-weight fixture networks.
//!
//! What is checked here are properties of the original's preprocessing and the shape of
//! the run; numerical parity of the composition against the original code comes from a
//! fixture made by running `WarpingCloth` and `VitonPipeline` (in progress).

use std::path::{Path, PathBuf};

use vton_core::io::{read_image, read_keypoints, read_mask, ParseMap, PersonSelection};
use vton_core::models::dci_viton::DciVitonUNetOptions;
use vton_core::pipelines::dci_viton::{
    dci_agnostic, dci_composite, dci_warp_inputs, DciVitonInputs, DciVitonOptions, DciVitonPipeline,
};
use vton_core::pipelines::diffusion::Control;
use vton_core::VtonError;

fn fx(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(p)
}

struct Sample {
    person: vton_core::io::RgbImage,
    parse: ParseMap,
    pose: vton_core::io::Pose,
    dense: vton_core::io::RgbImage,
    cloth: vton_core::io::RgbImage,
    cloth_mask: vton_core::io::Mask,
}

fn sample() -> Sample {
    let d = fx("vitonhd_tiny/test");
    Sample {
        person: read_image(d.join("image/00001_00.jpg")).unwrap(),
        parse: ParseMap::read(d.join("image-parse-v3/00001_00.png")).unwrap(),
        pose: read_keypoints(
            d.join("openpose_json/00001_00_keypoints.json"),
            PersonSelection::Largest,
        )
        .unwrap(),
        dense: read_image(d.join("image-densepose/00001_00.jpg")).unwrap(),
        cloth: read_image(d.join("cloth/00001_00.jpg")).unwrap(),
        cloth_mask: read_mask(d.join("cloth-mask/00001_00.jpg")).unwrap(),
    }
}

impl Sample {
    fn inputs(&self) -> DciVitonInputs<'_> {
        DciVitonInputs {
            person: &self.person,
            parse: &self.parse,
            pose: &self.pose,
            densepose: &self.dense,
            garment: &self.cloth,
            garment_mask: &self.cloth_mask,
        }
    }
}

#[test]
fn agnostic_follows_the_original_rules() {
    let s = sample();
    let a = dci_agnostic(&s.person, &s.parse, &s.pose).unwrap();
    let n = s.person.width * s.person.height;
    let (mut upper, mut upper_grey, mut face_changed, mut grey) = (0, 0, 0, 0);
    for k in 0..n {
        let l = s.parse.labels[k];
        let px = &a.agnostic.data[k * 3..k * 3 + 3];
        let is_grey = px.iter().all(|&v| (v - 128.0 / 255.0).abs() < 1e-6);
        let mask = a.agnostic_mask.data[k];
        grey += (mask > 0.5) as usize;
        if l == 5 {
            upper += 1;
            upper_grey += is_grey as usize;
        }
        // Face and lower body are never repainted nor masked.
        if matches!(l, 13 | 9 | 12 | 16 | 17 | 18 | 19) {
            assert_eq!(mask, 0.0, "label {l} masked at {k}");
            if px != &s.person.data[k * 3..k * 3 + 3] {
                face_changed += 1;
            }
        }
        // A pixel the mask covers is grey unless it is an arm pixel kept from the photo.
        if mask > 0.5 && !matches!(l, 14 | 15) {
            assert!(is_grey, "masked label {l} at {k} not grey");
        }
        // The parse agnostic: background where repainted, the parse elsewhere.
        let pa = a.parse_agnostic.labels[k];
        assert!(pa == l || pa == 0, "{pa} vs {l}");
        if mask > 0.5 && !matches!(l, 14 | 15 | 2) {
            assert_eq!(pa, 0, "label {l} kept in the parse agnostic at {k}");
        }
    }
    assert_eq!(face_changed, 0);
    // The upper clothes are (almost all) inside the drawing: this photo's shirt.
    assert!(upper > 1000, "{upper}");
    assert!(
        upper_grey as f64 > 0.95 * upper as f64,
        "{upper_grey} of {upper}"
    );
    assert!(grey > upper / 2, "{grey}");
}

#[test]
fn warp_inputs_have_the_original_layout() {
    let s = sample();
    let dev = vton_core::default_device();
    let (a, w) = dci_warp_inputs(&s.inputs(), 64, 128, &dev).unwrap();
    assert_eq!(w.input_1.dims(), [1, 4, 64, 64]);
    assert_eq!(w.input_2.dims(), [1, 6, 64, 64]);
    assert_eq!(w.agnostic.dims(), [1, 3, 64, 64]);
    assert_eq!(w.agnostic_mask.dims(), [1, 1, 128, 128]);
    let v = |t: burn::tensor::Tensor<4>| t.into_data().try_to_vec::<f32>().unwrap();
    // The parse channels are label / 255 * 15: at most 19 * 15 / 255, three equal planes.
    let i2 = v(w.input_2.clone());
    let plane = 64 * 64;
    let max = i2[3 * plane..].iter().cloned().fold(0f32, f32::max);
    assert!(max > 0.5 && max <= 19.0 * 15.0 / 255.0 + 1e-6, "{max}");
    assert_eq!(i2[3 * plane..4 * plane], i2[5 * plane..6 * plane]);
    // The mask is in [-1, 1] with both ends present.
    let m = v(w.agnostic_mask);
    assert!(m.iter().all(|&x| (-1.0..=1.0).contains(&x)));
    assert!(m.contains(&-1.0) && m.contains(&1.0));
    assert_eq!(a.agnostic.width, s.person.width);
}

#[test]
fn composite_pastes_where_the_mask_is_above_half() {
    use burn::tensor::{Tensor, TensorData};
    let dev = vton_core::default_device();
    let t = |v: Vec<f32>, c: usize| Tensor::<4>::from_data(TensorData::new(v, [1, c, 1, 4]), &dev);
    let agn = t(vec![0.1; 12], 3);
    let cloth = t(vec![0.9; 12], 3);
    let cm = t(vec![0.2, 0.5, 0.51, 1.0], 1);
    let out = dci_composite(agn, cloth, cm)
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    for ch in 0..3 {
        assert_eq!(&out[ch * 4..ch * 4 + 4], &[0.1, 0.1, 0.9, 0.9]);
    }
}

fn pipeline() -> DciVitonPipeline {
    let dev = vton_core::default_device();
    DciVitonPipeline::from_checkpoints(
        fx("dci_viton_warping_oc3.safetensors"),
        fx("dci_viton_unet_ckpt.pth"),
        fx("diffusers_vae_pretrained"),
        &DciVitonUNetOptions {
            num_groups: 1,
            se_reduction: None,
        },
        &dev,
    )
    .unwrap()
}

#[test]
fn runs_end_to_end_seeded_with_progress_and_cancel() {
    let s = sample();
    let p = pipeline();
    let opts = DciVitonOptions {
        warp_size: 64,
        image_size: 64,
        steps: 3,
        seed: 7,
    };
    let mut seen = Vec::new();
    let a = p
        .run(&s.inputs(), &opts, |pr| {
            seen.push((pr.step, pr.total));
            Control::Continue
        })
        .unwrap();
    assert_eq!(seen, vec![(1, 3), (2, 3), (3, 3)]);
    assert_eq!((a.image.width, a.image.height), (64, 64));
    assert_eq!((a.warped.width, a.warped.height), (64, 64));
    assert!(a.image.data.iter().all(|v| (0.0..=1.0).contains(v)));
    let b = p.run(&s.inputs(), &opts, |_| Control::Continue).unwrap();
    assert_eq!(a.image.data, b.image.data, "same seed, same image");
    let c = p
        .run(&s.inputs(), &DciVitonOptions { seed: 8, ..opts }, |_| {
            Control::Continue
        })
        .unwrap();
    assert_ne!(a.image.data, c.image.data, "the seed matters");
    let e = p
        .run(&s.inputs(), &opts, |pr| {
            if pr.step == 2 {
                Control::Cancel
            } else {
                Control::Continue
            }
        })
        .unwrap_err();
    assert!(
        matches!(e, VtonError::Cancelled { step: 2, total: 3 }),
        "{e}"
    );
}

#[test]
fn bad_inputs_are_typed_errors() {
    let s = sample();
    let p = pipeline();
    let lip13 = s.parse.to_hrviton13().unwrap();
    let mut i = s.inputs();
    i.parse = &lip13;
    let e = p.run(&i, &DciVitonOptions::default(), |_| Control::Continue);
    assert!(matches!(e, Err(VtonError::InvalidArgument { .. })), "{e:?}");
    let small = s.cloth_mask.resize(10, 10);
    let mut i = s.inputs();
    i.garment_mask = &small;
    let e = p.run(&i, &DciVitonOptions::default(), |_| Control::Continue);
    assert!(matches!(e, Err(VtonError::SizeMismatch { .. })), "{e:?}");
    // A warping size the network cannot take.
    let e = p.run(
        &s.inputs(),
        &DciVitonOptions {
            warp_size: 48,
            image_size: 64,
            steps: 1,
            seed: 0,
        },
        |_| Control::Continue,
    );
    assert!(matches!(e, Err(VtonError::InvalidArgument { .. })), "{e:?}");
}
