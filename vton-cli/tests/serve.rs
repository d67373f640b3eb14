//! `vton serve` end to end: the real binary on loopback (`--port 0`, the address read from
//! its first line of stdout), a real HTTP client (ureq), the bundled examples.
//!
//! Two requests are written by hand on a TCP socket, where a client library cannot do
//! what the test needs: a body declared larger than `--max-body` (answered 413 from the
//! header, before any body is sent), and an upload held half-sent, which keeps a request
//! admitted for as long as the test wants: that makes the 429 (`--workers 1 --queue 0`)
//! and "SIGTERM while a request is in flight" deterministic, with no test-only code in
//! the server.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

mod common;
use common::{multipart, read, reply, Reply, Server, BOUNDARY};

fn post(s: &Server, parts: &[(&str, &[u8])], accept: Option<&str>, key: Option<&str>) -> Reply {
    let auth = key.map(|k| format!("Bearer {k}"));
    let mut headers = Vec::new();
    if let Some(a) = accept {
        headers.push(("Accept", a));
    }
    if let Some(k) = &auth {
        headers.push(("Authorization", k.as_str()));
    }
    s.post_multipart("/api/v1/tryon", parts, &headers)
}

fn get(s: &Server, path: &str) -> Reply {
    s.get(path)
}

/// Person with keypoints and mask (nothing to estimate), and the garment.
fn example_parts() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("person_image", read("person/openvto_ai_avatar1_upper.png")),
        (
            "keypoints",
            read("person/openvto_ai_avatar1_upper_keypoints.json"),
        ),
        (
            "person_mask",
            read("person/openvto_ai_avatar1_upper_mask.png"),
        ),
        ("garment_image", read("garment/openvto_shirt2_front.png")),
        (
            "garment_mask",
            read("garment/openvto_shirt2_front_mask.png"),
        ),
    ]
}

