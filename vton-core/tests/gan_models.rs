//! CP-VTON+ (GMM, TOM) and HR-VITON (condition generator, SPADE/ALIAS generator) against
//! the outputs of the original code (../shared/fixtures, copied to tests/fixtures/gan).
//! Weights come from .pth files written the way the authors' code writes them
//! (scripts/reference/gen_gan_checkpoints.py) and are read by the loader users call.

mod common;
use common::*;
use vton_core::models::cpvton::{Gmm, GmmConfig, Tom, TomConfig};
use vton_core::nn::NormKind;

fn gan(name: &str) -> std::path::PathBuf {
    fixture(&format!("gan/{name}"))
}

fn tol(case: &str) -> (f32, f32) {
    fixture_tolerance(&format!("gan/{case}.json"))
}

fn check(t: &Io, what: &str, key: &str, got: burn::tensor::Tensor<4>, tol: (f32, f32)) {
    assert_eq!(got.dims().to_vec(), t[key].0, "{what} shape");
    assert_close(what, &values(got), &t[key].1, tol.0, tol.1);
}

type Io = std::collections::HashMap<String, (Vec<usize>, Vec<f32>)>;

#[test]
fn cpvton_gmm_matches_original() {
    let dev = test_device();
    let t = read_safetensors(&gan("cpvton_gmm.safetensors"));
    let tl = tol("cpvton_gmm");
    // DataParallel checkpoint: every key under `module.`.
    let gmm = Gmm::from_checkpoint(gan("cpvton_gmm.pth"), GmmConfig::default(), &dev).unwrap();
    assert_eq!(gmm.input_channels(), (22, 1));
    let out = gmm
        .forward(
            tensor(&t, "input.agnostic", &dev),
            tensor(&t, "input.cm", &dev),
        )
        .unwrap();
    check(
        &t,
        "featureA",
        "output.intermediate.featureA_raw",
        out.feature_a,
        tl,
    );
    check(
        &t,
        "featureB",
        "output.intermediate.featureB_raw",
        out.feature_b,
        tl,
    );
    check(
        &t,
        "correlation",
        "output.intermediate.correlation",
        out.correlation,
        tl,
    );
    assert_close(
        "theta",
        &values(out.theta),
        &t["output.theta"].1,
        tl.0,
        tl.1,
    );
    check(&t, "grid", "output.grid", out.grid, tl);
}

#[test]
fn cpvton_gmm_rejects_wrong_sizes() {
    let dev = test_device();
    let gmm = Gmm::from_checkpoint(gan("cpvton_gmm.pth"), GmmConfig::default(), &dev).unwrap();
    let a = burn::tensor::Tensor::<4>::zeros([1, 22, 128, 96], &dev);
    let m = burn::tensor::Tensor::<4>::zeros([1, 1, 128, 96], &dev);
    let e = gmm.forward(a, m).unwrap_err().to_string();
    assert!(e.contains("256x192"), "{e}");
    let a = burn::tensor::Tensor::<4>::zeros([1, 3, 256, 192], &dev);
    let m = burn::tensor::Tensor::<4>::zeros([1, 1, 256, 192], &dev);
    assert!(gmm
        .forward(a, m)
        .unwrap_err()
        .to_string()
        .contains("[B, 22, H, W]"));
    // A fine size whose regression input disagrees with the checkpoint's Linear.
    let cfg = GmmConfig {
        fine_height: 128,
        fine_width: 128,
        ..GmmConfig::default()
    };
    let e = Gmm::from_checkpoint(gan("cpvton_gmm.pth"), cfg, &dev).unwrap_err();
    assert!(e.to_string().contains("regression.conv.0.weight"), "{e}");
}

#[test]
fn cpvton_tom_matches_original() {
    let dev = test_device();
    let t = read_safetensors(&gan("cpvton_tom.safetensors"));
    let tl = tol("cpvton_tom");
    let cfg = TomConfig {
        ngf: 8,
        ..TomConfig::default()
    };
    // Legacy (pre-zip) torch.save format.
    let tom = Tom::from_checkpoint(gan("cpvton_tom.pth"), cfg, &dev).unwrap();
    let out = tom
        .forward(
            tensor(&t, "input.agnostic", &dev),
            tensor(&t, "input.c", &dev),
            tensor(&t, "input.cm", &dev),
        )
        .unwrap();
    check(&t, "outputs", "output.outputs", out.outputs, tl);
    check(&t, "p_rendered", "output.p_rendered", out.p_rendered, tl);
    check(&t, "m_composite", "output.m_composite", out.m_composite, tl);
    check(&t, "p_tryon", "output.p_tryon", out.p_tryon, tl);
}

