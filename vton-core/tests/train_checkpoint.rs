//! Training checkpoints: `.pth` and safetensors roundtrips, atomic writes, resume records.

use std::collections::BTreeMap;
use std::path::Path;

use burn::store::pytorch_reader::{DType, PytorchReader};
use half::{bf16, f16};
use serde_json::json;
use vton_core::train::checkpoint::{
    complete_checkpoints, crc32_update, latest_pointer, load_latest, load_safetensors, save_pth,
    save_pth_nested, save_pth_nested_forcing_zip64, save_safetensors, state_dict_from_host,
    step_dir, write_atomic, MomentState, OptimizerState, PthKey, PthValue, SaveOptions, StateData,
    StateDtype, StateTensor, TrainingState,
};
use vton_core::train::HostTensor;
use vton_core::weights::Checkpoint;
use vton_core::VtonError;

/// A deterministic pseudo-random f32 sequence (values of both signs, varied magnitudes).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 11) as f64 / (1u64 << 53) as f64 * 8.0 - 4.0) as f32
        })
        .collect()
}

/// A BatchNorm-and-conv style state dict with every dtype the writer supports.
fn sample_state_dict() -> BTreeMap<String, StateTensor> {
    let mut sd = BTreeMap::new();
    let w = values(8 * 3 * 3 * 3, 1);
    sd.insert(
        "conv.weight".to_string(),
        StateTensor::f32(vec![8, 3, 3, 3], w).unwrap(),
    );
    sd.insert(
        "conv.bias".to_string(),
        StateTensor::f32(vec![8], values(8, 2)).unwrap(),
    );
    sd.insert(
        "bn.running_mean".to_string(),
        StateTensor::f32(vec![8], values(8, 3)).unwrap(),
    );
    sd.insert(
        "bn.num_batches_tracked".to_string(),
        StateTensor::scalar_i64(123_456_789_012),
    );
    sd.insert(
        "ids".to_string(),
        StateTensor::i64(vec![2, 3], vec![-1, 0, 1, i64::MIN, i64::MAX, 300]).unwrap(),
    );
    sd.insert(
        "double".to_string(),
        StateTensor::f64(vec![3], vec![1.0 / 3.0, -2.5e-300, 7.0]).unwrap(),
    );
    sd.insert(
        "half".to_string(),
        StateTensor::f16(
            vec![2, 2],
            [0.5f32, -1.25, 1000.0, 0.0]
                .iter()
                .map(|&x| f16::from_f32(x))
                .collect(),
        )
        .unwrap(),
    );
    sd.insert(
        "brain".to_string(),
        StateTensor::bf16(
            vec![3],
            [3.0f32, -0.015625, 65536.0]
                .iter()
                .map(|&x| bf16::from_f32(x))
                .collect(),
        )
        .unwrap(),
    );
    sd.insert(
        "empty".to_string(),
        StateTensor::f32(vec![0, 4], Vec::new()).unwrap(),
    );
    sd.insert("scalar".to_string(), StateTensor::scalar_f32(-0.75));
    sd
}

/// NaN (with a payload), infinities, -0.0 and a subnormal: compared bit for bit.
fn specials() -> StateTensor {
    StateTensor::f32(
        vec![6],
        vec![
            f32::from_bits(0x7FC0_1234),
            f32::INFINITY,
            f32::NEG_INFINITY,
            -0.0,
            f32::from_bits(1),
            f32::MAX,
        ],
    )
    .unwrap()
}

fn le_bytes_ne(t: &StateTensor) -> Vec<u8> {
    // The pytorch reader returns native-endian bytes.
    let mut b = t.to_le_bytes();
    if cfg!(target_endian = "big") {
        for c in b.chunks_mut(t.dtype().size()) {
            c.reverse();
        }
    }
    b
}

fn reader_dtype(d: StateDtype) -> DType {
    match d {
        StateDtype::F32 => DType::F32,
        StateDtype::F64 => DType::F64,
        StateDtype::I64 => DType::I64,
        StateDtype::BF16 => DType::BF16,
        StateDtype::F16 => DType::F16,
    }
}