fn refs<'a>(p: &'a [(&'static str, Vec<u8>)]) -> Vec<(&'static str, &'a [u8])> {
    p.iter().map(|(n, d)| (*n, d.as_slice())).collect()
}

/// A PNG signature and IHDR chunk claiming `w x h`, no pixel data.
fn png_header(w: u32, h: u32) -> Vec<u8> {
    let mut v = vec![0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13];
    let mut chunk = b"IHDR".to_vec();
    chunk.extend(w.to_be_bytes());
    chunk.extend(h.to_be_bytes());
    chunk.extend([8, 2, 0, 0, 0]);
    v.extend(&chunk);
    let mut c = !0u32;
    for &b in &chunk {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    v.extend((!c).to_be_bytes());
    v
}

/// Reads a whole `Connection: close` HTTP/1.1 response from a raw socket.
fn read_raw(mut s: TcpStream) -> (u16, String) {
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"));
    (status, text)
}

fn decode(bytes: &[u8], format: image::ImageFormat) -> image::RgbImage {
    image::load_from_memory_with_format(bytes, format)
        .unwrap()
        .to_rgb8()
}

#[test]
fn health_tryon_errors_openapi_metrics() {
    let s = Server::start(&["--max-body", "1000000", "--max-pixels", "1000000"]);
    let h = s.health();
    assert_eq!(h["status"], "healthy");
    assert_eq!(h["method"], "geometric");
    assert_eq!(h["gpu_available"], false);
    assert!(
        h["model_loaded"].is_boolean() && h["version"].is_string(),
        "{h}"
    );
    s.wait_loaded();

    // JSON answer, with the mask; the example's keypoints and masks are sent.
    let parts = example_parts();
    let opts = br#"{"output_format": "png", "return_mask": true}"#;
    let mut with_opts = refs(&parts);
    with_opts.push(("options", opts));
    let r = post(&s, &with_opts, None, None);
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    let j = r.json();
    assert_eq!(j["status"], "success");
    assert_eq!(
        j["metadata"]["input_resolution"],
        serde_json::json!([384, 512])
    );
    assert_eq!(
        j["metadata"]["output_resolution"],
        serde_json::json!([384, 512])
    );
    assert!(j["processing_time"].as_f64().unwrap() > 0.0);
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let img = decode(
        &b64.decode(j["result_image"].as_str().unwrap()).unwrap(),
        image::ImageFormat::Png,
    );
    assert_eq!(img.dimensions(), (384, 512));
    let person = decode(&parts[0].1, image::ImageFormat::Png);
    let changed = img
        .pixels()
        .zip(person.pixels())
        .filter(|(a, b)| a != b)
        .count();
    assert!(
        changed > 384 * 512 / 50,
        "only {changed} pixels differ from the person photo"
    );
    let mask = image::load_from_memory(&b64.decode(j["mask"].as_str().unwrap()).unwrap()).unwrap();
    assert_eq!((mask.width(), mask.height()), (384, 512));

    // Bare image by Accept; only the two photos (keypoints and masks estimated).
    let r = post(
        &s,
        &refs(&parts[..1])
            .into_iter()
            .chain([("garment_image", parts[3].1.as_slice())])
            .collect::<Vec<_>>(),
        Some("image/png"),
        None,
    );
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("content-type"), Some("image/png"));
    assert_eq!(
        decode(&r.body, image::ImageFormat::Png).dimensions(),
        (384, 512)
    );
    let r = post(&s, &refs(&parts), Some("image/jpeg"), None);
    assert_eq!(r.header("content-type"), Some("image/jpeg"));
    assert_eq!(
        decode(&r.body, image::ImageFormat::Jpeg).dimensions(),
        (384, 512)
    );

    // 400: undecodable image, missing field (named), bad options.
    let mut bad = refs(&parts);
    bad[3].1 = b"this is not an image";
    let m = post(&s, &bad, None, None).error(400, "invalid_image");
    assert!(m.contains("garment_image"), "{m}");
    let m = post(&s, &refs(&parts[..3]), None, None).error(400, "missing_field");
    assert!(m.contains("garment_image"), "{m}");
    for o in [
        &b"{not json"[..],
        br#"{"quality": 0}"#,
        br#"{"output_format": "gif"}"#,
        br#"{"bogus": 1}"#,
    ] {
        let mut p = refs(&parts);
        p.push(("options", o));
        post(&s, &p, None, None).error(400, "invalid_options");
    }
    let mut p = refs(&parts);
    p.push(("colour", b"red"));
    let m = post(&s, &p, None, None).error(400, "invalid_input");
    assert!(m.contains("colour"), "{m}");
    // 413: an image whose header claims 10^10 pixels (no pixel data), refused unread.
    let bomb = png_header(100_000, 100_000);
    let mut p = refs(&parts);
    p[0].1 = &bomb;
    let m = post(&s, &p, None, None).error(413, "too_many_pixels");
    assert!(
        m.contains("person_image") && m.contains("100000x100000"),
        "{m}"
    );
    // 413: a body declared over --max-body, answered from the header.
    let mut sock = TcpStream::connect(&s.addr).unwrap();
    write!(
        sock,
        "POST /api/v1/tryon HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
         Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: 5000000\r\n\r\n"
    )
    .unwrap();
    let (status, text) = read_raw(sock);
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("body_too_large"), "{text}");
    // 415, 404, 405.
    let r = reply(
        ureq::post(&s.url("/api/v1/tryon"))
            .set("Content-Type", "application/json")
            .send_string("{}"),
    );
    r.error(415, "unsupported_media_type");
    get(&s, "/api/v1/nothing").error(404, "not_found");
    get(&s, "/api/v1/tryon").error(405, "method_not_allowed");

    // The OpenAPI document describes every route this test called.
    let spec = get(&s, "/api/v1/openapi.json").json();
    assert_eq!(spec["openapi"], "3.0.3");
    for (m, p) in [
        ("get", "/api/v1/health"),
        ("post", "/api/v1/tryon"),
        ("get", "/api/v1/openapi.json"),
        ("get", "/metrics"),
    ] {
        assert!(spec["paths"][p][m]["responses"].is_object(), "{m} {p}");
    }
    for code in ["400", "413", "415", "429", "503", "504"] {
        assert!(
            spec["paths"]["/api/v1/tryon"]["post"]["responses"][code].is_object(),
            "{code}"
        );
    }

    // Metrics count what happened: 3 successful try-ons, 4 bad options among the 400s.
    let ok = s
        .metric("vton_http_requests_total{route=\"/api/v1/tryon\",method=\"POST\",status=\"200\"}");
    assert_eq!(ok, 3.0);
    let e400 = s
        .metric("vton_http_requests_total{route=\"/api/v1/tryon\",method=\"POST\",status=\"400\"}");
    assert_eq!(e400, 7.0);
    let n = s.metric("vton_http_request_duration_seconds_count{route=\"/api/v1/tryon\"}");
    assert!(n >= 14.0, "{n}");
    assert_eq!(s.metric("vton_queue_depth"), 0.0);
    assert_eq!(s.metric("vton_in_flight"), 0.0);
    assert_eq!(s.metric("vton_model_loaded"), 1.0);
}

#[test]
fn api_key_and_non_loopback_refusal() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key");
    std::fs::write(&key, "s3cret-key\n").unwrap();
    // No key file: a non-loopback host is refused before listening.
    let out = Command::new(env!("CARGO_BIN_EXE_vton"))
        .args(["serve", "--port", "0", "--host", "0.0.0.0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--api-key-file"));

    let s = Server::start(&["--api-key-file", key.to_str().unwrap()]);
    s.health(); // open without a key
    s.wait_loaded();
    let parts = example_parts();
    post(&s, &refs(&parts), None, None).error(401, "unauthorized");
    post(&s, &refs(&parts), None, Some("wrong")).error(401, "unauthorized");
    get(&s, "/metrics").error(401, "unauthorized");
    let r = post(&s, &refs(&parts), Some("image/png"), Some("s3cret-key"));
    assert_eq!(r.status, 200);
    let r = reply(
        ureq::get(&s.url("/metrics"))
            .set("Authorization", "Bearer s3cret-key")
            .call(),
    );
    assert_eq!(r.status, 200);
}

