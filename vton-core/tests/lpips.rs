//! LPIPS parity against `tests/fixtures/metrics` (values produced by lpips 0.1.4 and
//! torchmetrics 1.9.0 themselves, on width-reduced random torchvision backbones with random
//! lin layers, see the fixture README). Every value is checked with
//! |got - ref| <= 1e-6 + 1e-4 |ref| (the fixture's `tolerance.lpips`): the distances of the
//! 8 pairs for alex, squeeze and vgg on [-1, 1] inputs (`m1p1`, = `01_normalize`), the
//! per-tap terms, torchmetrics' eps placement, HR-VITON's 128x128 alex setting, the
//! `[0, 1]`-without-normalize trap, and the alex tap feature maps of pair 6. Also: the
//! bundled lpips v0.1 lin layers (full-width shapes, equal to the wheel's `.pth`), the
//! width-mismatch error, and the input / checkpoint errors.

mod common;

use std::collections::HashMap;

use burn::tensor::{Tensor, TensorData};
use vton_core::metrics::lpips::{Lpips, LpipsNet, LpipsNormalization};
use vton_core::weights::Checkpoint;
use vton_core::VtonError;

const ATOL: f64 = 1e-6;
const RTOL: f64 = 1e-4;

type F64Tensors = HashMap<String, (Vec<usize>, Vec<f64>)>;

struct Fixture {
    json: serde_json::Value,
    tensors: F64Tensors,
}

