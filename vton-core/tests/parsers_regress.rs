//! Parsers of untrusted files, on the inputs that broke them or that they must refuse
//! (the fuzz targets in `fuzz/` explore the rest; see docs/fuzzing.md): each must come
//! back as a typed [`VtonError`], never a panic or an absurd allocation.

use std::collections::BTreeMap;

use vton_core::io::parse::{decode_label_png, MAX_LABEL_PNG_BYTES};
use vton_core::io::ParseMap;
use vton_core::train::checkpoint::{
    crc32_update, load_safetensors_bytes, StateTensor, TrainingState,
};
use vton_core::train::data::{parse_pairs, parse_pose_rows};
use vton_core::VtonError;

mod common;

/// An 8-bit grey PNG of `w` x `h` labels.
fn grey_png(w: u32, h: u32, labels: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(png::ColorType::Grayscale);
        enc.set_depth(png::BitDepth::Eight);
        let mut wr = enc.write_header().unwrap();
        wr.write_image_data(labels).unwrap();
    }
    out
}

/// `png` with the IHDR's width and height replaced (and its CRC fixed), so that only the
/// size claim is wrong.
fn claim_size(mut png: Vec<u8>, w: u32, h: u32) -> Vec<u8> {
    // Signature (8), length (4), "IHDR" (4), then width and height; CRC after 13 bytes.
    assert_eq!(&png[12..16], b"IHDR");
    png[16..20].copy_from_slice(&w.to_be_bytes());
    png[20..24].copy_from_slice(&h.to_be_bytes());
    let crc = crc32_update(0, &png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    png
}

#[test]
fn label_png_decodes_and_size_claims_are_refused_before_allocating() {
    let labels: Vec<u8> = (0..12u8).map(|i| i % 20).collect();
    let good = grey_png(4, 3, &labels);
    let map = ParseMap::from_png_bytes(&good, "good.png").unwrap();
    assert_eq!((map.width, map.height), (4, 3));
    assert_eq!(map.labels, labels);

    // A column of 2^31-1 pixels (2 GiB) and 60000^2 (3.6 GB) pass the PNG crate's own
    // checks (which bound a row, not the image); the old reader allocated the whole
    // buffer before finding the data missing.
    for (w, h) in [(1, 0x7FFF_FFFF), (60_000, 60_000)] {
        let bomb = claim_size(good.clone(), w, h);
        let err = decode_label_png(&bomb, "bomb.png").unwrap_err();
        assert!(
            matches!(&err, VtonError::Image { message, .. } if message.contains("larger than")),
            "{w}x{h}: {err}"
        );
    }
    // 2^31-1 squared: refused by the PNG crate's row limit, as a typed error too.
    let err = decode_label_png(&claim_size(good.clone(), 0x7FFF_FFFF, 0x7FFF_FFFF), "b.png");
    assert!(matches!(err, Err(VtonError::Image { .. })), "{err:?}");
    // 4000^2 = 16 MB fits the cap, but not in a file of under a hundred bytes.
    let small_file = claim_size(good.clone(), 4000, 4000);
    assert!(4000 * 4000 <= MAX_LABEL_PNG_BYTES);
    let err = ParseMap::from_png_bytes(&small_file, "claims.png").unwrap_err();
    assert!(
        matches!(&err, VtonError::Image { message, .. } if message.contains("can hold")),
        "{err}"
    );
    // Truncated and out-of-scheme maps.
    assert!(matches!(
        ParseMap::from_png_bytes(&good[..good.len() - 20], "cut.png"),
        Err(VtonError::Image { .. })
    ));
    let bad_label = grey_png(2, 1, &[3, 200]);
    let err = ParseMap::from_png_bytes(&bad_label, "label.png").unwrap_err();
    assert!(
        matches!(&err, VtonError::Image { message, .. } if message.contains("label 200")),
        "{err}"
    );
}

#[test]
fn pair_lists_parse_and_names_outside_the_dataset_are_refused() {
    let pairs = parse_pairs(b"a.jpg\tb.jpg\r\n\n  men/c.jpg   ./d.jpg \n", "pairs").unwrap();
    assert_eq!(
        pairs,
        vec![
            ("a.jpg".to_string(), "b.jpg".to_string()),
            ("men/c.jpg".to_string(), "./d.jpg".to_string()),
        ]
    );
    for text in [
        &b"../../etc/passwd b.jpg\n"[..],
        b"a.jpg /etc/shadow\n",
        b"a.jpg cloth/../../x.jpg\n",
        b"a.jpg\n",
        b"a b c\n",
        b" \n\n",
        b"",
        b"a.jpg \xff\xfe.jpg\n",
    ] {
        let err = parse_pairs(text, "pairs").unwrap_err();
        assert!(
            matches!(err, VtonError::InvalidArgument { .. }),
            "{text:?}: {err}"
        );
    }
}

#[test]
fn pose_rows_take_whole_triples_of_numbers() {
    let rows = parse_pose_rows(
        br#"{"people": [{"pose_keypoints": [1, 2, 0.5, 3, 4, 0]}]}"#,
        "p.json",
    )
    .unwrap();
    assert_eq!(rows, vec![[1.0, 2.0], [3.0, 4.0]]);
    for text in [
        &br#"{"people": []}"#[..],
        br#"{"people": [{"pose_keypoints_2d": [1, 2]}]}"#,
        br#"{"people": [{"pose_keypoints_2d": [1, "x", 3]}]}"#,
        br#"{"people": [{"pose_keypoints_2d": []}]}"#,
        br#"[1, 2, 3]"#,
        b"\xff",
    ] {
        let err = parse_pose_rows(text, "p.json").unwrap_err();
        assert!(matches!(err, VtonError::Json { .. }), "{text:?}: {err}");
    }
}

#[test]
fn safetensors_bytes_refuse_truncation() {
    let bytes = std::fs::read(common::fixture("truncated.safetensors")).unwrap();
    let err = load_safetensors_bytes("truncated.safetensors", &bytes).unwrap_err();
    assert!(matches!(err, VtonError::Checkpoint { .. }), "{err}");
    // A header claiming 10^12 f32 elements over 4 bytes of data.
    let header = br#"{"w":{"dtype":"F32","shape":[1000000,1000000],"data_offsets":[0,4]}}"#;
    let mut bomb = (header.len() as u64).to_le_bytes().to_vec();
    bomb.extend_from_slice(header);
    bomb.extend_from_slice(&[0; 4]);
    let err = load_safetensors_bytes("bomb.safetensors", &bomb).unwrap_err();
    assert!(matches!(err, VtonError::Checkpoint { .. }), "{err}");
}

/// `state.json`, the model file and the optimizer file as `TrainingState::save` writes them.
fn saved_state() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let mut state = TrainingState {
        global_step: 3,
        lr_step: 3,
        ..Default::default()
    };
    let mut sd = BTreeMap::new();
    sd.insert(
        "w".to_string(),
        StateTensor::f32(vec![2], vec![1.0, -2.0]).unwrap(),
    );
    state.models.insert("model".to_string(), sd);
    let tmp = tempfile::tempdir().unwrap();
    let dir = state.save(tmp.path()).unwrap();
    let json = std::fs::read(dir.join("state.json")).unwrap();
    let model = std::fs::read(dir.join("model.safetensors")).unwrap();
    let optimizer = std::fs::read(dir.join("optimizer.safetensors")).unwrap();
    (json, model, optimizer)
}

