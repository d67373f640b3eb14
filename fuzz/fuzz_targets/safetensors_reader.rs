//! Fuzzes the safetensors readers: `Checkpoint::open` (its own header parser over a
//! file, read lazily), `Checkpoint::from_safetensors_bytes` (embedded weights) and
//! `train::checkpoint::load_safetensors_bytes` (training state). Any byte string must
//! load or fail with a typed error, never panic or allocate beyond the input's size (a
//! header claiming 10^12 elements is refused before allocating).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vton_core::train::checkpoint::load_safetensors_bytes;
use vton_core::weights::Checkpoint;

fn read_all(ck: &Checkpoint) {
    let keys: Vec<String> = ck.keys().take(64).map(str::to_string).collect();
    for k in keys {
        let _ = ck.read_f32(&k);
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(ck) = Checkpoint::from_safetensors_bytes("fuzz.safetensors", data) {
        read_all(&ck);
    }
    let _ = load_safetensors_bytes("fuzz.safetensors", data);
    // `Checkpoint::open` tells safetensors from pickles by content; only safetensors
    // are of interest here (pth_reader covers the rest).
    if data.len() >= 9 && data[8] == b'{' {
        let path =
            std::env::temp_dir().join(format!("vton-fuzz-{}.safetensors", std::process::id()));
        std::fs::write(&path, data).expect("writing the fuzz input");
        if let Ok(ck) = Checkpoint::open(&path) {
            read_all(&ck);
        }
    }
});