/// Checks every tensor of `sd` in a `.pth` read back by burn's pickle reader (dtypes and
/// exact bytes) and by `Checkpoint::open` (shapes, values as f32), under `prefix`.
fn assert_pth_holds(path: &Path, sd: &BTreeMap<String, StateTensor>, prefix: &str) {
    let reader = PytorchReader::new(path).unwrap();
    for (k, t) in sd {
        let key = format!("{prefix}{k}");
        let r = reader
            .get(&key)
            .unwrap_or_else(|| panic!("{key} missing; keys {:?}", reader.keys()));
        assert_eq!(r.shape(), t.shape(), "{key} shape");
        assert_eq!(r.dtype(), reader_dtype(t.dtype()), "{key} dtype");
        assert_eq!(r.read().unwrap(), le_bytes_ne(t), "{key} bytes");
    }
}

#[test]
fn pth_roundtrip_through_checkpoint_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.pth");
    let mut sd = sample_state_dict();
    sd.insert("specials".to_string(), specials());
    save_pth(&path, &sd).unwrap();

    assert_pth_holds(&path, &sd, "");

    let ck = Checkpoint::open(&path).unwrap();
    assert_eq!(ck.len(), sd.len());
    for (k, t) in &sd {
        assert_eq!(ck.shape(k).unwrap(), t.shape(), "{k}");
        let got = ck.read_f32(k).unwrap();
        let want = t.to_f32_vec();
        assert_eq!(got.len(), want.len(), "{k}");
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g.to_bits(), w.to_bits(), "{k}: {g} vs {w}");
        }
    }
    // The 0-d int64 stays 0-d with its exact value.
    assert_eq!(ck.shape("bn.num_batches_tracked").unwrap(), &[] as &[usize]);
    let r = PytorchReader::new(&path).unwrap();
    let nbt = r.get("bn.num_batches_tracked").unwrap().read().unwrap();
    assert_eq!(i64::from_le_bytes(nbt.try_into().unwrap()), 123_456_789_012);
}

/// The archive layout torch writes: one root folder, data.pkl first, storages 64-byte
/// aligned, correct CRCs (checked by the zip reader inside PytorchReader already; here
/// the local headers are walked by hand).
#[test]
fn pth_layout_is_aligned_with_valid_crcs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weights.pth");
    let sd = sample_state_dict();
    save_pth(&path, &sd).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let mut pos = 0usize;
    let mut names = Vec::new();
    while bytes[pos..pos + 4] == [0x50, 0x4b, 0x03, 0x04] {
        let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]) as usize;
        let u32_at = |o: usize| u32::from_le_bytes(bytes[o..o + 4].try_into().unwrap());
        let crc = u32_at(pos + 14);
        let size = u32_at(pos + 18) as usize;
        let nlen = u16_at(pos + 26);
        let elen = u16_at(pos + 28);
        let name = String::from_utf8(bytes[pos + 30..pos + 30 + nlen].to_vec()).unwrap();
        let start = pos + 30 + nlen + elen;
        assert_eq!(start % 64, 0, "{name} data at {start}");
        assert_eq!(crc32_update(0, &bytes[start..start + size]), crc, "{name}");
        names.push(name);
        pos = start + size;
    }
    assert_eq!(names[0], "weights/data.pkl");
    for want in ["weights/version", "weights/byteorder", "weights/data/0"] {
        assert!(names.iter().any(|n| n == want), "{want} in {names:?}");
    }
    assert_eq!(
        names
            .iter()
            .filter(|n| n.starts_with("weights/data/"))
            .count(),
        sd.len()
    );
}

#[test]
fn crc32_matches_the_standard_check_value() {
    assert_eq!(crc32_update(0, b"123456789"), 0xCBF4_3926);
    let split = crc32_update(crc32_update(0, b"12345"), b"6789");
    assert_eq!(split, 0xCBF4_3926);
    assert_eq!(crc32_update(0, b""), 0);
}

