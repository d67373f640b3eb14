//! The latent-diffusion try-on pipelines on the tiny random pipeline in
//! tests/fixtures/tiny_inpaint_pipeline (the shared diffusers fixtures' VAE and 9-channel
//! U-Net, DDIM from SD 1.5's scheduler config), against a diffusers run of CatVTON's
//! procedure (scripts/reference/gen_catvton_fixture.py), and end to end on a corpus photo.

mod common;
use burn::tensor::Tensor;
use common::*;
use vton_core::io::{read_image, ValueRange};
use vton_core::pipelines::diffusion::{
    load_catvton_attention, CatVTONPipeline, Control, InpaintInputs, InpaintTryOnPipeline,
    SamplingOptions,
};
use vton_core::VtonError;

fn base() -> std::path::PathBuf {
    fixture("tiny_inpaint_pipeline")
}

#[test]
fn catvton_attention_checkpoint_and_skipped_cross_attention_match_diffusers() {
    let dev = test_device();
    let t = read_safetensors(&fixture("catvton_reference.safetensors"));
    let unet =
        load_catvton_attention(&base().join("unet"), &fixture("catvton_attention"), &dev).unwrap();
    let out = unet
        .forward(tensor(&t, "input.unet_sample", &dev), 999i64, None)
        .unwrap();
    assert_close(
        "unet skip t999",
        &values(out),
        &t["output.unet_skip_t999"].1,
        1e-4,
        1e-4,
    );
    // A checkpoint for another U-Net is refused with the reason.
    let err = load_catvton_attention(
        &base().join("unet"),
        &fixture("diffusers_vae_pretrained/diffusion_pytorch_model.safetensors"),
        &dev,
    );
    assert!(matches!(err, Err(VtonError::Checkpoint { .. })), "{err:?}");
}

#[test]
fn catvton_pipeline_matches_diffusers_procedure() {
    let dev = test_device();
    let t = read_safetensors(&fixture("catvton_reference.safetensors"));
    let mut pipe =
        CatVTONPipeline::from_pretrained(base(), Some(&fixture("catvton_attention")), &dev)
            .unwrap();
    let opts = SamplingOptions {
        steps: 4,
        guidance_scale: 2.5,
        eta: 0.0,
        initial_noise: Some(tensor(&t, "input.noise", &dev)),
        keep_unmasked: false,
        ..Default::default()
    };
    let mut seen = Vec::new();
    let img = pipe
        .run(
            tensor(&t, "input.person", &dev),
            tensor(&t, "input.garment", &dev),
            tensor(&t, "input.mask", &dev),
            &opts,
            &mut |p| {
                seen.push((p.step, p.total));
                Control::Continue
            },
        )
        .unwrap();
    // Four chained U-Net evaluations with guidance 2.5 and a VAE round trip: float32
    // differences of ~1e-6 per call are amplified; 1e-4 is the fixture suite's bound.
    assert_close(
        "catvton image",
        &values(img),
        &t["output.pipeline_image"].1,
        1e-4,
        1e-4,
    );
    assert_eq!(seen, vec![(1, 4), (2, 4), (3, 4), (4, 4)]);
}

fn corpus_inputs(dev: &burn::tensor::Device) -> (Tensor<4>, Tensor<4>, Tensor<4>) {
    // A real photo at 64x48 (the tiny VAE's factor is 2), garment resized to the same size,
    // a torso mask.
    let person = read_image(example("person/openvto_ai_avatar2_upper.png"))
        .unwrap()
        .resize(48, 64)
        .to_tensor(dev, ValueRange::ZeroOne);
    let garment = read_image(example("garment/openvto_jacket1_front.png"))
        .unwrap()
        .resize(48, 64)
        .to_tensor(dev, ValueRange::ZeroOne);
    let mut m = vec![0f32; 64 * 48];
    for y in 18..54 {
        for x in 6..42 {
            m[y * 48 + x] = 1.0;
        }
    }
    let mask = Tensor::<4>::from_data(burn::tensor::TensorData::new(m, [1, 1, 64, 48]), dev);
    (person, garment, mask)
}

fn check_outside_mask(out: &[f32], person: &[f32], mask: &[f32], b: usize) {
    let hw = mask.len() / b;
    for i in 0..b {
        for c in 0..3 {
            for p in 0..hw {
                if mask[i * hw + p] < 0.5 {
                    let k = (i * 3 + c) * hw + p;
                    assert_eq!(
                        out[k], person[k],
                        "pixel {p} of image {i} changed outside the mask"
                    );
                }
            }
        }
    }
}

