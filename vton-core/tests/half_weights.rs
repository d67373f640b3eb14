//! Half-precision weights (`WeightDtype`, `LoadOptions`): fp16 `variant` files in diffusers
//! folders (safetensors and torch pickles) and bf16 / fp16 rounding of float32 files, against
//! diffusers run on the same rounded weights (`scripts/fixtures/make_half_weights.py`), and
//! the error half weights cost against the float32 outputs.

mod common;
use common::*;

use vton_core::models::{AutoencoderKL, UNet2DConditionModel};
use vton_core::weights::{Checkpoint, LoadOptions, ParamBytes, WeightDtype};

fn half() -> std::collections::HashMap<String, (Vec<usize>, Vec<f32>)> {
    read_safetensors(&fixture("half_weights.safetensors"))
}

/// ||got - want|| / ||want||.
fn normwise(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len());
    let (mut d, mut w) = (0f64, 0f64);
    for (&g, &r) in got.iter().zip(want) {
        d += (g as f64 - r as f64).powi(2);
        w += (r as f64).powi(2);
    }
    (d / w).sqrt()
}

fn unet_out(
    u: &UNet2DConditionModel,
    t: &std::collections::HashMap<String, (Vec<usize>, Vec<f32>)>,
) -> Vec<f32> {
    let dev = test_device();
    values(
        u.forward(
            tensor(t, "unet.input.sample", &dev),
            999i64,
            Some(&tensor(t, "unet.input.encoder_hidden_states", &dev)),
        )
        .unwrap(),
    )
}

// Bounds on the normwise error half weights cost against float32 weights. Rounding a
// weight to a format with unit roundoff u perturbs it by at most u relatively
// (fp16: 11 significant bits, u = 2^-11 = 4.9e-4; bf16: 8 bits, u = 2^-8 = 3.9e-3), and
// the perturbations add up layer after layer: diffusers on the same rounded weights
// measured, fp16 (every tensor rounded) / bf16 (kernels rounded): 1.9u / 1.3u (U-Net),
// 2.0u / 1.6u (VAE encoder mean), 4.4u / 3.4u (VAE encode then decode) for these fixtures
// (`normwise_vs_f32` in half_weights.json). The bounds allow 8u.
const F16_BOUND: f64 = 8.0 * 4.9e-4;
const BF16_BOUND: f64 = 8.0 * 3.9e-3;

#[test]
fn unet_fp16_variant_matches_diffusers_on_the_same_weights() {
    let dev = test_device();
    let t = half();
    let (atol, rtol) = fixture_tolerance("half_weights.json");
    let opts = LoadOptions::dtype(WeightDtype::F16).with_variant(Some("fp16"));
    let u = UNet2DConditionModel::from_pretrained_with(
        fixture("diffusers_unet_inpaint_fp16"),
        &opts,
        &dev,
    )
    .unwrap();
    let got = unet_out(&u, &t);
    assert_close("unet fp16", &got, &t["unet.f16"].1, atol, rtol);
    let e = normwise(&got, &t["unet.f32"].1);
    assert!(e > 0.0 && e < F16_BOUND, "fp16 normwise error {e:.2e}");

    // The convolution and linear weights are held as f16: the weights take about half
    // the bytes of the float32 model (biases and norm scales stay float32).
    let f32_model =
        UNet2DConditionModel::from_pretrained(fixture("diffusers_unet_inpaint_pretrained"), &dev)
            .unwrap();
    let (h, f) = (ParamBytes::of(&u), ParamBytes::of(&f32_model));
    assert_eq!((f.f16, f.bf16), (0, 0));
    assert!(h.f16 > 0 && h.bf16 == 0, "{h:?}");
    assert!(
        (h.total() as f64) < 0.55 * f.total() as f64,
        "{h:?} vs {f:?}"
    );
    // The fp16 file read as float32 widens the same bits: the same outputs.
    let wide = UNet2DConditionModel::from_pretrained_with(
        fixture("diffusers_unet_inpaint_fp16"),
        &LoadOptions::default().with_variant(Some("fp16")),
        &dev,
    )
    .unwrap();
    assert_eq!(ParamBytes::of(&wide).f16, 0);
    assert_close(
        "unet fp16 file as f32",
        &unet_out(&wide, &t),
        &got,
        1e-6,
        1e-5,
    );
}

#[test]
fn unet_bf16_weights_from_a_float32_file() {
    let dev = test_device();
    let t = half();
    let (atol, rtol) = fixture_tolerance("half_weights.json");
    let u = UNet2DConditionModel::from_pretrained_with(
        fixture("diffusers_unet_inpaint_pretrained"),
        &LoadOptions::dtype(WeightDtype::BF16),
        &dev,
    )
    .unwrap();
    let got = unet_out(&u, &t);
    // Rounded to nearest even like torch's `.to(torch.bfloat16)`.
    assert_close("unet bf16", &got, &t["unet.bf16"].1, atol, rtol);
    let e = normwise(&got, &t["unet.f32"].1);
    assert!(e > 0.0 && e < BF16_BOUND, "bf16 normwise error {e:.2e}");
    let b = ParamBytes::of(&u);
    assert!(b.bf16 > 0 && b.f16 == 0, "{b:?}");
}