fn nested_sample() -> (BTreeMap<String, PthValue>, BTreeMap<String, StateTensor>) {
    let sd = sample_state_dict();
    let mut exp = BTreeMap::new();
    exp.insert(
        PthKey::Str("exp_avg".into()),
        PthValue::Tensor(StateTensor::f32(vec![8], values(8, 9)).unwrap()),
    );
    exp.insert(
        PthKey::Str("step".into()),
        PthValue::Tensor(StateTensor::scalar_f32(12.0)),
    );
    let mut state = BTreeMap::new();
    state.insert(PthKey::Int(0), PthValue::Dict(exp));
    let mut group = BTreeMap::new();
    group.insert(PthKey::from("lr"), PthValue::Float(2e-4));
    group.insert(
        PthKey::from("betas"),
        PthValue::List(vec![PthValue::Float(0.5), PthValue::Float(0.999)]),
    );
    group.insert(PthKey::from("amsgrad"), PthValue::Bool(false));
    group.insert(PthKey::from("foreach"), PthValue::None);
    group.insert(
        PthKey::from("params"),
        PthValue::List((0..3).map(PthValue::Int).collect()),
    );
    let mut opt = BTreeMap::new();
    opt.insert(PthKey::from("state"), PthValue::Dict(state));
    opt.insert(
        PthKey::from("param_groups"),
        PthValue::List(vec![PthValue::Dict(group)]),
    );
    let mut top = BTreeMap::new();
    top.insert("model".to_string(), PthValue::StateDict(sd.clone()));
    top.insert("optimizer".to_string(), PthValue::Dict(opt));
    top.insert("step".to_string(), PthValue::Int(123));
    top.insert("big".to_string(), PthValue::Int(-(1i64 << 40)));
    top.insert("name".to_string(), PthValue::Str("gmm ünïcode".into()));
    (top, sd)
}

#[test]
fn nested_pth_reads_back_its_tensors() {
    let dir = tempfile::tempdir().unwrap();
    let (top, sd) = nested_sample();
    for (zip64, file) in [(false, "state.pth"), (true, "state64.pth")] {
        let path = dir.path().join(file);
        if zip64 {
            save_pth_nested_forcing_zip64(&path, &top).unwrap();
        } else {
            save_pth_nested(&path, &top).unwrap();
        }
        assert_pth_holds(&path, &sd, "model.");
        let reader = PytorchReader::new(&path).unwrap();
        let keys = reader.keys();
        let exp = keys
            .iter()
            .find(|k| k.ends_with("exp_avg"))
            .unwrap_or_else(|| panic!("no exp_avg among {keys:?}"));
        let got = reader.get(exp).unwrap().read().unwrap();
        let want = le_bytes_ne(&StateTensor::f32(vec![8], values(8, 9)).unwrap());
        assert_eq!(got, want, "{file}");
        // Checkpoint::open on the same file: the model keys are there under `model.`.
        let ck = Checkpoint::open(&path).unwrap();
        let w = ck
            .keys()
            .find(|k| k.ends_with("conv.weight"))
            .unwrap()
            .to_string();
        assert_eq!(ck.read_f32(&w).unwrap(), sd["conv.weight"].to_f32_vec());
    }
}

#[test]
fn safetensors_roundtrip_keeps_dtypes_shapes_and_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    let sd = sample_state_dict();
    let mut meta = BTreeMap::new();
    meta.insert("format".to_string(), "pt".to_string());
    meta.insert("step".to_string(), "77".to_string());
    save_safetensors(&path, &sd, &meta).unwrap();
    let (back, meta_back) = load_safetensors(&path).unwrap();
    assert_eq!(back, sd);
    assert_eq!(meta_back, meta);
    // And the library's reader sees the same values as f32.
    let ck = Checkpoint::open(&path).unwrap();
    for (k, t) in &sd {
        assert_eq!(ck.shape(k).unwrap(), t.shape(), "{k}");
        let got = ck.read_f32(k).unwrap();
        let want = t.to_f32_vec();
        assert!(
            got.iter()
                .zip(&want)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "{k}"
        );
    }
}

#[test]
fn host_tensors_convert_with_checks() {
    let h = HostTensor::new(vec![2, 3], values(6, 4));
    let t = StateTensor::from_host(&h).unwrap();
    assert_eq!(t.dtype(), StateDtype::F32);
    assert_eq!(t.shape(), &[2, 3]);
    assert_eq!(t.to_host(), h);
    let bad = HostTensor::new(vec![2, 4], values(6, 4));
    assert!(matches!(
        StateTensor::try_from(&bad),
        Err(VtonError::Shape { .. })
    ));
    let mut sd = BTreeMap::new();
    sd.insert("a".to_string(), h.clone());
    sd.insert("b".to_string(), bad);
    assert!(state_dict_from_host(&sd).is_err());
    sd.remove("b");
    assert_eq!(state_dict_from_host(&sd).unwrap()["a"].to_host(), h);
    assert!(StateTensor::i64(vec![3], vec![1, 2]).is_err());
    assert!(matches!(
        StateTensor::new(vec![], StateData::F64(vec![])),
        Err(VtonError::Shape { .. })
    ));
}