#[test]
fn pipelines_end_to_end_on_a_corpus_photo() {
    let dev = test_device();
    let (person, garment, mask) = corpus_inputs(&dev);
    // Batch of 2: the same person with two garments.
    let person2 = Tensor::cat(vec![person.clone(), person.clone()], 0);
    let garment2 = Tensor::cat(vec![garment.clone(), garment.clone().flip([3])], 0);
    let mask2 = Tensor::cat(vec![mask.clone(), mask.clone()], 0);
    let mut cat = CatVTONPipeline::from_pretrained(base(), None, &dev).unwrap();
    let opts = SamplingOptions {
        steps: 3,
        guidance_scale: 2.0,
        seed: 42,
        eta: 1.0,
        ..Default::default()
    };
    let mut none = |_| Control::Continue;
    let a = cat
        .run(
            person2.clone(),
            garment2.clone(),
            mask2.clone(),
            &opts,
            &mut none,
        )
        .unwrap();
    assert_eq!(a.dims(), [2, 3, 64, 48]);
    let av = values(a.clone());
    assert!(av.iter().all(|v| (0.0..=1.0).contains(v)));
    check_outside_mask(&av, &values(person2.clone()), &values(mask2.clone()), 2);
    // Same seed, same output; another seed, another output.
    let b = values(
        cat.run(
            person2.clone(),
            garment2.clone(),
            mask2.clone(),
            &opts,
            &mut none,
        )
        .unwrap(),
    );
    assert_eq!(av, b);
    let other = SamplingOptions {
        seed: 43,
        ..opts.clone()
    };
    let c = values(
        cat.run(
            person2.clone(),
            garment2.clone(),
            mask2.clone(),
            &other,
            &mut none,
        )
        .unwrap(),
    );
    assert_ne!(av, c);
    // Cancel after the second step.
    let mut calls = 0;
    let r = cat.run(person2.clone(), garment2, mask2.clone(), &opts, &mut |p| {
        calls += 1;
        if p.step == 2 {
            Control::Cancel
        } else {
            Control::Continue
        }
    });
    assert!(
        matches!(r, Err(VtonError::Cancelled { step: 2, total: 3 })),
        "{r:?}"
    );
    assert_eq!(calls, 2);

    // Inpainting try-on with the garment pasted in, from noise and from the noised composite.
    let mut inp = InpaintTryOnPipeline::from_pretrained(base(), &dev).unwrap();
    let inputs = InpaintInputs {
        person: person.clone(),
        mask: mask.clone(),
        warped_garment: garment.clone(),
        warped_mask: mask.clone(),
        encoder_hidden_states: None,
        start_from_warped: None,
    };
    let x = values(inp.run(&inputs, &opts, &mut none).unwrap());
    check_outside_mask(&x, &values(person.clone()), &values(mask.clone()), 1);
    assert_eq!(x, values(inp.run(&inputs, &opts, &mut none).unwrap()));
    let mut steps = 0;
    let warm = InpaintInputs {
        start_from_warped: Some(0.5),
        ..inputs.clone()
    };
    let opts10 = SamplingOptions {
        steps: 10,
        ..opts.clone()
    };
    let y = values(
        inp.run(&warm, &opts10, &mut |_| {
            steps += 1;
            Control::Continue
        })
        .unwrap(),
    );
    assert_eq!(steps, 5, "strength 0.5 of 10 steps runs the last 5");
    assert_ne!(x, y);
    check_outside_mask(&y, &values(person), &values(mask), 1);
    // Text-free cross attention can also be given states (shape-checked).
    let bad = InpaintInputs {
        encoder_hidden_states: Some(Tensor::zeros([1, 7, 31], &dev)),
        ..inputs
    };
    assert!(matches!(
        inp.run(&bad, &opts, &mut none),
        Err(VtonError::Shape { .. })
    ));
}

