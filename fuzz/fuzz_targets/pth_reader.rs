//! Fuzzes the PyTorch checkpoint reader (`Checkpoint::open` on a `.pth`: torch's zip
//! format, the legacy format, and the restricted pickle inside both): any byte string
//! must open or fail with a typed error, never panic, run code or allocate past what the
//! file holds; every tensor of a checkpoint that opens must read or fail the same way.
//! The reader takes a path (tensor data lives beside the pickle), so the input is
//! written to a per-process file first.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vton_core::weights::Checkpoint;

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("vton-fuzz-{}.pth", std::process::id()));
    std::fs::write(&path, data).expect("writing the fuzz input");
    let Ok(ck) = Checkpoint::open(&path) else {
        return;
    };
    let keys: Vec<String> = ck.keys().take(64).map(str::to_string).collect();
    for k in keys {
        let _ = ck.read_f32(&k);
    }
});