fn dir_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn failed_atomic_write_keeps_the_old_file_and_no_temp() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.pth");
    let sd = sample_state_dict();
    save_pth(&path, &sd).unwrap();
    let before = std::fs::read(&path).unwrap();

    // A writer that gets halfway (2 MiB, past the 1 MiB buffer, so bytes reach the
    // temporary file) and then fails.
    let err = write_atomic(&path, |w| {
        w.write_all(&vec![0xAB; 2 << 20]).unwrap();
        Err(VtonError::invalid("writer", "failed midway"))
    })
    .unwrap_err();
    assert!(err.to_string().contains("failed midway"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert_eq!(dir_names(dir.path()), vec!["model.pth".to_string()]);
    assert_pth_holds(&path, &sd, "");

    // The same for a safetensors writer that fails (a tensor the format refuses: two
    // names with the same offset are impossible, so use an unwritable target instead).
    let sub = dir.path().join("missing_folder").join("x.safetensors");
    assert!(save_safetensors(&sub, &sd, &BTreeMap::new()).is_err());
    assert_eq!(dir_names(dir.path()), vec!["model.pth".to_string()]);

    // A successful write replaces the content and leaves no temporary file either.
    write_atomic(&path, |w| {
        w.write_all(b"new")
            .map_err(|e| VtonError::invalid("w", e.to_string()))
    })
    .unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"new");
    assert_eq!(dir_names(dir.path()), vec!["model.pth".to_string()]);
}

fn training_state(step: u64) -> TrainingState {
    let mut models = BTreeMap::new();
    let mut sd = sample_state_dict();
    sd.insert(
        "step_marker".to_string(),
        StateTensor::scalar_i64(step as i64),
    );
    models.insert("model".to_string(), sd);
    let mut state = BTreeMap::new();
    state.insert(
        "conv.weight".to_string(),
        MomentState {
            exp_avg: StateTensor::f32(vec![8, 3, 3, 3], values(216, step + 10)).unwrap(),
            exp_avg_sq: StateTensor::f32(vec![8, 3, 3, 3], values(216, step + 11)).unwrap(),
            step,
        },
    );
    state.insert(
        "conv.bias".to_string(),
        MomentState {
            exp_avg: StateTensor::f32(vec![8], values(8, step + 12)).unwrap(),
            exp_avg_sq: StateTensor::f32(vec![8], values(8, step + 13)).unwrap(),
            step: step.saturating_sub(1),
        },
    );
    let mut optimizers = BTreeMap::new();
    optimizers.insert(
        "adam".to_string(),
        OptimizerState {
            state,
            config: json!({"lr": 1e-4, "betas": [0.5, 0.999], "eps": 1e-8}),
        },
    );
    let mut rng = BTreeMap::new();
    rng.insert(
        "data".to_string(),
        vec![u64::MAX, 0, step, 0x1234_5678_9ABC_DEF0],
    );
    TrainingState {
        global_step: step,
        models,
        optimizers,
        lr_step: step / 2,
        rng,
        options: json!({"batch_size": 4, "name": "gmm", "fine_height": 256}),
        extra: json!({"epoch": step / 10}),
    }
}

#[test]
fn training_state_save_load_roundtrip() {
    let dir = tempfile::tempdir().unwrap();
    let st = training_state(42);
    let ck_dir = st.save(dir.path()).unwrap();
    assert_eq!(ck_dir, step_dir(dir.path(), 42));
    assert_eq!(
        dir_names(&ck_dir),
        [
            "model.pth",
            "model.safetensors",
            "optimizer.safetensors",
            "state.json"
        ]
    );
    assert_eq!(latest_pointer(dir.path()).unwrap(), Some(ck_dir.clone()));
    let back = TrainingState::load(&ck_dir).unwrap();
    assert_eq!(back, st);
    // The .pth holds the original keys for PyTorch users.
    assert_pth_holds(&ck_dir.join("model.pth"), &st.models["model"], "");
    // Names that would escape the folder or clash are refused.
    let mut bad = st.clone();
    let sd = bad.models.remove("model").unwrap();
    bad.models.insert("../x".to_string(), sd);
    assert!(matches!(
        bad.save(dir.path()),
        Err(VtonError::InvalidArgument { .. })
    ));
}