fn fixture() -> Fixture {
    let text = std::fs::read_to_string(common::fixture("metrics/metrics_pairs.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let tol = &json["tolerance"]["lpips"];
    assert_eq!(tol["atol"].as_f64(), Some(ATOL));
    assert_eq!(tol["rtol"].as_f64(), Some(RTOL));
    let tensors =
        common::read_safetensors_f64(&common::fixture("metrics/metrics_pairs.safetensors"));
    Fixture { json, tensors }
}

fn weights_file(net: LpipsNet) -> std::path::PathBuf {
    common::fixture(&format!(
        "metrics/metrics_weights_lpips_{}.safetensors",
        net.name()
    ))
}

/// The fixture's backbone and lin layers, split out of one file by their prefixes.
fn fixture_model(net: LpipsNet, dev: &burn::tensor::Device) -> Lpips {
    let ck = Checkpoint::open(weights_file(net)).unwrap();
    let root = format!("lpips_{}.", net.name());
    let backbone_prefix = format!("{root}backbone.");
    let backbone = ck
        .clone()
        .map_keys(|k| k.strip_prefix(&backbone_prefix).map(str::to_string));
    let lin = ck.map_keys(|k| {
        let rest = k.strip_prefix(&root)?;
        if let Some(l) = rest.strip_prefix("lin.") {
            Some(l.to_string())
        } else {
            rest.starts_with("scaling_layer.").then(|| rest.to_string())
        }
    });
    Lpips::from_checkpoints(&backbone, &lin, net, dev).unwrap()
}

/// An HxWx3 uint8 image as 1x3xHxW float32, mapped by `f` (applied to v / 255 in f32).
fn image(
    t: &F64Tensors,
    key: &str,
    f: impl Fn(f32) -> f32,
    dev: &burn::tensor::Device,
) -> Tensor<4> {
    let (shape, v) = t.get(key).unwrap_or_else(|| panic!("fixture has no {key}"));
    let [h, w, c] = shape[..] else {
        panic!("{key}: {shape:?}")
    };
    let mut out = vec![0f32; c * h * w];
    for y in 0..h {
        for x in 0..w {
            for ch in 0..c {
                out[ch * h * w + y * w + x] = f(v[(y * w + x) * c + ch] as f32 / 255.0);
            }
        }
    }
    Tensor::from_data(TensorData::new(out, [1, c, h, w]), dev)
}

fn m1p1(x: f32) -> f32 {
    x * 2.0 - 1.0
}

/// Checks one value; returns its relative error.
fn check(what: &str, got: f64, want: f64) -> f64 {
    let err = (got - want).abs();
    assert!(
        err <= ATOL + RTOL * want.abs(),
        "{what}: got {got:e}, want {want:e} (|diff| {err:e} > {ATOL:e} + {RTOL:e}*|ref|)"
    );
    err / want.abs().max(1e-30)
}

fn metric(p: &serde_json::Value, key: &str) -> f64 {
    p["metrics"][key]
        .as_f64()
        .unwrap_or_else(|| panic!("pair {} has no {key}", p["index"]))
}

/// Relative errors above `ATOL / |ref|` only mean something for values well above atol.
fn rel_if_large(got: f64, want: f64) -> Option<f64> {
    (want.abs() > 1e-3).then(|| (got - want).abs() / want.abs())
}

#[test]
fn lpips_pairs_match_lpips_and_torchmetrics() {
    let dev = common::test_device();
    let fx = fixture();
    let pairs = fx.json["pairs"].as_array().unwrap();
    assert_eq!(pairs.len(), 8);
    let mut report = Vec::new();
    for net in LpipsNet::all() {
        let model = fixture_model(net, &dev);
        let tm = fixture_model(net, &dev).with_normalization(LpipsNormalization::Torchmetrics);
        let mut worst = 0f64;
        let mut worst_tm = 0f64;
        for p in pairs {
            let i = p["index"].as_u64().unwrap();
            let a = image(&fx.tensors, &format!("pair.{i}.a_u8"), m1p1, &dev);
            let b = image(&fx.tensors, &format!("pair.{i}.b_u8"), m1p1, &dev);
            let what = format!("pair {i} lpips.{}", net.name());

            let layers = model.distance_per_layer(a.clone(), b.clone()).unwrap();
            let dist = model.distance(a.clone(), b.clone()).unwrap();
            assert_eq!(dist.len(), 1);
            let want = metric(p, &format!("lpips.{}.m1p1", net.name()));
            check(&format!("{what}.m1p1"), dist[0] as f64, want);
            check(
                &format!("{what}.01_normalize"),
                dist[0] as f64,
                metric(p, &format!("lpips.{}.01_normalize", net.name())),
            );
            worst = worst.max(rel_if_large(dist[0] as f64, want).unwrap_or(0.0));

            let want_layers: Vec<f64> = p["details"]
                [format!("lpips_{}_per_layer_m1p1", net.name())]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
            assert_eq!(layers[0].len(), want_layers.len(), "{what}: tap count");
            assert_eq!(layers[0].len(), model.tap_channels().len());
            for (k, (&g, &w)) in layers[0].iter().zip(&want_layers).enumerate() {
                check(&format!("{what} tap {k}"), g as f64, w);
                worst = worst.max(rel_if_large(g as f64, w).unwrap_or(0.0));
            }

            let got_tm = tm.distance(a, b).unwrap()[0] as f64;
            let want_tm = metric(p, &format!("lpips.{}.torchmetrics_1_9_m1p1", net.name()));
            check(&format!("{what}.torchmetrics_1_9_m1p1"), got_tm, want_tm);
            worst_tm = worst_tm.max(rel_if_large(got_tm, want_tm).unwrap_or(0.0));
            // The two conventions differ by less than the tolerance on some pairs, so the
            // difference itself is checked too (float32 noise is ~1e-7 here).
            let got_gap = got_tm - dist[0] as f64;
            let want_gap = want_tm - want;
            assert!(
                (got_gap - want_gap).abs() <= 5e-7,
                "{what}: torchmetrics - lpips = {got_gap:e}, reference {want_gap:e}"
            );
        }
        report.push(format!(
            "{}: max rel err {worst:.2e} (torchmetrics variant {worst_tm:.2e})",
            net.name()
        ));
    }
    eprintln!("{}", report.join("\n"));
}

#[test]
fn lpips_alex_hrviton_128_and_trap() {
    let dev = common::test_device();
    let fx = fixture();
    let model = fixture_model(LpipsNet::Alex, &dev);
    for p in fx.json["pairs"].as_array().unwrap() {
        let i = p["index"].as_u64().unwrap();
        // HR-VITON: ToTensor, then Normalize(0.5, 0.5).
        let norm = |x: f32| (x - 0.5) / 0.5;
        let a = image(&fx.tensors, &format!("pair.{i}.a_128_u8"), norm, &dev);
        let b = image(&fx.tensors, &format!("pair.{i}.b_128_u8"), norm, &dev);
        assert_eq!(a.dims(), [1, 3, 128, 128]);
        let got = model.distance(a, b).unwrap()[0] as f64;
        check(
            &format!("pair {i} hrviton_128"),
            got,
            metric(p, "lpips.alex.hrviton_128"),
        );

        // [0, 1] images fed without normalize=True: accepted, and a different value.
        let a = image(&fx.tensors, &format!("pair.{i}.a_u8"), |x| x, &dev);
        let b = image(&fx.tensors, &format!("pair.{i}.b_u8"), |x| x, &dev);
        let got = model.distance(a, b).unwrap()[0] as f64;
        check(
            &format!("pair {i} 01_without_normalize_trap"),
            got,
            metric(p, "lpips.alex.01_without_normalize_trap"),
        );
    }
}

#[test]
fn lpips_alex_debug_feature_maps() {
    let dev = common::test_device();
    let fx = fixture();
    let d = fx.json["debug_pair"].as_u64().unwrap();
    let model = fixture_model(LpipsNet::Alex, &dev);
    let a = image(&fx.tensors, &format!("pair.{d}.a_u8"), m1p1, &dev);
    let feats = model.features(a).unwrap();
    assert_eq!(feats.len(), 5);
    let mut count = 0;
    for (k, f) in feats.into_iter().enumerate() {
        let (shape, want) = &fx.tensors[&format!("pair.{d}.debug.lpips_alex.a.layer{k}")];
        assert_eq!(&f.dims()[1..], &shape[..], "tap {k} shape");
        assert_eq!(f.dims()[1], model.tap_channels()[k]);
        let got = common::values(f);
        for (j, (&g, &w)) in got.iter().zip(want).enumerate() {
            // Feature maps are O(1): the same tolerance, elementwise.
            assert!(
                (g as f64 - w).abs() <= ATOL + RTOL * w.abs(),
                "tap {k} element {j}: got {g}, want {w}"
            );
        }
        count += got.len();
    }
    assert!(count > 0);
}

#[test]
fn lpips_batch_gives_per_image_values() {
    let dev = common::test_device();
    let fx = fixture();
    let model = fixture_model(LpipsNet::Squeeze, &dev);
    // Pair 6 (64x48) three times: as stored, swapped, and against itself.
    let a = image(&fx.tensors, "pair.6.a_u8", m1p1, &dev);
    let b = image(&fx.tensors, "pair.6.b_u8", m1p1, &dev);
    let x0 = Tensor::cat(vec![a.clone(), b.clone(), a.clone()], 0);
    let x1 = Tensor::cat(vec![b.clone(), a.clone(), a], 0);
    let d = model.distance(x0, x1).unwrap();
    let want = metric(&fx.json["pairs"][6], "lpips.squeeze.m1p1");
    assert_eq!(d.len(), 3);
    check("batch 0", d[0] as f64, want);
    check("batch 1 (swapped)", d[1] as f64, want);
    assert_eq!(d[2], 0.0, "identical images");
}

#[test]
fn bundled_lin_layers_are_lpips_v0_1() {
    let full: [(LpipsNet, &[usize]); 3] = [
        (LpipsNet::Alex, &[64, 192, 384, 256, 256]),
        (LpipsNet::Squeeze, &[64, 128, 256, 384, 384, 512, 512]),
        (LpipsNet::Vgg, &[64, 128, 256, 512, 512]),
    ];
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/lpips");
    for (net, widths) in full {
        let bundled = net.bundled_lin().unwrap();
        assert_eq!(bundled.len(), widths.len(), "{net}");
        // The embedded safetensors copy equals the wheel's .pth, key by key.
        let original = Checkpoint::open(dir.join(format!("{}.pth", net.name()))).unwrap();
        assert_eq!(original.len(), widths.len());
        for (k, &c) in widths.iter().enumerate() {
            let key = format!("lin{k}.model.1.weight");
            assert_eq!(bundled.shape(&key), Some(&[1, c, 1, 1][..]), "{net} {key}");
            assert_eq!(original.shape(&key), Some(&[1, c, 1, 1][..]));
            let v = bundled.read_f32(&key).unwrap();
            assert_eq!(v, original.read_f32(&key).unwrap(), "{net} {key}");
            assert!(v.iter().all(|&x| x >= 0.0) && v.iter().any(|&x| x > 0.0));
        }
    }
}

fn expect_config_error(r: vton_core::Result<Lpips>, needle: &str) {
    match r {
        Err(VtonError::Config { what, message }) => {
            assert!(message.contains(needle), "{what}: {message}");
        }
        Err(e) => panic!("expected a Config error, got {e}"),
        Ok(_) => panic!("expected a Config error, got a model"),
    }
}

#[test]
fn width_mismatch_and_wrong_checkpoints_are_errors() {
    let dev = vton_core::default_device();
    for net in LpipsNet::all() {
        // The fixture file holds both parts under prefixes: with lin None its own lin
        // layers are found and used (a backbone-only file gets the bundled ones: see
        // full_width_torchvision_checkpoint_with_the_bundled_lin_layers).
        let own = Lpips::from_checkpoint(weights_file(net), net, None, &dev).unwrap();
        let fixture_model = fixture_model(net, &dev);
        let t = fixture().tensors;
        let x = || image(&t, "pair.6.a_u8", m1p1, &dev);
        let y = || image(&t, "pair.6.b_u8", m1p1, &dev);
        assert_eq!(
            own.distance(x(), y()).unwrap(),
            fixture_model.distance(x(), y()).unwrap()
        );
        // The reduced backbone with the bundled full-width lin layers.
        let ck = Checkpoint::open(weights_file(net)).unwrap();
        let prefix = format!("lpips_{}.backbone.", net.name());
        let backbone = ck.map_keys(|k| k.strip_prefix(&prefix).map(str::to_string));
        let r = Lpips::from_checkpoints(&backbone, &net.bundled_lin().unwrap(), net, &dev);
        expect_config_error(r, "another width of the backbone");
    }

    // Lin layers of another net (squeeze has 7, the alex backbone 5 taps).
    let ck = Checkpoint::open(weights_file(LpipsNet::Alex)).unwrap();
    let alex = ck.map_keys(|k| k.strip_prefix("lpips_alex.backbone.").map(str::to_string));
    let squeeze_lin = Checkpoint::open(weights_file(LpipsNet::Squeeze))
        .unwrap()
        .map_keys(|k| k.strip_prefix("lpips_squeeze.lin.").map(str::to_string));
    expect_config_error(
        Lpips::from_checkpoints(&alex, &squeeze_lin, LpipsNet::Alex, &dev),
        "7 lin layers for the 5 taps",
    );
    // No lin layers at all.
    let r = Lpips::from_checkpoints(&alex, &Checkpoint::default(), LpipsNet::Alex, &dev);
    assert!(matches!(r, Err(VtonError::MissingWeights { .. })), "{r:?}");

    // Backbones of the wrong network: the first conv's kernel does not fit.
    let squeeze = Checkpoint::open(weights_file(LpipsNet::Squeeze))
        .unwrap()
        .map_keys(|k| {
            k.strip_prefix("lpips_squeeze.backbone.")
                .map(str::to_string)
        });
    let vgg = Checkpoint::open(weights_file(LpipsNet::Vgg))
        .unwrap()
        .map_keys(|k| k.strip_prefix("lpips_vgg.backbone.").map(str::to_string));
    for (ck, net) in [
        (&squeeze, LpipsNet::Alex),
        (&vgg, LpipsNet::Alex),
        (&alex, LpipsNet::Squeeze),
        (&alex, LpipsNet::Vgg),
    ] {
        let r = Lpips::from_checkpoints(ck, &squeeze_lin, net, &dev);
        match r {
            Err(VtonError::WeightShape {
                key,
                expected,
                found,
            }) => {
                assert_eq!(key, "features.0.weight", "{net}");
                assert_ne!(expected, found);
            }
            other => panic!("{net} from another backbone: {other:?}"),
        }
    }
    // Squeeze's features given as VGG: conv 0 fits (3x3), the Fire keys are no VGG
    // layer and fail the strict load.
    let r = Lpips::from_checkpoints(&squeeze, &squeeze_lin, LpipsNet::Vgg, &dev);
    assert!(
        matches!(r, Err(VtonError::UnexpectedWeights { .. })),
        "squeeze features as vgg: {r:?}"
    );
    // A stray features key is an error (strict load of `features.*`).
    let extra = alex.clone().overlay(
        Checkpoint::open(weights_file(LpipsNet::Alex))
            .unwrap()
            .map_keys(|k| {
                (k == "lpips_alex.backbone.features.10.bias").then(|| "features.13.bias".into())
            }),
    );
    let alex_lin = Checkpoint::open(weights_file(LpipsNet::Alex))
        .unwrap()
        .map_keys(|k| k.strip_prefix("lpips_alex.lin.").map(str::to_string));
    let r = Lpips::from_checkpoints(&extra, &alex_lin, LpipsNet::Alex, &dev);
    assert!(
        matches!(r, Err(VtonError::UnexpectedWeights { .. })),
        "{r:?}"
    );
    // Without the scaling_layer keys, lpips' constants are used: same model as the fixture.
    let plain = Lpips::from_checkpoints(&alex, &alex_lin, LpipsNet::Alex, &dev);
    assert!(plain.is_ok());
}

#[test]
fn lpips_state_dict_through_from_checkpoint() {
    // A whole lpips.LPIPS state dict (net.slice<k>.<N>.*, lin<k>.model.1.weight,
    // scaling_layer.*), written from the fixture's tensors, loads with its own lin layers.
    let dev = vton_core::default_device();
    let fx = fixture();
    let src = common::read_safetensors(&weights_file(LpipsNet::Alex));
    let slice_of = |n: usize| match n {
        0..=1 => 1,
        2..=4 => 2,
        5..=7 => 3,
        8..=9 => 4,
        _ => 5,
    };
    let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> = Vec::new();
    for (k, (shape, v)) in &src {
        let rest = k.strip_prefix("lpips_alex.").unwrap();
        let key = if let Some(f) = rest.strip_prefix("backbone.features.") {
            let n: usize = f.split('.').next().unwrap().parse().unwrap();
            format!("net.slice{}.{f}", slice_of(n))
        } else if let Some(l) = rest.strip_prefix("lin.") {
            // state_dict() lists the lin layers twice: lin<k> and the ModuleList lins.<k>.
            let k = l.strip_prefix("lin").unwrap();
            tensors.push((format!("lins.{k}"), shape.clone(), v.clone()));
            l.to_string()
        } else {
            rest.to_string()
        };
        tensors.push((key, shape.clone(), v.clone()));
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lpips_alex_state_dict.safetensors");
    write_safetensors(&path, &tensors);
    let model = Lpips::from_checkpoint(&path, LpipsNet::Alex, None, &dev).unwrap();
    assert_eq!(model.tap_channels(), vec![8, 24, 48, 32, 32]);
    let p = &fx.json["pairs"][6];
    let a = image(&fx.tensors, "pair.6.a_u8", m1p1, &dev);
    let b = image(&fx.tensors, "pair.6.b_u8", m1p1, &dev);
    let got = model.distance(a, b).unwrap()[0] as f64;
    check("state dict pair 6", got, metric(p, "lpips.alex.m1p1"));

    // Only the ModuleList names, and the lin layers given as a separate file.
    let only_lins: Vec<_> = tensors
        .iter()
        .filter(|(k, _, _)| !k.starts_with("lin") || k.starts_with("lins."))
        .cloned()
        .collect();
    write_safetensors(&path, &only_lins);
    let ck = Checkpoint::open(&path).unwrap();
    let model = Lpips::from_checkpoints(&ck, &ck, LpipsNet::Alex, &dev).unwrap();
    let a = image(&fx.tensors, "pair.6.a_u8", m1p1, &dev);
    let b = image(&fx.tensors, "pair.6.b_u8", m1p1, &dev);
    let got = model.distance(a, b).unwrap()[0] as f64;
    check(
        "state dict (lins.<k>) pair 6",
        got,
        metric(p, "lpips.alex.m1p1"),
    );
    let lin_path = dir.path().join("lin.safetensors");
    let lin_only: Vec<_> = tensors
        .iter()
        .filter(|(k, _, _)| k.starts_with("lin") && !k.starts_with("lins."))
        .cloned()
        .collect();
    write_safetensors(&lin_path, &lin_only);
    let model = Lpips::from_checkpoint(&path, LpipsNet::Alex, Some(&lin_path), &dev).unwrap();
    let a = image(&fx.tensors, "pair.6.a_u8", m1p1, &dev);
    let b = image(&fx.tensors, "pair.6.b_u8", m1p1, &dev);
    let got = model.distance(a, b).unwrap()[0] as f64;
    check(
        "state dict + lin file pair 6",
        got,
        metric(p, "lpips.alex.m1p1"),
    );
}

fn write_safetensors(path: &std::path::Path, tensors: &[(String, Vec<usize>, Vec<f32>)]) {
    let mut header = serde_json::Map::new();
    let mut data = Vec::new();
    for (k, shape, v) in tensors {
        let start = data.len();
        for x in v {
            data.extend_from_slice(&x.to_le_bytes());
        }
        header.insert(
            k.clone(),
            serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [start, data.len()]}),
        );
    }
    let mut h = serde_json::to_vec(&serde_json::Value::Object(header)).unwrap();
    h.resize(h.len().next_multiple_of(8), b' ');
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend(h);
    out.extend(data);
    std::fs::write(path, out).unwrap();
}

#[test]
fn input_errors() {
    let dev = vton_core::default_device();
    let model = fixture_model(LpipsNet::Alex, &dev);
    let zeros = |n: usize, c: usize, h: usize, w: usize| Tensor::<4>::zeros([n, c, h, w], &dev);

    // Shapes differ.
    let r = model.distance(zeros(1, 3, 64, 48), zeros(1, 3, 64, 64));
    assert!(matches!(r, Err(VtonError::SizeMismatch { .. })), "{r:?}");
    let r = model.distance(zeros(2, 3, 64, 64), zeros(1, 3, 64, 64));
    assert!(matches!(r, Err(VtonError::SizeMismatch { .. })), "{r:?}");
    // Not RGB, or empty.
    let r = model.distance(zeros(1, 1, 64, 64), zeros(1, 1, 64, 64));
    assert!(matches!(r, Err(VtonError::Shape { .. })), "{r:?}");
    let r = model.distance(zeros(0, 3, 64, 64), zeros(0, 3, 64, 64));
    assert!(matches!(r, Err(VtonError::Shape { .. })), "{r:?}");
    // Too small for alex: 31 is the minimum, in either dimension.
    assert_eq!(model.min_input_size(), 31);
    for (h, w) in [(30, 64), (64, 30), (8, 8)] {
        match model.distance(zeros(1, 3, h, w), zeros(1, 3, h, w)) {
            Err(VtonError::InvalidArgument { message, .. }) => {
                assert!(message.contains("at least 31x31"), "{message}")
            }
            other => panic!("{h}x{w}: {other:?}"),
        }
        assert!(model.features(zeros(1, 3, h, w)).is_err());
    }
    let d = model.distance(zeros(1, 3, 31, 31), zeros(1, 3, 31, 31).add_scalar(0.5));
    assert!(d.unwrap()[0].is_finite());
    // Values outside [-1, 1] are accepted (lpips does not check).
    let d = model.distance(zeros(1, 3, 40, 40).add_scalar(3.0), zeros(1, 3, 40, 40));
    assert!(d.unwrap()[0].is_finite());
}

#[test]
fn minimum_sizes_and_tap_shapes() {
    let dev = vton_core::default_device();
    for (net, min) in [
        (LpipsNet::Alex, 31),
        (LpipsNet::Squeeze, 17),
        (LpipsNet::Vgg, 16),
    ] {
        let model = fixture_model(net, &dev);
        assert_eq!(model.min_input_size(), min, "{net}");
        assert!(model.backbone.tap_lengths(min - 1).is_none());
        // The backbone's shapes are what the size rule predicts, at and above the minimum.
        for (h, w) in [(min, min), (min + 1, min + 3), (min + 6, min + 5), (64, 48)] {
            let x = Tensor::<4>::zeros([1, 3, h, w], &dev).add_scalar(0.1);
            let feats = model.features(x.clone()).unwrap();
            let hs = model.backbone.tap_lengths(h).unwrap();
            let ws = model.backbone.tap_lengths(w).unwrap();
            for (k, f) in feats.iter().enumerate() {
                assert_eq!(
                    f.dims(),
                    [1, model.tap_channels()[k], hs[k], ws[k]],
                    "{net} {h}x{w} tap {k}"
                );
            }
            let d = model
                .distance(x.clone(), x.clone().mul_scalar(-1.0))
                .unwrap();
            assert!(d[0].is_finite() && d[0] > 0.0, "{net} {h}x{w}: {d:?}");
        }
        let small = Tensor::<4>::zeros([1, 3, min - 1, min], &dev);
        assert!(matches!(
            model.distance(small.clone(), small),
            Err(VtonError::InvalidArgument { .. })
        ));
    }
}

#[test]
fn names_and_thread_safety() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Lpips>();
    for net in LpipsNet::all() {
        assert_eq!(net.name().parse::<LpipsNet>().unwrap(), net);
        assert_eq!(
            LpipsNet::from_name(&net.to_string().to_uppercase()).unwrap(),
            net
        );
    }
    assert!("resnet".parse::<LpipsNet>().is_err());
    assert_eq!(LpipsNormalization::default(), LpipsNormalization::Lpips);
    let dev = vton_core::default_device();
    let m = fixture_model(LpipsNet::Vgg, &dev);
    assert_eq!(m.net(), LpipsNet::Vgg);
    assert_eq!(m.tap_channels(), vec![8, 16, 32, 64, 64]);
    assert_eq!(
        fixture_model(LpipsNet::Squeeze, &dev).tap_channels(),
        vec![8, 16, 32, 48, 48, 64, 64]
    );
}