#[test]
fn cpvton_tom_config_must_match_checkpoint() {
    let dev = test_device();
    // The released default ngf=64 against an ngf=8 checkpoint: the error names the key.
    let e = Tom::from_checkpoint(gan("cpvton_tom.pth"), TomConfig::default(), &dev).unwrap_err();
    assert!(e.to_string().contains("model.model.0.weight"), "{e}");
    // BatchNorm expects running statistics the InstanceNorm checkpoint does not have.
    let cfg = TomConfig {
        ngf: 8,
        norm_layer: NormKind::Batch,
        ..TomConfig::default()
    };
    let e = Tom::from_checkpoint(gan("cpvton_tom.pth"), cfg, &dev).unwrap_err();
    assert!(
        matches!(
            e,
            vton_core::VtonError::MissingWeights { .. } | vton_core::VtonError::WeightShape { .. }
        ),
        "{e}"
    );
    let cfg = TomConfig {
        ngf: 8,
        num_downs: 5,
        ..TomConfig::default()
    };
    assert!(Tom::from_checkpoint(gan("cpvton_tom.pth"), cfg, &dev).is_err());
}

use vton_core::models::hrviton::{
    ConditionGenerator, ConditionGeneratorConfig, HRVitonGenerator, HRVitonGeneratorConfig, NormG,
    SpadeNoise, SpadeResBlock,
};
use vton_core::weights::{Checkpoint, Loader};

fn tocg_config() -> ConditionGeneratorConfig {
    ConditionGeneratorConfig {
        ngf: 8,
        ..ConditionGeneratorConfig::default()
    }
}

#[test]
fn hrviton_condition_generator_matches_original() {
    let dev = test_device();
    let t = read_safetensors(&gan("hrviton_tocg.safetensors"));
    let tl = tol("hrviton_tocg");
    let (tocg, report) =
        ConditionGenerator::from_checkpoint(gan("hrviton_tocg.pth"), tocg_config(), &dev).unwrap();
    assert!(report.unused.is_empty(), "{:?}", report.unused);
    let out = tocg
        .forward(
            tensor(&t, "input.input1", &dev),
            tensor(&t, "input.input2", &dev),
        )
        .unwrap();
    assert_eq!(out.flow_list.len(), 5);
    for (i, f) in out.flow_list.into_iter().enumerate() {
        check(
            &t,
            &format!("flow_list.{i}"),
            &format!("output.flow_list.{i}"),
            f,
            tl,
        );
    }
    check(&t, "fake_segmap", "output.fake_segmap", out.fake_segmap, tl);
    check(&t, "warped_c", "output.warped_c", out.warped_cloth, tl);
    check(
        &t,
        "warped_cm",
        "output.warped_cm",
        out.warped_cloth_mask,
        tl,
    );
}

#[test]
fn hrviton_condition_generator_rejects_bad_inputs() {
    let dev = test_device();
    let (tocg, _) =
        ConditionGenerator::from_checkpoint(gan("hrviton_tocg.pth"), tocg_config(), &dev).unwrap();
    let z = |c, h, w| burn::tensor::Tensor::<4>::zeros([1, c, h, w], &dev);
    assert!(tocg.forward(z(3, 128, 96), z(16, 128, 96)).is_err());
    assert!(tocg.forward(z(4, 128, 96), z(16, 64, 96)).is_err());
    let e = tocg.forward(z(4, 100, 96), z(16, 100, 96)).unwrap_err();
    assert!(e.to_string().contains("multiples of 32"), "{e}");
    // The released width (96) against an ngf=8 checkpoint names the first key.
    let e = ConditionGenerator::from_checkpoint(
        gan("hrviton_tocg.pth"),
        ConditionGeneratorConfig::default(),
        &dev,
    )
    .unwrap_err();
    assert!(e.to_string().contains("ClothEncoder.0.scale.weight"), "{e}");
}

fn gen_config() -> HRVitonGeneratorConfig {
    HRVitonGeneratorConfig {
        ngf: 2,
        fine_height: 256,
        fine_width: 128,
        ..HRVitonGeneratorConfig::default()
    }
}

#[test]
fn hrviton_generator_matches_original_with_both_key_namings() {
    let dev = test_device();
    let t = read_safetensors(&gan("hrviton_spade_gen.safetensors"));
    let tl = tol("hrviton_spade_gen");
    for file in ["hrviton_gen.pth", "hrviton_gen_renamed.safetensors"] {
        let gen = HRVitonGenerator::from_checkpoint(gan(file), gen_config(), &dev).unwrap();
        let out = gen
            .forward(
                tensor(&t, "input.x", &dev),
                tensor(&t, "input.seg", &dev),
                &mut SpadeNoise::seeded(1),
            )
            .unwrap();
        check(&t, file, "output.out", out, tl);
    }
}