#[test]
fn training_state_files_named_outside_the_folder_are_refused_unread() {
    let (json, model, optimizer) = saved_state();
    let files = |name: &str| match name {
        "model.safetensors" => Ok(model.clone()),
        "optimizer.safetensors" => Ok(optimizer.clone()),
        other => panic!("asked for {other:?}"),
    };
    let loaded = TrainingState::from_bytes("run/step_3", &json, files).unwrap();
    assert_eq!(loaded.global_step, 3);
    assert_eq!(loaded.models["model"]["w"].to_f32_vec(), vec![1.0, -2.0]);

    let text = String::from_utf8(json.clone()).unwrap();
    let field = "\"safetensors\": \"model.safetensors\"";
    assert!(text.contains(field), "{text}");
    for evil in [
        "../../secret.safetensors",
        "/etc/passwd",
        "..",
        "sub/model.safetensors",
    ] {
        let crafted = text.replacen(field, &format!("\"safetensors\": {evil:?}"), 1);
        let err = TrainingState::from_bytes("run/step_3", crafted.as_bytes(), files).unwrap_err();
        assert!(
            matches!(&err, VtonError::Json { message, .. } if message.contains("not a file name")),
            "{evil}: {err}"
        );
    }
    // A state.json that is not JSON, or not UTF-8, is a typed error too.
    for bad in [&b"\xff\xfe"[..], b"{", b"[]", b"{\"format\": 1}"] {
        let err = TrainingState::from_bytes("run/step_3", bad, files).unwrap_err();
        assert!(matches!(err, VtonError::Json { .. }), "{bad:?}: {err}");
    }
}