/// Bytes of a held request's body kept back: past the closing boundary, into the last
/// field's data, so that the body cannot be complete.
const HELD_BACK: usize = 200;

/// Opens a try-on and sends all but the end of its body: the request is admitted and waits.
fn half_sent(addr: &str, body: &[u8]) -> TcpStream {
    let mut sock = TcpStream::connect(addr).unwrap();
    write!(
        sock,
        "POST /api/v1/tryon HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAccept: image/png\r\n\
         Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    sock.write_all(&body[..body.len() - HELD_BACK]).unwrap();
    sock
}

#[test]
fn queue_full_429_then_sigterm_finishes_in_flight() {
    let s = Server::start(&["--workers", "1", "--queue", "0"]);
    s.wait_loaded();
    let parts = example_parts();
    let body = multipart(&refs(&parts));
    let mut held = half_sent(&s.addr, &body);
    let t = Instant::now();
    while s.metric("vton_queue_depth") < 1.0 {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "held request never admitted"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // One place (1 worker + 0 queue) and it is taken: 429 with Retry-After.
    let r = post(&s, &refs(&parts), None, None);
    r.error(429, "queue_full");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!(retry >= 1);

    // SIGTERM while the held request is in flight: it still gets its answer, then the
    // process exits 0.
    let pid = s.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    std::thread::sleep(Duration::from_millis(200));
    held.write_all(&body[body.len() - HELD_BACK..]).unwrap();
    let mut buf = Vec::new();
    held.read_to_end(&mut buf).unwrap();
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: image/png"),
        "{head}"
    );
    // Content-Length framed (Connection: close): the rest is the PNG.
    let img = decode(&buf[head_end..], image::ImageFormat::Png);
    assert_eq!(img.dimensions(), (384, 512));
    let mut s = s;
    let t = Instant::now();
    let status = loop {
        if let Some(st) = s.child.try_wait().unwrap() {
            break st;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "server did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
}

#[test]
fn timeout_504_frees_the_place() {
    let s = Server::start(&["--workers", "1", "--queue", "0", "--timeout", "2"]);
    s.wait_loaded();
    let parts = example_parts();
    let body = multipart(&refs(&parts));
    // An upload that stalls past --timeout: 504 (the clock runs from admission).
    let held = half_sent(&s.addr, &body);
    let (status, text) = read_raw(held);
    assert_eq!(status, 504, "{text}");
    assert!(text.contains("\"timeout\""), "{text}");
    // Its place is free again: a whole request gets through.
    let r = post(&s, &refs(&parts), Some("image/png"), None);
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    assert_eq!(s.metric("vton_queue_depth"), 0.0);
}

#[test]
fn failed_model_load_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-checkpoints");
    let out = Command::new(env!("CARGO_BIN_EXE_vton"))
        .args(["serve", "--port", "0", "--method", "cpvton", "--weights"])
        .arg(&missing)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("listening on http://127.0.0.1:"),
        "{stdout}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("loading the model failed"), "{stderr}");
}

/// 503 while the model loads. The load is held without test-only code in the server: the
/// `--gmm` path is a second name of a FIFO, so the loader's first open of it blocks until
/// the test opens the FIFO for writing. Meanwhile health answers with `model_loaded` false
/// and `/tryon` is refused 503 `model_loading`. The test then renames the real checkpoint
/// over that path and releases the FIFO with no bytes: the loader sees an empty header
/// (not safetensors), opens the path again as a PyTorch file and gets the real one.
#[test]
fn while_loading_health_answers_and_tryon_is_503() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("hold.fifo");
    let gmm = dir.path().join("gmm.pth");
    let st = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(st.success());
    std::fs::hard_link(&fifo, &gmm).unwrap();
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/gan");
    let tom = fixtures.join("cpvton_tom.pth");
    let s = Server::start(&[
        "--method",
        "cpvton",
        "--gmm",
        gmm.to_str().unwrap(),
        "--tom",
        tom.to_str().unwrap(),
        "--ngf",
        "8",
    ]);
    let parts = example_parts();
    for _ in 0..3 {
        let h = s.health();
        assert_eq!(h["status"], "healthy");
        assert_eq!(h["model_loaded"], false, "{h}");
        assert_eq!(h["method"], "cpvton");
        let m = post(&s, &refs(&parts), None, None).error(503, "model_loading");
        assert!(m.contains("load"), "{m}");
        assert_eq!(s.metric("vton_model_loaded"), 0.0);
        std::thread::sleep(Duration::from_millis(100));
    }
    // Release the loader onto the real checkpoint.
    let staged = dir.path().join("staged.pth");
    std::fs::copy(fixtures.join("cpvton_gmm.pth"), &staged).unwrap();
    std::fs::rename(&staged, &gmm).unwrap();
    drop(std::fs::OpenOptions::new().write(true).open(&fifo).unwrap());
    s.wait_loaded();
    let r = post(&s, &refs(&parts), Some("image/png"), None);
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    let (w, h) = image::load_from_memory(&r.body)
        .unwrap()
        .to_rgb8()
        .dimensions();
    assert!(w > 0 && h > 0);
}
