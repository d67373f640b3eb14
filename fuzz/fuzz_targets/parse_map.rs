//! Fuzzes the label-map PNG decoder (`io::ParseMap::from_png_bytes`, over
//! `io::parse::decode_label_png`, which the training data's parse maps also use): any
//! byte string must decode or fail with a typed error, never panic or allocate more
//! than the file could hold (a header claiming 2^31 x 2^31 pixels is refused first).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vton_core::io::ParseMap;

fuzz_target!(|data: &[u8]| {
    let _ = vton_core::io::parse::decode_label_png(data, "fuzz.png");
    let Ok(map) = ParseMap::from_png_bytes(data, "fuzz.png") else {
        return;
    };
    assert_eq!(map.labels.len(), map.width * map.height);
    let groups = map.to_hrviton13().expect("a LIP map maps to the 13 groups");
    assert!(groups.labels.iter().all(|&l| l < 13));
});