#[test]
fn pipeline_inputs_are_checked() {
    let dev = test_device();
    let (person, garment, mask) = corpus_inputs(&dev);
    let mut cat = CatVTONPipeline::from_pretrained(base(), None, &dev).unwrap();
    let opts = SamplingOptions {
        steps: 2,
        ..Default::default()
    };
    let mut none = |_| Control::Continue;
    let odd = Tensor::<4>::zeros([1, 3, 63, 48], &dev);
    assert!(matches!(
        cat.run(odd, garment.clone(), mask.clone(), &opts, &mut none),
        Err(VtonError::Shape { .. })
    ));
    let small = Tensor::<4>::zeros([1, 3, 32, 48], &dev);
    assert!(matches!(
        cat.run(person.clone(), small, mask.clone(), &opts, &mut none),
        Err(VtonError::SizeMismatch { .. })
    ));
    let zero = SamplingOptions {
        steps: 0,
        ..Default::default()
    };
    assert!(cat
        .run(
            person.clone(),
            garment.clone(),
            mask.clone(),
            &zero,
            &mut none
        )
        .is_err());
    let noise = SamplingOptions {
        initial_noise: Some(Tensor::zeros([1, 4, 8, 8], &dev)),
        ..opts
    };
    assert!(matches!(
        cat.run(person, garment, mask, &noise, &mut none),
        Err(VtonError::Shape { .. })
    ));
    assert!(matches!(
        CatVTONPipeline::from_pretrained(fixture("nope"), None, &dev),
        Err(VtonError::FileNotFound { .. })
    ));
    // A 4-channel U-Net is not an inpainting U-Net.
    let tmp = tempfile::tempdir().unwrap();
    for sub in ["vae", "scheduler"] {
        copy_dir(&base().join(sub), &tmp.path().join(sub));
    }
    copy_dir(
        &fixture("diffusers_unet_text_pretrained"),
        &tmp.path().join("unet"),
    );
    assert!(matches!(
        InpaintTryOnPipeline::from_pretrained(tmp.path(), &dev),
        Err(VtonError::Config { .. })
    ));
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// A fine-tuned U-Net in place of the pipeline's (`vton try-on --unet`): a `vton train
/// unet` checkpoint file (diffusers keys, written by the trainer's checkpoint code) is read
/// with the pipeline's U-Net config, a U-Net folder as it is; an incomplete file and a
/// missing path are typed errors.
#[test]
fn a_fine_tuned_unet_replaces_the_pipelines_own() {
    use std::collections::BTreeMap;
    use vton_core::pipelines::diffusion::{load_unet, DiffusionParts};
    use vton_core::train::checkpoint::{save_safetensors, StateTensor};
    use vton_core::train::diffusion::{UNetTrainOptions, UNetTrainer};
    let dev = test_device();
    let base = base();
    let trainer = UNetTrainer::from_pretrained(&base, UNetTrainOptions::default(), &dev).unwrap();
    let mut sd = trainer.state_dict().unwrap();
    // Shift conv_in's weight: the loaded model must carry the file's values, not the base's.
    let w = sd.get_mut("conv_in.weight").expect("conv_in.weight");
    for v in &mut w.data {
        *v += 0.25;
    }
    let expected = w.data.clone();
    let tensors: BTreeMap<String, StateTensor> = sd
        .iter()
        .map(|(k, v)| (k.clone(), StateTensor::from_host(v).unwrap()))
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let file = dir.join("unet.safetensors");
    save_safetensors(&file, &tensors, &BTreeMap::new()).unwrap();

    let parts = DiffusionParts::from_pretrained_with_unet(&base, Some(&file), &dev).unwrap();
    let got: Vec<f32> = values(parts.unet.conv_in.weight.val());
    let base_parts = DiffusionParts::from_pretrained(&base, &dev).unwrap();
    let orig: Vec<f32> = values(base_parts.unet.conv_in.weight.val());
    // burn's conv weight layout equals PyTorch's [out, in, kh, kw]: compare element-wise.
    assert_eq!(got.len(), expected.len());
    let max_err = got
        .iter()
        .zip(&expected)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(
        max_err == 0.0,
        "loaded conv_in differs from the file by {max_err}"
    );
    let moved = got
        .iter()
        .zip(&orig)
        .map(|(a, b)| (a - b).abs())
        .fold(f32::INFINITY, f32::min);
    assert!(
        (moved - 0.25).abs() < 1e-6,
        "expected every weight shifted by 0.25, min shift {moved}"
    );

    // A U-Net folder loads as it is.
    let u = load_unet(&base.join("unet"), &base.join("unet"), &dev).unwrap();
    assert_eq!(u.config, base_parts.unet.config);

    // Missing tensors: refused, not silently taken from somewhere.
    let mut partial = tensors.clone();
    partial.remove("conv_in.weight");
    let pfile = dir.join("partial.safetensors");
    save_safetensors(&pfile, &partial, &BTreeMap::new()).unwrap();
    assert!(DiffusionParts::from_pretrained_with_unet(&base, Some(&pfile), &dev).is_err());
    assert!(matches!(
        load_unet(&base.join("unet"), &dir.join("nope.safetensors"), &dev),
        Err(VtonError::FileNotFound { .. })
    ));
}
