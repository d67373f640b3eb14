//! AutoencoderKL and UNet2DConditionModel against diffusers 0.42.1 (fixtures made by the
//! diffusers package on random weights: tests/fixtures/diffusers_*). Models are loaded
//! from the `*_pretrained/` folders exactly as diffusers' `save_pretrained` wrote them.

mod common;
use common::*;
use vton_core::models::{AutoencoderKL, UNet2DConditionModel};
use vton_core::weights::Checkpoint;
use vton_core::VtonError;

#[test]
fn autoencoder_kl_matches_diffusers() {
    let dev = test_device();
    let t = read_safetensors(&fixture("diffusers_vae.safetensors"));
    let (atol, rtol) = fixture_tolerance("diffusers_vae.json");
    let vae = AutoencoderKL::from_pretrained(fixture("diffusers_vae_pretrained"), &dev).unwrap();
    assert_eq!(vae.downsample_factor(), 2);
    let x = tensor::<4>(&t, "input.x", &dev);
    let enc = vae.encoder_output(x.clone()).unwrap();
    assert_close(
        "encoder_out",
        &values(enc),
        &t["output.encoder_out"].1,
        atol,
        rtol,
    );
    let post = vae.encode(x).unwrap();
    assert_close(
        "mean",
        &values(post.mean.clone()),
        &t["output.posterior_mean"].1,
        atol,
        rtol,
    );
    assert_close(
        "logvar",
        &values(post.logvar.clone()),
        &t["output.posterior_logvar"].1,
        atol,
        rtol,
    );
    assert_close(
        "std",
        &values(post.std()),
        &t["output.posterior_std"].1,
        atol,
        rtol,
    );
    let z = post
        .sample_with(tensor::<4>(&t, "input.sample_noise", &dev))
        .unwrap();
    assert_close(
        "sample",
        &values(z.clone()),
        &t["output.posterior_sample"].1,
        atol,
        rtol,
    );
    let dec = vae.decode(z).unwrap();
    assert_close(
        "decoded_sample",
        &values(dec),
        &t["output.decoded_sample"].1,
        atol,
        rtol,
    );
    let dec_mean = vae.decode(post.mode()).unwrap();
    assert_close(
        "decoded_mean",
        &values(dec_mean),
        &t["output.decoded_mean"].1,
        atol,
        rtol,
    );
}

#[test]
fn autoencoder_kl_rejects_bad_inputs_and_checkpoints() {
    let dev = test_device();
    let vae = AutoencoderKL::from_pretrained(fixture("diffusers_vae_pretrained"), &dev).unwrap();
    let odd = burn::tensor::Tensor::<4>::zeros([1, 3, 63, 64], &dev);
    assert!(matches!(vae.encode(odd), Err(VtonError::Shape { .. })));
    let wrong_c = burn::tensor::Tensor::<4>::zeros([1, 3, 8, 8], &dev);
    assert!(matches!(vae.decode(wrong_c), Err(VtonError::Shape { .. })));
    // The fixture's safetensors holds inputs and outputs besides `weights.*`: strict
    // loading names the unexpected keys; after selecting the weights it loads.
    let cfg: vton_core::models::AutoencoderKLConfig = serde_json::from_str(
        &std::fs::read_to_string(fixture("diffusers_vae_pretrained/config.json")).unwrap(),
    )
    .unwrap();
    let raw = Checkpoint::open(fixture("diffusers_vae.safetensors")).unwrap();
    match AutoencoderKL::load(&cfg, &raw, &dev, false) {
        Err(VtonError::MissingWeights { keys, .. }) => {
            assert!(keys.starts_with("encoder."), "{keys}")
        }
        other => panic!("expected MissingWeights, got {other:?}"),
    }
    let ck = raw
        .clone()
        .map_keys(|k| k.strip_prefix("weights.").map(String::from));
    assert!(AutoencoderKL::load(&cfg, &ck, &dev, false).is_ok());
    let extra = raw.map_keys(|k| {
        Some(
            k.strip_prefix("weights.")
                .map(String::from)
                .unwrap_or(k.to_string()),
        )
    });
    match AutoencoderKL::load(&cfg, &extra, &dev, false) {
        Err(VtonError::UnexpectedWeights { keys, .. }) => {
            assert!(keys.contains("input.x"), "{keys}")
        }
        other => panic!("expected UnexpectedWeights, got {other:?}"),
    }
    // A config whose widths disagree with the weights names the key and both shapes.
    let mut wide = cfg.clone();
    wide.block_out_channels = vec![32, 128];
    match AutoencoderKL::load(&wide, &ck, &dev, false) {
        Err(VtonError::WeightShape { key, .. }) => assert!(key.starts_with("encoder."), "{key}"),
        other => panic!("expected WeightShape, got {other:?}"),
    }
    // A partial load reports what it zero-filled.
    let dropped = ck.map_keys(|k| (!k.starts_with("decoder.conv_out")).then(|| k.to_string()));
    let (_, report) = AutoencoderKL::load(&cfg, &dropped, &dev, true).unwrap();
    assert_eq!(
        report.missing,
        vec!["decoder.conv_out.weight", "decoder.conv_out.bias"]
    );
}

