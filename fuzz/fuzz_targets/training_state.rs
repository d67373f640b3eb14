//! Fuzzes the training-state reader (`TrainingState::from_bytes`, what
//! `TrainingState::load` reads a checkpoint folder with). The input is `state.json`, a
//! NUL byte, then the bytes every other file of the folder reads as
//! (`optimizer.safetensors` and the model files `state.json` names); JSON cannot hold a
//! raw NUL, so the split loses nothing. Any input must load or fail with a typed error,
//! never panic, allocate absurdly, or ask for a file outside the folder.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vton_core::train::checkpoint::TrainingState;

fuzz_target!(|data: &[u8]| {
    let (state, files) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let _ = TrainingState::from_bytes("fuzz-run/checkpoints/step_0", state, |name| {
        assert!(
            !name.is_empty() && !name.contains(['/', '\\']) && name != "." && name != "..",
            "asked for {name:?}, outside the checkpoint folder"
        );
        Ok(files.to_vec())
    });
});
