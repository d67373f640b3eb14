//! Test helpers: fixture paths, a minimal safetensors reader, tolerance checks.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn fixture(name: &str) -> PathBuf {
    root().join("tests/fixtures").join(name)
}

pub fn example(rel: &str) -> PathBuf {
    root().join("examples").join(rel)
}

/// Every tensor of a safetensors file: (name, dtype, shape, raw little-endian bytes).
fn raw_tensors(path: &PathBuf) -> Vec<(String, String, Vec<usize>, Vec<u8>)> {
    let bytes = std::fs::read(path).expect("fixture readable");
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let data = &bytes[8 + n..];
    let dims = |v: &serde_json::Value| -> Vec<usize> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect()
    };
    header
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| *k != "__metadata__")
        .map(|(k, v)| {
            let off = dims(&v["data_offsets"]);
            let dtype = v["dtype"].as_str().unwrap().to_string();
            (
                k.clone(),
                dtype,
                dims(&v["shape"]),
                data[off[0]..off[1]].to_vec(),
            )
        })
        .collect()
}

/// Reads every f32 (and i64, as f32) tensor of a safetensors file: name -> (shape, values).
pub fn read_safetensors(path: &PathBuf) -> HashMap<String, (Vec<usize>, Vec<f32>)> {
    raw_tensors(path)
        .into_iter()
        .filter_map(|(k, dtype, shape, raw)| {
            let vals: Vec<f32> = match dtype.as_str() {
                "I64" => raw
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f32)
                    .collect(),
                "F32" => raw
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                    .collect(),
                "U8" => raw.iter().map(|&b| b as f32).collect(),
                "F64" => raw
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32)
                    .collect(),
                _ => return None,
            };
            Some((k, (shape, vals)))
        })
        .collect()
}

/// Asserts `|got - want| <= atol + rtol * |want|` elementwise; returns the worst excess ratio.
pub fn assert_close(what: &str, got: &[f32], want: &[f32], atol: f32, rtol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let mut worst = (0usize, 0f32);
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let r = (g - w).abs() / (atol + rtol * w.abs());
        if !(r <= worst.1) {
            worst = (i, r);
        }
    }
    assert!(
        worst.1 <= 1.0,
        "{what}: element {} got {} want {} (excess {:.3}x tolerance)",
        worst.0,
        got[worst.0],
        want[worst.0],
        worst.1
    );
}

/// The device the tests run on: `VTON_TEST_DEVICE` (`cpu`, `wgpu`, `cuda:N`; default `cpu`),
/// so the same parity tests check a GPU backend:
/// `VTON_TEST_DEVICE=wgpu cargo test --release -p vton-core --features wgpu`.
#[allow(dead_code)]
pub fn test_device() -> burn::tensor::Device {
    let name = std::env::var("VTON_TEST_DEVICE").unwrap_or_else(|_| "cpu".into());
    vton_core::device_from_name(&name).unwrap_or_else(|e| panic!("VTON_TEST_DEVICE: {e}"))
}

/// The `tolerance` of a fixture JSON: (atol, rtol).
pub fn fixture_tolerance(name: &str) -> (f32, f32) {
    let text = std::fs::read_to_string(fixture(name)).unwrap();
    let j: serde_json::Value =
        serde_json::from_str(&vton_core::models::pretrained::python_json(&text)).unwrap();
    (
        j["tolerance"]["atol"].as_f64().unwrap() as f32,
        j["tolerance"]["rtol"].as_f64().unwrap() as f32,
    )
}

/// A fixture tensor as a burn tensor.
pub fn tensor<const D: usize>(
    t: &HashMap<String, (Vec<usize>, Vec<f32>)>,
    key: &str,
    dev: &burn::tensor::Device,
) -> burn::tensor::Tensor<D> {
    let (s, v) = t.get(key).unwrap_or_else(|| panic!("fixture has no {key}"));
    let shape: [usize; D] = s.as_slice().try_into().expect("rank");
    burn::tensor::Tensor::from_data(burn::tensor::TensorData::new(v.clone(), shape), dev)
}

/// A burn tensor's values.
pub fn values<const D: usize>(t: burn::tensor::Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

/// Reads every tensor of a safetensors file as f64 (U8, I64, F32 and F64 accepted):
/// name -> (shape, values). The metrics fixtures store uint8 images and float64 statistics.
pub fn read_safetensors_f64(path: &PathBuf) -> HashMap<String, (Vec<usize>, Vec<f64>)> {
    raw_tensors(path)
        .into_iter()
        .map(|(k, dtype, shape, raw)| {
            let vals: Vec<f64> = match dtype.as_str() {
                "U8" => raw.iter().map(|&b| b as f64).collect(),
                "I64" => raw
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f64)
                    .collect(),
                "F32" => raw
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
                    .collect(),
                "F64" => raw
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
                    .collect(),
                other => panic!("unexpected dtype {other} for {k}"),
            };
            (k, (shape, vals))
        })
        .collect()
}