fn unet_case(case: &str) {
    let dev = test_device();
    let t = read_safetensors(&fixture(&format!("{case}.safetensors")));
    let (atol, rtol) = fixture_tolerance(&format!("{case}.json"));
    let unet = UNet2DConditionModel::from_pretrained(fixture(&format!("{case}_pretrained")), &dev)
        .unwrap();
    let sample = tensor::<4>(&t, "input.sample", &dev);
    let ehs = tensor::<3>(&t, "input.encoder_hidden_states", &dev);
    let emb = unet.time_embedding(&[999.0], &dev);
    assert_close(
        "time_embedding",
        &values(emb),
        &t["output.intermediate.time_embedding_t999"].1,
        atol,
        rtol,
    );
    let proj = vton_core::models::unet::timestep_embedding(&[999.0], 16, true, 0.0);
    assert_close(
        "time_proj",
        &proj,
        &t["output.intermediate.time_proj_t999"].1,
        atol,
        rtol,
    );
    for (ts, key) in [(999i64, "output.sample_t999"), (1, "output.sample_t1")] {
        let out = unet.forward(sample.clone(), ts, Some(&ehs)).unwrap();
        assert_close(
            &format!("{case} t={ts}"),
            &values(out),
            &t[key].1,
            atol,
            rtol,
        );
    }
    let tv: Vec<f64> = t["input.timesteps_vec"]
        .1
        .iter()
        .map(|&v| v as f64)
        .collect();
    let out = unet.forward(sample.clone(), tv, Some(&ehs)).unwrap();
    assert_close(
        &format!("{case} tvec"),
        &values(out),
        &t["output.sample_tvec"].1,
        atol,
        rtol,
    );
    // Without encoder states the cross-attention is skipped: a different, finite output.
    let free = values(unet.forward(sample.clone(), 999i64, None).unwrap());
    assert!(free.iter().all(|v| v.is_finite()));
    assert!(free
        .iter()
        .zip(&t["output.sample_t999"].1)
        .any(|(a, b)| (a - b).abs() > 1e-3));
    // Wrong shapes are typed errors.
    let bad = burn::tensor::Tensor::<4>::zeros([2, 3, 16, 16], &dev);
    assert!(matches!(
        unet.forward(bad, 1i64, Some(&ehs)),
        Err(VtonError::Shape { .. })
    ));
    assert!(matches!(
        unet.forward(sample, vec![1.0, 2.0, 3.0], Some(&ehs)),
        Err(VtonError::Shape { .. })
    ));
}

#[test]
fn unet_inpainting_9ch_matches_diffusers() {
    unet_case("diffusers_unet_inpaint");
}

#[test]
fn unet_text_4ch_matches_diffusers() {
    unet_case("diffusers_unet_text");
}