#[test]
fn hrviton_spade_resblock_replays_recorded_noise() {
    let dev = test_device();
    let path = gan("hrviton_spade_resblock.safetensors");
    let t = read_safetensors(&path);
    let tl = tol("hrviton_spade_resblock");
    let ckpt = Checkpoint::open(&path)
        .unwrap()
        .map_keys(|k| k.strip_prefix("weights.").map(str::to_string));
    let l = Loader::new(&ckpt, &dev, false);
    let norm = NormG::parse("spectralaliasinstance").unwrap();
    let block = SpadeResBlock::load(&l, 20, 12, 7, norm).unwrap();
    l.finish(true).unwrap();
    let x = tensor::<4>(&t, "input.x", &dev);
    let seg = tensor::<4>(&t, "input.seg", &dev);
    let draws = (0..3)
        .map(|i| tensor::<4>(&t, &format!("input.noise.{i}"), &dev))
        .collect();
    let out = block
        .forward(x.clone(), seg.clone(), &mut SpadeNoise::Given(draws))
        .unwrap();
    check(&t, "out", "output.out", out, tl);
    let out = block.forward(x, seg, &mut SpadeNoise::Zero).unwrap();
    check(&t, "out_zero_noise", "output.out_zero_noise", out, tl);
}

#[test]
fn hrviton_test_procedure_matches_original() {
    use vton_core::pipelines::hrviton::{HRVitonInputs, HRVitonOptions, HRVitonPipeline};
    let dev = test_device();
    let t = read_safetensors(&gan("hrviton_pipeline.safetensors"));
    let tl = tol("hrviton_pipeline");
    let pipe = HRVitonPipeline::from_checkpoints(
        gan("hrviton_tocg.pth"),
        gan("hrviton_gen.pth"),
        tocg_config(),
        gen_config(),
        HRVitonOptions::default(),
        &dev,
    )
    .unwrap();
    let inputs = HRVitonInputs {
        cloth: tensor(&t, "input.cloth", &dev),
        cloth_mask: tensor(&t, "input.cloth_mask", &dev),
        parse_agnostic: tensor(&t, "input.parse_agnostic", &dev),
        densepose: tensor(&t, "input.densepose", &dev),
        agnostic: tensor(&t, "input.agnostic", &dev),
    };
    let out = pipe.run(&inputs, &mut SpadeNoise::Zero).unwrap();
    check(
        &t,
        "flow_list.4",
        "output.tocg.flow_list.4",
        out.tocg.flow_list[4].clone(),
        tl,
    );
    check(
        &t,
        "tocg warped cm",
        "output.tocg.warped_clothmask_paired",
        out.tocg.warped_cloth_mask.clone(),
        tl,
    );
    // argmax: equal wherever the reference's top-2 margin is clear of float noise.
    let got = values(out.fake_parse);
    let (want, margin) = (&t["output.fake_parse"].1, &t["output.fake_parse_margin"].1);
    let clear: Vec<usize> = (0..got.len()).filter(|&i| margin[i] > 1e-3).collect();
    assert!(clear.len() as f64 > 0.99 * got.len() as f64);
    let wrong = clear.iter().filter(|&&i| got[i] != want[i]).count();
    assert_eq!(wrong, 0, "fake_parse differs at {wrong} clear pixels");
    let near_ties = got.iter().zip(want).filter(|(a, b)| a != b).count();
    check(
        &t,
        "before occlusion",
        "output.warped_clothmask_before_occlusion",
        out.warped_clothmask_before_occlusion,
        tl,
    );
    check(
        &t,
        "warped_clothmask",
        "output.warped_clothmask",
        out.warped_clothmask,
        tl,
    );
    check(
        &t,
        "warped_cloth",
        "output.warped_cloth",
        out.warped_cloth,
        tl,
    );
    if near_ties == 0 {
        check(&t, "output", "output.output", out.output, tl);
    } else {
        // A flipped near-tie label changes the generator's parse there; require the
        // rest of the image to match.
        let got = values(out.output);
        let w = &t["output.output"].1;
        let bad = got
            .iter()
            .zip(w)
            .filter(|(g, w)| (*g - *w).abs() > tl.0 + tl.1 * w.abs())
            .count();
        assert!(
            (bad as f64) < 0.001 * got.len() as f64,
            "{bad} output values off"
        );
    }
}

