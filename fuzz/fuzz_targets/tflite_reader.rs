//! Fuzzes the `.tflite` reader: any byte string must load or fail with a typed error,
//! never panic or read out of bounds; a model that loads and is small must also run.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vton_core::tflite::{HostTensor, TfliteModel};

fuzz_target!(|data: &[u8]| {
    let device = vton_core::default_device();
    let Ok(model) = TfliteModel::from_bytes(data, &device) else {
        return;
    };
    let shapes = model.input_shapes();
    let total: usize = shapes.iter().map(|s| s.iter().product::<usize>()).sum();
    if total > 1 << 16 || model.num_operators() > 256 {
        return;
    }
    let inputs: Vec<HostTensor> = shapes
        .into_iter()
        .map(|s| {
            let n = s.iter().product();
            HostTensor {
                shape: s,
                data: vec![0.5; n],
            }
        })
        .collect();
    let _ = model.run(&inputs);
});