#[test]
fn vae_fp16_pickle_variant_and_bf16() {
    let dev = test_device();
    let t = half();
    let (atol, rtol) = fixture_tolerance("half_weights.json");
    let x = tensor::<4>(&t, "vae.input.x", &dev);
    for (dir, opts, w, bound) in [
        (
            "diffusers_vae_fp16",
            LoadOptions::dtype(WeightDtype::F16).with_variant(Some("fp16")),
            "f16",
            F16_BOUND,
        ),
        (
            "diffusers_vae_pretrained",
            LoadOptions::dtype(WeightDtype::BF16),
            "bf16",
            BF16_BOUND,
        ),
    ] {
        let vae = AutoencoderKL::from_pretrained_with(fixture(dir), &opts, &dev).unwrap();
        let mean = vae.encode(x.clone()).unwrap().mean;
        let dec = vae.decode(mean.clone()).unwrap();
        let (mean, dec) = (values(mean), values(dec));
        assert_close(
            &format!("vae mean {w}"),
            &mean,
            &t[&format!("vae.mean.{w}")].1,
            atol,
            rtol,
        );
        assert_close(
            &format!("vae decode {w}"),
            &dec,
            &t[&format!("vae.decode.{w}")].1,
            atol,
            rtol,
        );
        for (name, got) in [("mean", &mean), ("decode", &dec)] {
            let e = normwise(got, &t[&format!("vae.{name}.f32")].1);
            assert!(
                e > 0.0 && e < bound,
                "vae {name} {w}: normwise error {e:.2e}"
            );
        }
    }
}

#[test]
fn missing_variants_and_bad_names_are_clear_errors() {
    let dev = test_device();
    // A folder holding only fp16 files, loaded without a variant: the error says so.
    let e = UNet2DConditionModel::from_pretrained(fixture("diffusers_unet_inpaint_fp16"), &dev)
        .err()
        .expect("no plain weights there")
        .to_string();
    assert!(e.contains("variant") && e.contains("fp16"), "{e}");
    // A variant the folder does not have.
    let e = AutoencoderKL::from_pretrained_with(
        fixture("diffusers_vae_pretrained"),
        &LoadOptions::default().with_variant(Some("fp16")),
        &dev,
    )
    .err()
    .expect("no fp16 files there")
    .to_string();
    assert!(e.contains("fp16"), "{e}");
    // A variant that is not a file-name part.
    let e = AutoencoderKL::from_pretrained_with(
        fixture("diffusers_vae_pretrained"),
        &LoadOptions::default().with_variant(Some("../x")),
        &dev,
    )
    .err()
    .expect("bad variant")
    .to_string();
    assert!(e.contains("variant"), "{e}");
    // dtype names as torch spells them; anything else is refused by name.
    for (n, d) in [
        ("float32", WeightDtype::F32),
        ("torch.float16", WeightDtype::F16),
        ("fp16", WeightDtype::F16),
        ("half", WeightDtype::F16),
        ("BF16", WeightDtype::BF16),
        ("torch.bfloat16", WeightDtype::BF16),
    ] {
        assert_eq!(WeightDtype::from_name(n).unwrap(), d, "{n}");
        assert_eq!(WeightDtype::from_name(d.name()).unwrap(), d);
    }
    let e = WeightDtype::from_name("int8").unwrap_err().to_string();
    assert!(e.contains("int8") && e.contains("bfloat16"), "{e}");
}

#[test]
fn read_half_keeps_bits_and_rounds_to_nearest_even() {
    // f32 values exactly between two bf16 / f16 neighbours round to the even one; values
    // out of f16's range become infinities (as torch's `.half()` does).
    let vals: Vec<f32> = vec![
        1.0,
        1.0 + 2f32.powi(-8),       // bf16 tie -> 1.0 (even)
        1.0 + 3.0 * 2f32.powi(-8), // bf16 tie -> 1 + 2^-6 (even)
        1.0 + 2f32.powi(-11),      // f16 tie -> 1.0
        -0.0,
        70000.0, // beyond f16's 65504
        f32::MIN_POSITIVE,
    ];
    let ck = Checkpoint::from_f32_tensors("t", vec![("w".into(), vec![vals.len()], vals.clone())])
        .unwrap();
    let bf = ck.read_half("w", WeightDtype::BF16).unwrap().unwrap();
    let want_bf: Vec<u16> = vals
        .iter()
        .map(|&v| half::bf16::from_f32(v).to_bits())
        .collect();
    assert_eq!(bf.bits, want_bf);
    assert_eq!(half::bf16::from_bits(bf.bits[1]).to_f32(), 1.0);
    assert_eq!(
        half::bf16::from_bits(bf.bits[2]).to_f32(),
        1.0 + 2f32.powi(-6)
    );
    let h = ck.read_half("w", WeightDtype::F16).unwrap().unwrap();
    assert_eq!(half::f16::from_bits(h.bits[3]).to_f32(), 1.0);
    assert!(half::f16::from_bits(h.bits[5]).to_f32().is_infinite());
    assert_eq!(h.bits[4], 0x8000);
    assert!(ck.read_half("w", WeightDtype::F32).unwrap().is_none());
    assert!(ck.read_half("nope", WeightDtype::F16).is_err());

    // An fp16 file read as f16 is its bits unchanged; read as bf16 each value is rounded
    // once from its exact f16 value.
    let fp16 = Checkpoint::open(fixture(
        "diffusers_unet_inpaint_fp16/diffusion_pytorch_model.fp16.safetensors",
    ))
    .unwrap();
    let key = "conv_in.weight";
    let wide = fp16.read_f32(key).unwrap();
    let h = fp16.read_half(key, WeightDtype::F16).unwrap().unwrap();
    let back: Vec<f32> = h
        .bits
        .iter()
        .map(|&b| half::f16::from_bits(b).to_f32())
        .collect();
    assert_eq!(back, wide);
    let b = fp16.read_half(key, WeightDtype::BF16).unwrap().unwrap();
    let want: Vec<u16> = wide
        .iter()
        .map(|&v| half::bf16::from_f32(v).to_bits())
        .collect();
    assert_eq!(b.bits, want);
}