#[test]
fn load_latest_takes_the_newest_complete_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    assert!(load_latest(dir.path()).unwrap().is_none());
    training_state(10).save(dir.path()).unwrap();
    training_state(200).save(dir.path()).unwrap();
    training_state(30).save(dir.path()).unwrap();
    // `latest` says 30 (saved last), but 200 is the newest complete one.
    assert_eq!(
        latest_pointer(dir.path()).unwrap(),
        Some(step_dir(dir.path(), 30))
    );
    let got = load_latest(dir.path()).unwrap().unwrap();
    assert_eq!(got.state.global_step, 200);
    assert_eq!(got.state, training_state(200));

    // A crash while writing step 300: tensors written, no state.json.
    let partial = step_dir(dir.path(), 300);
    std::fs::create_dir_all(&partial).unwrap();
    std::fs::copy(
        step_dir(dir.path(), 200).join("model.safetensors"),
        partial.join("model.safetensors"),
    )
    .unwrap();
    // And step 400 whose state.json lists a file that was truncated afterwards.
    let torn = training_state(400).save(dir.path()).unwrap();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(torn.join("optimizer.safetensors"))
        .unwrap();
    f.set_len(16).unwrap();
    // Folders that are not checkpoints are ignored too.
    std::fs::create_dir_all(dir.path().join("checkpoints").join("step_x")).unwrap();
    std::fs::create_dir_all(dir.path().join("checkpoints").join("other")).unwrap();

    let got = load_latest(dir.path()).unwrap().unwrap();
    assert_eq!(got.dir, step_dir(dir.path(), 200));
    assert_eq!(got.state.global_step, 200);
    let steps: Vec<u64> = complete_checkpoints(dir.path())
        .unwrap()
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(steps, vec![10, 30, 200]);
}

#[test]
fn resaving_a_step_and_keep_last_prune() {
    let dir = tempfile::tempdir().unwrap();
    let opts = SaveOptions {
        pth: false,
        keep_last: Some(2),
    };
    for step in [1, 2, 3, 4] {
        training_state(step).save_with(dir.path(), &opts).unwrap();
    }
    let steps: Vec<u64> = complete_checkpoints(dir.path())
        .unwrap()
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(steps, vec![3, 4]);
    assert!(!step_dir(dir.path(), 1).exists());
    assert!(!step_dir(dir.path(), 4).join("model.pth").exists());
    // Re-saving step 4 with different content replaces it.
    let mut st = training_state(4);
    st.extra = json!({"again": true});
    st.save_with(dir.path(), &opts).unwrap();
    assert_eq!(load_latest(dir.path()).unwrap().unwrap().state, st);
}

/// Writes the files `scripts/check_pth_roundtrip.py` loads with torch (run by that script,
/// with `VTON_PTH_CHECK_DIR` set; skipped otherwise).
#[test]
#[ignore]
fn export_pth_check_files() {
    let Ok(out) = std::env::var("VTON_PTH_CHECK_DIR") else {
        return;
    };
    let out = Path::new(&out);
    std::fs::create_dir_all(out).unwrap();
    let mut sd = sample_state_dict();
    sd.insert("specials".to_string(), specials());
    save_pth(out.join("state_dict.pth"), &sd).unwrap();
    // The expected tensors through an independent writer (the safetensors crate).
    save_safetensors(out.join("expected.safetensors"), &sd, &BTreeMap::new()).unwrap();
    let (top, _) = nested_sample();
    save_pth_nested(out.join("nested.pth"), &top).unwrap();
    save_pth_nested_forcing_zip64(out.join("nested_zip64.pth"), &top).unwrap();
    // Many keys (more than one SETITEMS batch) and a larger tensor.
    let mut many = BTreeMap::new();
    for i in 0..2500 {
        many.insert(
            format!("layer.{i}.w"),
            StateTensor::f32(vec![i % 5 + 1], values(i % 5 + 1, i as u64)).unwrap(),
        );
    }
    many.insert(
        "big".to_string(),
        StateTensor::f32(vec![257, 1031], values(257 * 1031, 99)).unwrap(),
    );
    save_pth(out.join("many.pth"), &many).unwrap();
    save_safetensors(
        out.join("many_expected.safetensors"),
        &many,
        &BTreeMap::new(),
    )
    .unwrap();
    training_state(7).save(out.join("run")).unwrap();
}
