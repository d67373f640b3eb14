//! pytorch-fid 0.3.0's FID InceptionV3 against the package itself (tests/fixtures/metrics,
//! `metrics_fid.*`, width-reduced random weights in `metrics_weights_fid_inception`): the
//! resized input, block outputs, pool3 features of both image sets; the checkpoint's key set,
//! wrong files and bad inputs.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use burn::tensor::{Device, Tensor, TensorData};
use common::{fixture, read_safetensors_f64, test_device, values};
use vton_core::models::inception::FidInceptionV3;
use vton_core::weights::Checkpoint;
use vton_core::VtonError;

type Tensors = HashMap<String, (Vec<usize>, Vec<f64>)>;

const PREFIX: &str = "fid_inception.";

fn weights_path() -> PathBuf {
    fixture("metrics/metrics_weights_fid_inception.safetensors")
}

fn fx() -> Tensors {
    read_safetensors_f64(&fixture("metrics/metrics_fid.safetensors"))
}

fn json() -> serde_json::Value {
    let text = std::fs::read_to_string(fixture("metrics/metrics_fid.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// `tolerance.features` of metrics_fid.json: (atol, rtol).
fn feature_tolerance() -> (f64, f64) {
    let j = json();
    let t = &j["tolerance"]["features"];
    (t["atol"].as_f64().unwrap(), t["rtol"].as_f64().unwrap())
}

fn get<'a>(t: &'a Tensors, key: &str) -> &'a (Vec<usize>, Vec<f64>) {
    t.get(key).unwrap_or_else(|| panic!("fixture has no {key}"))
}

/// Images `[N, H, W, 3]` uint8 -> `[N, 3, H, W]` float32 `u8 / 255` (ToTensor), rows
/// `start..start + count`.
fn images(t: &Tensors, key: &str, start: usize, count: usize, dev: &Device) -> Tensor<4> {
    let (s, v) = get(t, key);
    let (h, w) = (s[1], s[2]);
    let mut out = vec![0f32; count * 3 * h * w];
    for n in 0..count {
        for y in 0..h {
            for x in 0..w {
                for c in 0..3 {
                    let u = v[(((start + n) * h + y) * w + x) * 3 + c] as f32;
                    out[((n * 3 + c) * h + y) * w + x] = u / 255.0;
                }
            }
        }
    }
    Tensor::from_data(TensorData::new(out, [count, 3, h, w]), dev)
}

/// Max |got - want| and the worst ratio to `atol + rtol * |want|`.
fn compare(got: &[f32], want: &[f64], atol: f64, rtol: f64) -> (f64, f64) {
    assert_eq!(got.len(), want.len());
    got.iter()
        .zip(want)
        .fold((0.0f64, 0.0f64), |(m, r), (&g, &w)| {
            let d = (g as f64 - w).abs();
            (m.max(d), r.max(d / (atol + rtol * w.abs())))
        })
}

fn load(dev: &Device) -> FidInceptionV3 {
    FidInceptionV3::from_checkpoint(weights_path(), dev).unwrap()
}

#[test]
fn input_and_blocks_match_pytorch_fid() {
    let dev = test_device();
    let t = fx();
    let net = load(&dev);
    let x = images(&t, "fid.set1.images_u8", 0, 1, &dev);

    let input = values(net.preprocess(x.clone()).unwrap());
    let (shape, want) = get(&t, "fid.set1.image0_input_299");
    assert_eq!(shape, &[3, 299, 299]);
    let (d, _) = compare(&input, want, 0.0, 0.0);
    eprintln!("image0_input_299: max abs diff {d:.3e}");
    assert!(d <= 2e-6, "resized input off by {d}");

    let blocks = net.blocks(x).unwrap();
    assert_eq!(blocks.len(), 4);
    let block_channels = json()["intermediate"]["block_output_channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_u64().unwrap() as usize)
        .collect::<Vec<_>>();
    assert_eq!(net.block_channels().to_vec(), block_channels);
    let sizes = [73, 35, 17, 1];
    let (atol, rtol) = feature_tolerance();
    for (k, b) in blocks.into_iter().enumerate() {
        let [n, c, h, w] = b.dims();
        assert_eq!(
            [n, c, h, w],
            [1, block_channels[k], sizes[k], sizes[k]],
            "block {k}"
        );
        if k == 3 {
            continue;
        }
        let means = values(b.reshape([c, h * w]).mean_dim(1));
        let (_, want) = get(&t, &format!("fid.set1.image0_block{k}_channel_mean"));
        let (d, r) = compare(&means, want, atol, rtol);
        eprintln!("block{k} channel means: max abs diff {d:.3e}");
        assert!(r <= 1.0, "block {k} channel means off by {d}");
    }
}

#[test]
fn features_match_pytorch_fid() {
    let dev = test_device();
    let t = fx();
    let net = load(&dev);
    assert_eq!(
        net.feature_dim(),
        json()["weights"]["feature_dim"].as_u64().unwrap() as usize
    );
    let (atol, rtol) = feature_tolerance();
    let mut worst = 0.0f64;
    for set in ["set1", "set2"] {
        let (s, want) = get(&t, &format!("fid.{set}.features"));
        let n = s[0];
        assert_eq!(s[1], net.feature_dim());
        let x = images(&t, &format!("fid.{set}.images_u8"), 0, n, &dev);
        let [_, _, h, w] = x.dims();
        let start = Instant::now();
        let f = net.features(x).unwrap();
        assert_eq!(f.dims(), [n, net.feature_dim()]);
        let got = values(f);
        let secs = start.elapsed().as_secs_f64();
        eprintln!(
            "{set}: {n} images {h}x{w}: {:.1} ms per image",
            1e3 * secs / n as f64
        );
        let (d, r) = compare(&got, want, atol, rtol);
        eprintln!("{set} features: max abs diff {d:.3e} ({r:.3} of the tolerance)");
        assert!(r <= 1.0, "{set} features off by {d}");
        worst = worst.max(d);
    }
    eprintln!("features: max abs diff over both sets {worst:.3e}");
}

#[test]
fn batches_do_not_interact() {
    // One image alone gives the features it gets inside its batch.
    let dev = test_device();
    let t = fx();
    let net = load(&dev);
    let x = images(&t, "fid.set2.images_u8", 3, 1, &dev);
    let got = values(net.features(x).unwrap());
    let (_, want) = get(&t, "fid.set2.features");
    let d = net.feature_dim();
    let (atol, rtol) = feature_tolerance();
    let (diff, r) = compare(&got, &want[3 * d..4 * d], atol, rtol);
    assert!(r <= 1.0, "set2 image 3 alone off by {diff}");
}

#[test]
fn any_input_size_is_resized() {
    let dev = test_device();
    let net = load(&dev);
    let x = Tensor::<4>::full([2, 3, 5, 300], 0.5, &dev);
    let p = net.preprocess(x.clone()).unwrap();
    assert_eq!(p.dims(), [2, 3, 299, 299]);
    assert!(values(p).iter().all(|v| v.abs() < 1e-6), "0.5 maps to 0");
    let f = values(net.features(x).unwrap());
    assert_eq!(f.len(), 2 * net.feature_dim());
    assert!(f.iter().all(|v| v.is_finite()));
    assert_eq!(f[..net.feature_dim()], f[net.feature_dim()..]);
}

#[test]
fn full_key_set_loads_at_root_and_under_a_prefix() {
    let dev = test_device();
    let ck = Checkpoint::open(weights_path()).unwrap();
    assert_eq!(ck.len(), 566, "all keys of pt_inception-2015-12-05");
    assert!(ck.keys().all(|k| k.starts_with(PREFIX)));
    // The real file's layout: the same keys at the root (num_batches_tracked included,
    // fc present), loaded strictly.
    let root = ck
        .clone()
        .map_keys(|k| k.strip_prefix(PREFIX).map(str::to_string));
    assert!(root.contains("Conv2d_1a_3x3.bn.num_batches_tracked"));
    assert!(root.contains("fc.weight") && root.contains("Mixed_7c.branch_pool.bn.running_var"));
    let a = FidInceptionV3::from_loaded(&root, &dev).unwrap();
    let b = FidInceptionV3::from_loaded(&ck, &dev).unwrap();
    assert_eq!(a.feature_dim(), 256);
    assert_eq!(b.block_channels(), a.block_channels());
    // Without num_batches_tracked (older torch) and without fc it loads as well.
    let slim = root.map_keys(|k| {
        (!k.ends_with("num_batches_tracked") && !k.starts_with("fc.")).then(|| k.to_string())
    });
    FidInceptionV3::from_loaded(&slim, &dev).unwrap();
}

#[test]
fn wrong_files_give_typed_errors() {
    let dev = test_device();
    // Another network's weights.
    match FidInceptionV3::from_checkpoint(
        fixture("metrics/metrics_weights_lpips_alex.safetensors"),
        &dev,
    ) {
        Err(VtonError::MissingWeights { keys, .. }) => {
            assert!(keys.contains("Conv2d_1a_3x3"), "{keys}")
        }
        other => panic!("expected MissingWeights, got {other:?}"),
    }
    // Not a checkpoint at all / no file.
    assert!(matches!(
        FidInceptionV3::from_checkpoint(fixture("metrics/metrics_fid.json"), &dev),
        Err(VtonError::Checkpoint { .. })
    ));
    assert!(matches!(
        FidInceptionV3::from_checkpoint(fixture("metrics/no_such.pth"), &dev),
        Err(VtonError::FileNotFound { .. })
    ));

    let ck = Checkpoint::open(weights_path()).unwrap();
    // A tensor missing.
    let missing = ck
        .clone()
        .map_keys(|k| (!k.ends_with("Mixed_6c.branch7x7dbl_3.bn.running_mean")).then(|| k.into()));
    match FidInceptionV3::from_loaded(&missing, &dev) {
        Err(VtonError::MissingWeights { keys, .. }) => {
            assert!(
                keys.contains("Mixed_6c.branch7x7dbl_3.bn.running_mean"),
                "{keys}"
            )
        }
        other => panic!("expected MissingWeights, got {other:?}"),
    }
    // Kernels swapped: a 1x7 where a 7x1 belongs (same widths, wrong kernel shape).
    let swapped = ck.clone().map_keys(|k| {
        Some(if k.contains("Mixed_6b.branch7x7_2.") {
            k.replace("branch7x7_2.", "branch7x7_3.")
        } else if k.contains("Mixed_6b.branch7x7_3.") {
            k.replace("branch7x7_3.", "branch7x7_2.")
        } else {
            k.to_string()
        })
    });
    match FidInceptionV3::from_loaded(&swapped, &dev) {
        Err(VtonError::WeightShape { key, .. }) => assert!(key.contains("Mixed_6b"), "{key}"),
        other => panic!("expected WeightShape, got {other:?}"),
    }
    // In-channels that do not follow the concatenation before them.
    let shifted = ck.clone().map_keys(|k| {
        Some(if k.contains("Mixed_5b.") {
            k.replace("Mixed_5b.", "Mixed_5c.")
        } else if k.contains("Mixed_5c.") {
            k.replace("Mixed_5c.", "Mixed_5b.")
        } else {
            k.to_string()
        })
    });
    assert!(matches!(
        FidInceptionV3::from_loaded(&shifted, &dev),
        Err(VtonError::WeightShape { .. })
    ));
    // A tensor the network does not have (torchvision's ImageNet file carries AuxLogits).
    let aux = ck.clone().map_keys(|k| {
        Some(
            if k.ends_with("Mixed_7c.branch_pool.bn.num_batches_tracked") {
                "fid_inception.AuxLogits.conv0.bn.num_batches_tracked".into()
            } else {
                k.to_string()
            },
        )
    });
    let aux = aux.overlay(ck.clone());
    assert!(matches!(
        FidInceptionV3::from_loaded(&aux, &dev),
        Err(VtonError::UnexpectedWeights { .. })
    ));
}

#[test]
fn bad_inputs_give_typed_errors() {
    let dev = test_device();
    let net = load(&dev);
    for shape in [
        [1, 1, 64, 64],
        [1, 4, 64, 64],
        [0, 3, 64, 64],
        [1, 3, 0, 64],
        [1, 3, 64, 0],
    ] {
        let x = Tensor::<4>::zeros(shape, &dev);
        assert!(
            matches!(net.features(x.clone()), Err(VtonError::Shape { .. })),
            "{shape:?}"
        );
        assert!(matches!(
            net.preprocess(x.clone()),
            Err(VtonError::Shape { .. })
        ));
        assert!(matches!(net.blocks(x), Err(VtonError::Shape { .. })));
    }
}

#[test]
#[ignore = "needs FID_INCEPTION_CHECKPOINT=/path/to/pt_inception-2015-12-05-6726825d.pth"]
fn real_checkpoint_loads() {
    let Ok(path) = std::env::var("FID_INCEPTION_CHECKPOINT") else {
        eprintln!("FID_INCEPTION_CHECKPOINT not set; nothing to check");
        return;
    };
    let dev = test_device();
    let net = FidInceptionV3::from_checkpoint(&path, &dev).unwrap();
    assert_eq!(net.feature_dim(), 2048);
    assert_eq!(net.block_channels(), [64, 192, 768, 2048]);
    let t = fx();
    let x = images(&t, "fid.set1.images_u8", 0, 1, &dev);
    let f = values(net.features(x).unwrap());
    assert_eq!(f.len(), 2048);
    assert!(f.iter().all(|v| v.is_finite() && *v >= 0.0));
    assert!(f.iter().any(|v| *v > 0.0));
}

/// A random FID Inception state dict with torchvision's widths divided by `div` (rounded
/// up; in-channels after a concatenation are the sum of the reduced branches), the rule the
/// fixtures were made with: `(key, shape, values)`, `num_batches_tracked` as `None`.
struct Synthetic {
    div: usize,
    seed: u64,
    tensors: Vec<(String, Vec<usize>, Option<Vec<f32>>)>,
}

impl Synthetic {
    fn w(&self, c: usize) -> usize {
        c.div_ceil(self.div)
    }

    fn uniform(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n)
            .map(|_| {
                self.seed = self
                    .seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let u = (self.seed >> 40) as f32 / (1u64 << 24) as f32;
                lo + (hi - lo) * u
            })
            .collect()
    }

    /// `BasicConv2d(cin, cout, kernel)`; returns cout.
    fn conv(&mut self, name: &str, cin: usize, cout: usize, k: [usize; 2]) -> usize {
        let fan_in = cin * k[0] * k[1];
        let a = (6.0 / fan_in as f32).sqrt();
        let w = self.uniform(cout * fan_in, -a, a);
        self.tensors.push((
            format!("{name}.conv.weight"),
            vec![cout, cin, k[0], k[1]],
            Some(w),
        ));
        for (p, lo, hi) in [
            ("weight", 0.6, 1.4),
            ("bias", -0.2, 0.2),
            ("running_mean", -0.1, 0.1),
            ("running_var", 0.5, 1.5),
        ] {
            let v = self.uniform(cout, lo, hi);
            self.tensors
                .push((format!("{name}.bn.{p}"), vec![cout], Some(v)));
        }
        self.tensors
            .push((format!("{name}.bn.num_batches_tracked"), vec![], None));
        cout
    }

    fn build(div: usize) -> Self {
        let mut g = Synthetic {
            div,
            seed: div as u64,
            tensors: Vec::new(),
        };
        let w = |g: &Synthetic, c| g.w(c);
        let (k1, k3, k5) = ([1, 1], [3, 3], [5, 5]);
        let (k17, k71, k13, k31) = ([1, 7], [7, 1], [1, 3], [3, 1]);
        let c = g.conv("Conv2d_1a_3x3", 3, w(&g, 32), k3);
        let c = g.conv("Conv2d_2a_3x3", c, w(&g, 32), k3);
        let c = g.conv("Conv2d_2b_3x3", c, w(&g, 64), k3);
        let c = g.conv("Conv2d_3b_1x1", c, w(&g, 80), k1);
        let mut c = g.conv("Conv2d_4a_3x3", c, w(&g, 192), k3);
        for (m, pool_features) in [("Mixed_5b", 32), ("Mixed_5c", 64), ("Mixed_5d", 64)] {
            let a = g.conv(&format!("{m}.branch1x1"), c, w(&g, 64), k1);
            let t = g.conv(&format!("{m}.branch5x5_1"), c, w(&g, 48), k1);
            let b = g.conv(&format!("{m}.branch5x5_2"), t, w(&g, 64), k5);
            let t = g.conv(&format!("{m}.branch3x3dbl_1"), c, w(&g, 64), k1);
            let t = g.conv(&format!("{m}.branch3x3dbl_2"), t, w(&g, 96), k3);
            let d = g.conv(&format!("{m}.branch3x3dbl_3"), t, w(&g, 96), k3);
            let p = g.conv(&format!("{m}.branch_pool"), c, w(&g, pool_features), k1);
            c = a + b + d + p;
        }
        let a = g.conv("Mixed_6a.branch3x3", c, w(&g, 384), k3);
        let t = g.conv("Mixed_6a.branch3x3dbl_1", c, w(&g, 64), k1);
        let t = g.conv("Mixed_6a.branch3x3dbl_2", t, w(&g, 96), k3);
        let b = g.conv("Mixed_6a.branch3x3dbl_3", t, w(&g, 96), k3);
        c += a + b;
        for (m, c7) in [
            ("Mixed_6b", 128),
            ("Mixed_6c", 160),
            ("Mixed_6d", 160),
            ("Mixed_6e", 192),
        ] {
            let c7 = w(&g, c7);
            let a = g.conv(&format!("{m}.branch1x1"), c, w(&g, 192), k1);
            let t = g.conv(&format!("{m}.branch7x7_1"), c, c7, k1);
            let t = g.conv(&format!("{m}.branch7x7_2"), t, c7, k17);
            let b = g.conv(&format!("{m}.branch7x7_3"), t, w(&g, 192), k71);
            let t = g.conv(&format!("{m}.branch7x7dbl_1"), c, c7, k1);
            let t = g.conv(&format!("{m}.branch7x7dbl_2"), t, c7, k71);
            let t = g.conv(&format!("{m}.branch7x7dbl_3"), t, c7, k17);
            let t = g.conv(&format!("{m}.branch7x7dbl_4"), t, c7, k71);
            let d = g.conv(&format!("{m}.branch7x7dbl_5"), t, w(&g, 192), k17);
            let p = g.conv(&format!("{m}.branch_pool"), c, w(&g, 192), k1);
            c = a + b + d + p;
        }
        let t = g.conv("Mixed_7a.branch3x3_1", c, w(&g, 192), k1);
        let a = g.conv("Mixed_7a.branch3x3_2", t, w(&g, 320), k3);
        let t = g.conv("Mixed_7a.branch7x7x3_1", c, w(&g, 192), k1);
        let t = g.conv("Mixed_7a.branch7x7x3_2", t, w(&g, 192), k17);
        let t = g.conv("Mixed_7a.branch7x7x3_3", t, w(&g, 192), k71);
        let b = g.conv("Mixed_7a.branch7x7x3_4", t, w(&g, 192), k3);
        c += a + b;
        for m in ["Mixed_7b", "Mixed_7c"] {
            let a = g.conv(&format!("{m}.branch1x1"), c, w(&g, 320), k1);
            let t = g.conv(&format!("{m}.branch3x3_1"), c, w(&g, 384), k1);
            let b1 = g.conv(&format!("{m}.branch3x3_2a"), t, w(&g, 384), k13);
            let b2 = g.conv(&format!("{m}.branch3x3_2b"), t, w(&g, 384), k31);
            let t = g.conv(&format!("{m}.branch3x3dbl_1"), c, w(&g, 448), k1);
            let t = g.conv(&format!("{m}.branch3x3dbl_2"), t, w(&g, 384), k3);
            let d1 = g.conv(&format!("{m}.branch3x3dbl_3a"), t, w(&g, 384), k13);
            let d2 = g.conv(&format!("{m}.branch3x3dbl_3b"), t, w(&g, 384), k31);
            let p = g.conv(&format!("{m}.branch_pool"), c, w(&g, 192), k1);
            c = a + b1 + b2 + d1 + d2 + p;
        }
        let classes = w(&g, 1008);
        let fc = g.uniform(classes * c, -0.05, 0.05);
        g.tensors
            .push(("fc.weight".into(), vec![classes, c], Some(fc)));
        let fb = g.uniform(classes, -0.05, 0.05);
        g.tensors.push(("fc.bias".into(), vec![classes], Some(fb)));
        g
    }

    /// Writes the tensors as safetensors (F32, and I64 1 for `num_batches_tracked`).
    fn write(&self, path: &std::path::Path) {
        let mut header = serde_json::Map::new();
        let mut data: Vec<u8> = Vec::new();
        for (k, shape, v) in &self.tensors {
            let start = data.len();
            let dtype = match v {
                Some(v) => {
                    data.extend(v.iter().flat_map(|x| x.to_le_bytes()));
                    "F32"
                }
                None => {
                    data.extend(1i64.to_le_bytes());
                    "I64"
                }
            };
            header.insert(
                k.clone(),
                serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [start, data.len()]}),
            );
        }
        let mut h = serde_json::to_vec(&header).unwrap();
        while !h.len().is_multiple_of(8) {
            h.push(b' ');
        }
        let mut out = (h.len() as u64).to_le_bytes().to_vec();
        out.extend(h);
        out.extend(data);
        std::fs::write(path, out).unwrap();
    }
}