/// The path users take: a full-width torchvision checkpoint saved by `torch.save` (zip
/// format, classifier included: ignored) and the lpips v0.1 lin layers vton bundles,
/// against lpips 0.1.4 with its own bundled layers
/// (scripts/fixtures/make_lpips_fullwidth.py; random squeezenet1_1 weights).
#[test]
fn full_width_torchvision_checkpoint_with_the_bundled_lin_layers() {
    let dev = common::test_device();
    let t = fixture().tensors;
    let refs: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(common::fixture("metrics/lpips_fullwidth_squeeze.json")).unwrap(),
    )
    .unwrap();
    let model = Lpips::from_checkpoint(
        common::fixture("metrics/squeezenet1_1-random.pth"),
        LpipsNet::Squeeze,
        None,
        &dev,
    )
    .unwrap();
    assert_eq!(model.tap_channels(), vec![64, 128, 256, 384, 384, 512, 512]);
    for (i, want) in refs["lpips_squeeze_m1p1"].as_object().unwrap() {
        let a = image(&t, &format!("pair.{i}.a_u8"), m1p1, &dev);
        let b = image(&t, &format!("pair.{i}.b_u8"), m1p1, &dev);
        let got = model.distance(a, b).unwrap()[0] as f64;
        check(
            &format!("full-width squeeze, pair {i}"),
            got,
            want.as_f64().unwrap(),
        );
    }
}