#[test]
fn models_load_from_every_published_layout() {
    let dev = test_device();
    let t = read_safetensors(&fixture("diffusers_vae.safetensors"));
    let x = tensor::<4>(&t, "input.x", &dev);
    let want = &t["output.posterior_mean"].1;
    // torch.save'd .bin (zip pickle), read without running code.
    let bin = AutoencoderKL::from_pretrained(fixture("diffusers_vae_bin"), &dev).unwrap();
    assert_close(
        "bin",
        &values(bin.encode(x.clone()).unwrap().mean),
        want,
        1e-4,
        1e-4,
    );
    // A pipeline folder (model_index.json + vae/ + unet/ + scheduler/).
    let pipe = AutoencoderKL::from_pretrained(fixture("tiny_inpaint_pipeline"), &dev).unwrap();
    assert_close(
        "pipeline",
        &values(pipe.encode(x.clone()).unwrap().mean),
        want,
        1e-4,
        1e-4,
    );
    // One safetensors file with the whole pipeline under vae./unet. prefixes.
    let cfg: vton_core::models::AutoencoderKLConfig = serde_json::from_str(
        &std::fs::read_to_string(fixture("diffusers_vae_pretrained/config.json")).unwrap(),
    )
    .unwrap();
    let single = fixture("tiny_pipeline_single_file.safetensors");
    let v = AutoencoderKL::from_single_file(&single, Some(&cfg), &dev).unwrap();
    assert_close(
        "single",
        &values(v.encode(x).unwrap().mean),
        want,
        1e-4,
        1e-4,
    );
    let ucfg: vton_core::models::UNet2DConditionConfig = serde_json::from_str(
        &std::fs::read_to_string(fixture("diffusers_unet_inpaint_pretrained/config.json")).unwrap(),
    )
    .unwrap();
    let u = UNet2DConditionModel::from_single_file(&single, Some(&ucfg), &dev).unwrap();
    let tu = read_safetensors(&fixture("diffusers_unet_inpaint.safetensors"));
    let out = u
        .forward(
            tensor(&tu, "input.sample", &dev),
            999i64,
            Some(&tensor(&tu, "input.encoder_hidden_states", &dev)),
        )
        .unwrap();
    assert_close(
        "single unet",
        &values(out),
        &tu["output.sample_t999"].1,
        1e-4,
        1e-4,
    );
}

#[test]
fn encoder_features_and_decoder_skips() {
    let dev = test_device();
    let t = read_safetensors(&fixture("diffusers_vae.safetensors"));
    let vae = AutoencoderKL::from_pretrained(fixture("diffusers_vae_pretrained"), &dev).unwrap();
    let (post, feats) = vae
        .encode_with_features(tensor::<4>(&t, "input.x", &dev), true)
        .unwrap();
    // conv_in output, then one per down block: 32x64x64 (conv_in), 32x32x32, 64x32x32.
    let dims: Vec<[usize; 4]> = feats.down.iter().map(|f| f.dims()).collect();
    assert_eq!(
        dims,
        vec![[1, 32, 64, 64], [1, 32, 32, 32], [1, 64, 32, 32]]
    );
    assert_close(
        "mean",
        &values(post.mean.clone()),
        &t["output.posterior_mean"].1,
        1e-4,
        1e-4,
    );
    // Zero skips change nothing; non-zero skips at the coarsest up block do.
    let z = post.mode();
    let zero = vec![burn::tensor::Tensor::<4>::zeros([1, 64, 32, 32], &dev)];
    let plain = values(vae.decode(z.clone()).unwrap());
    assert_eq!(
        values(vae.decode_with_skips(z.clone(), Some(&zero)).unwrap()),
        plain
    );
    let ones = vec![burn::tensor::Tensor::<4>::ones([1, 64, 32, 32], &dev)];
    assert_ne!(
        values(vae.decode_with_skips(z, Some(&ones)).unwrap()),
        plain
    );
}

#[test]
fn bad_checkpoint_files_are_typed_errors() {
    let marker = std::path::Path::new("/tmp/vton_pwned");
    let _ = std::fs::remove_file(marker);
    // A pickle whose REDUCE calls os.system: refused, and nothing ran.
    match Checkpoint::open(fixture("malicious.pth")) {
        Err(VtonError::Checkpoint { message, .. }) => {
            assert!(message.contains("no tensors"), "{message}")
        }
        other => panic!("expected Checkpoint error, got {other:?}"),
    }
    assert!(!marker.exists(), "the pickle's code ran");
    // Truncated safetensors, a JSON file, a missing file.
    assert!(matches!(
        Checkpoint::open(fixture("truncated.safetensors")),
        Err(VtonError::Checkpoint { .. })
    ));
    assert!(matches!(
        Checkpoint::open(fixture("diffusers_vae.json")),
        Err(VtonError::Checkpoint { .. })
    ));
    assert!(matches!(
        Checkpoint::open(fixture("nope.pth")),
        Err(VtonError::FileNotFound { .. })
    ));
}