#[test]
fn synthetic_generator_reproduces_the_fixture_shapes() {
    // The generator's width rule, checked against the fixture's checkpoint (div 8).
    let g = Synthetic::build(8);
    let ck = Checkpoint::open(weights_path()).unwrap();
    assert_eq!(g.tensors.len(), ck.len());
    for (k, shape, _) in &g.tensors {
        if k.ends_with("num_batches_tracked") {
            // torch stores a 0-d tensor; the fixture writer kept it as [1].
            assert!(ck.contains(&format!("{PREFIX}{k}")), "{k}");
            continue;
        }
        assert_eq!(
            ck.shape(&format!("{PREFIX}{k}")),
            Some(shape.as_slice()),
            "{k}"
        );
    }
}

/// Loads a synthetic network with widths `torchvision / div` and runs two images.
fn check_synthetic(div: usize, images_per_run: usize) -> (FidInceptionV3, f64) {
    let dev = test_device();
    let g = Synthetic::build(div);
    let dir = tempfile::tempdir().unwrap();
    let path = dir
        .path()
        .join(format!("fid_inception_div{div}.safetensors"));
    g.write(&path);
    let net = FidInceptionV3::from_checkpoint(&path, &dev).unwrap();
    let w = |c: usize| c.div_ceil(div);
    let block0 = w(64);
    let block1 = w(192);
    let block2 = 4 * w(192);
    let features = w(320) + 4 * w(384) + w(192);
    assert_eq!(net.block_channels(), [block0, block1, block2, features]);
    assert_eq!(net.feature_dim(), features);

    let t = fx();
    let x = images(&t, "fid.set1.images_u8", 0, images_per_run, &dev);
    let start = Instant::now();
    let f = net.features(x.clone()).unwrap();
    let secs = start.elapsed().as_secs_f64() / images_per_run as f64;
    assert_eq!(f.dims(), [images_per_run, features]);
    let f = values(f);
    assert!(f.iter().all(|v| v.is_finite() && *v >= 0.0));
    assert!(f.iter().any(|v| *v > 0.0));
    // blocks()[3] is the same pool3 output.
    let pool3 = values(net.blocks(x).unwrap().pop().unwrap());
    assert_eq!(pool3, f);
    (net, secs)
}

#[test]
fn widths_that_8_does_not_divide_are_read_from_the_checkpoint() {
    for div in [3, 5] {
        check_synthetic(div, 2);
    }
}

#[test]
#[ignore = "full-width random network (24M parameters): a timing check"]
fn full_width_network_runs() {
    let (net, secs) = check_synthetic(1, 4);
    assert_eq!(net.feature_dim(), 2048);
    assert_eq!(net.block_channels(), [64, 192, 768, 2048]);
    eprintln!("full width: {:.0} ms per 256x192 image", secs * 1e3);
}

#[test]
fn negative_running_variance_is_refused() {
    let mut g = Synthetic::build(8);
    for (k, _, v) in &mut g.tensors {
        if k == "Mixed_6e.branch_pool.bn.running_var" {
            v.as_mut().unwrap()[0] = -1.0;
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad_bn.safetensors");
    g.write(&path);
    match FidInceptionV3::from_checkpoint(&path, &test_device()) {
        Err(VtonError::Config { what, .. }) => assert!(what.contains("Mixed_6e"), "{what}"),
        other => panic!("expected Config, got {other:?}"),
    }
}
