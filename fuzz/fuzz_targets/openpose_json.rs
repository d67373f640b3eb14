//! Fuzzes the OpenPose keypoint JSON readers: `io::pose::parse_people` with the person
//! selection the pipelines use, and the training data's `train::data::parse_pose_rows`.
//! Any byte string must parse or fail with a typed error, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vton_core::io::pose::{parse_people, select_person};
use vton_core::io::{Joint, PersonSelection};

fuzz_target!(|data: &[u8]| {
    let _ = vton_core::train::data::parse_pose_rows(data, "fuzz.json");
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(people) = parse_people(text, "fuzz.json") else {
        return;
    };
    for p in &people {
        assert_eq!(p.keypoints.len(), 25, "poses are BODY_25");
    }
    for selection in [PersonSelection::Largest, PersonSelection::Index(1)] {
        if let Ok(pose) = select_person(people.clone(), selection, "fuzz.json") {
            let _ = pose.require([Joint::Neck, Joint::RShoulder, Joint::LHip], "fuzz");
            let _ = pose.to_flat();
        }
    }
});