#[test]
fn bad_checkpoints_are_typed_errors() {
    use vton_core::VtonError;
    let dev = test_device();
    let gmm = |p: &std::path::Path| Gmm::from_checkpoint(p, GmmConfig::default(), &dev);
    // Not a checkpoint at all.
    let e = gmm(&example("person/mpl_grace_hopper.png")).unwrap_err();
    assert!(matches!(e, VtonError::Checkpoint { .. }), "{e}");
    // Truncated: the first half of a real .pth.
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(gan("cpvton_gmm.pth")).unwrap();
    let cut = dir.path().join("cut.pth");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let e = gmm(&cut).unwrap_err();
    assert!(matches!(e, VtonError::Checkpoint { .. }), "{e}");
    // A pickle that calls os.system: refused, nothing runs.
    let marker = std::env::temp_dir().join("vton_pwned");
    let _ = std::fs::remove_file(&marker);
    let e = gmm(&fixture("malicious.pth")).unwrap_err();
    assert!(matches!(e, VtonError::Checkpoint { .. }), "{e}");
    assert!(!marker.exists());
    // Another model's checkpoint: missing keys, named.
    let e = gmm(&gan("hrviton_tocg.pth")).unwrap_err();
    assert!(
        matches!(e, VtonError::MissingWeights { ref keys, .. } if keys.contains("extractionA.model.0.weight")),
        "{e}"
    );
    let e =
        HRVitonGenerator::from_checkpoint(gan("cpvton_tom.pth"), gen_config(), &dev).unwrap_err();
    assert!(matches!(e, VtonError::MissingWeights { .. }), "{e}");
    // Wrong shapes: the generator at another width.
    let cfg = HRVitonGeneratorConfig {
        ngf: 4,
        ..gen_config()
    };
    let e = HRVitonGenerator::from_checkpoint(gan("hrviton_gen.pth"), cfg, &dev).unwrap_err();
    assert!(
        matches!(e, VtonError::WeightShape { ref key, .. } if key == "conv_0.weight"),
        "{e}"
    );
    // Strict loads name unexpected keys (TOM checkpoint with an extra tensor).
    let ck = vton_core::weights::Checkpoint::open(gan("hrviton_gen_renamed.safetensors")).unwrap();
    let extra = ck.overlay(
        vton_core::weights::Checkpoint::open(gan("hrviton_tocg.pth"))
            .unwrap()
            .map_keys(|k| (k == "conv1.0.bias").then(|| "extra.bias".to_string())),
    );
    let l = Loader::new(&extra, &dev, false);
    HRVitonGenerator::load(&l, gen_config()).unwrap();
    let e = l.finish(true).unwrap_err();
    assert!(
        matches!(e, VtonError::UnexpectedWeights { ref keys, .. } if keys.contains("extra.bias")),
        "{e}"
    );
}

#[test]
fn hrviton_condition_generator_options_and_batches() {
    // instance norm, warp_feature "encoder", out_layer "conv", upsample "nearest", batch 2,
    // ngf 4, against vton's PyTorch reference module (scripts/bench/gan_reference.py
    // options): the shared fixture covers the released options only.
    let dev = test_device();
    let path = gan("tocg_options.safetensors");
    let t = read_safetensors(&path);
    let cfg = ConditionGeneratorConfig {
        ngf: 4,
        ..ConditionGeneratorConfig::default()
    }
    .with_names("instance", "encoder", "conv", "nearest")
    .unwrap();
    // The file keeps the weights under `weights.` beside `input.*` / `output.*` tensors:
    // the loader selects the prefix that holds the model.
    let (tocg, report) = ConditionGenerator::from_checkpoint(&path, cfg, &dev).unwrap();
    assert!(report.unused.is_empty() && report.missing.is_empty());
    let out = tocg
        .forward(
            tensor(&t, "input.input1", &dev),
            tensor(&t, "input.input2", &dev),
        )
        .unwrap();
    // Tolerances: twice the float32-vs-float64 distance of the reference run itself
    // (tocg_options.json), as the shared fixtures set theirs.
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(gan("tocg_options.json")).unwrap()).unwrap();
    let tl = |name: &str| (j["atol"][name].as_f64().unwrap() as f32, 1e-4);
    for (i, f) in out.flow_list.into_iter().enumerate() {
        let name = format!("flow_list.{i}");
        check(&t, &name, &format!("output.{name}"), f, tl(&name));
    }
    check(
        &t,
        "fake_segmap",
        "output.fake_segmap",
        out.fake_segmap,
        tl("fake_segmap"),
    );
    check(
        &t,
        "warped_c",
        "output.warped_c",
        out.warped_cloth,
        tl("warped_c"),
    );
    check(
        &t,
        "warped_cm",
        "output.warped_cm",
        out.warped_cloth_mask,
        tl("warped_cm"),
    );
    assert!(ConditionGeneratorConfig::default()
        .with_names("instance", "T2", "conv", "nearest")
        .is_err());
}
