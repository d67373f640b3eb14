//! Fuzzes the training pair list parser (`train_pairs.txt`, `train::data::parse_pairs`):
//! any byte string must parse or fail with a typed error, never panic; every pair it
//! returns names two files inside the dataset folders.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(pairs) = vton_core::train::data::parse_pairs(data, "fuzz_pairs.txt") else {
        return;
    };
    assert!(!pairs.is_empty());
    for (person, cloth) in &pairs {
        for name in [person, cloth] {
            assert!(!name.is_empty() && !name.chars().any(char::is_whitespace));
            assert!(!name.starts_with('/') && !name.split('/').any(|c| c == ".."));
        }
    }
});
