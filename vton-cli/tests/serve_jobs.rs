//! `vton serve` batch jobs end to end: the real binary on loopback with `--data-dir`, a
//! real HTTP client (ureq), the bundled examples. The crash test kills the server with
//! SIGKILL (`Child::kill`) in the middle of a job and restarts it on the same folder.

use std::collections::BTreeMap;

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

mod common;
use common::{examples, multipart, reply, Server, BOUNDARY};

fn post_multipart(s: &Server, path: &str, parts: &[(&str, &[u8])]) -> common::Reply {
    s.post_multipart(path, parts, &[])
}

fn job(s: &Server, id: &str) -> serde_json::Value {
    let r = s.get(&format!("/api/v1/jobs/{id}"));
    assert_eq!(r.status, 200);
    r.json()
}

/// Polls the job until `done(job)`.
fn wait_job(s: &Server, id: &str, done: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let t = Instant::now();
    loop {
        let j = job(s, id);
        if done(&j) {
            return j;
        }
        assert!(t.elapsed() < Duration::from_secs(120), "job stuck: {j}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

const PERSONS: &[&str] = &["mpl_grace_hopper", "skimage_astronaut"];
const GARMENTS: &[&str] = &["openvto_shirt1_front", "openvto_shirt2_front"];

/// A data folder with the example persons and garments under `cat/`.
fn data_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let cat = d.path().join("cat");
    std::fs::create_dir_all(&cat).unwrap();
    for p in PERSONS {
        for suffix in [".png", "_keypoints.json", "_mask.png"] {
            let f = format!("{p}{suffix}");
            std::fs::copy(examples().join("person").join(&f), cat.join(&f)).unwrap();
        }
    }
    for g in GARMENTS {
        for suffix in [".png", "_mask.png"] {
            let f = format!("{g}{suffix}");
            std::fs::copy(examples().join("garment").join(&f), cat.join(&f)).unwrap();
        }
    }
    d
}

fn pair(p: &str, g: &str) -> serde_json::Value {
    serde_json::json!({
        "person": format!("cat/{p}.png"),
        "garment": format!("cat/{g}.png"),
        "keypoints": format!("cat/{p}_keypoints.json"),
        "person_mask": format!("cat/{p}_mask.png"),
        "garment_mask": format!("cat/{g}_mask.png"),
    })
}

fn pixels(png: &[u8]) -> image::RgbImage {
    image::load_from_memory(png)
        .unwrap_or_else(|e| panic!("result does not decode: {e}"))
        .to_rgb8()
}

#[test]
fn batch_jobs_end_to_end() {
    let data = data_dir();
    let s = Server::start(&[
        "--workers",
        "2",
        "--data-dir",
        data.path().to_str().unwrap(),
    ]);
    // Upload a garment: its file id works as a batch value.
    let garment = std::fs::read(data.path().join("cat/openvto_shirt1_front.png")).unwrap();
    let up = post_multipart(&s, "/api/v1/files", &[("file", &garment)]);
    assert_eq!(up.status, 201, "{}", String::from_utf8_lossy(&up.body));
    let file_id = up.json()["file_id"].as_str().unwrap().to_string();
    assert_eq!(up.json()["size"], garment.len());
    let mut by_id = pair(PERSONS[1], GARMENTS[0]);
    by_id["garment"] = file_id.clone().into();
    // Pair 2: an undecodable person image, which fails alone.
    std::fs::write(data.path().join("cat/broken.png"), b"not an image").unwrap();
    let mut broken = pair(PERSONS[0], GARMENTS[1]);
    broken["person"] = "cat/broken.png".into();
    let body = serde_json::json!({
        "pairs": [pair(PERSONS[0], GARMENTS[1]), by_id, broken],
        "options": {"output_format": "png"}
    });
    let r = s.post_json("/api/v1/batch", &body);
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    let j = r.json();
    let id = j["job_id"].as_str().unwrap().to_string();
    assert_eq!(
        (j["total"].as_u64(), j["completed"].as_u64()),
        (Some(3), Some(0))
    );
    assert_eq!(r.header("location"), Some(&*format!("/api/v1/jobs/{id}")));
    let j = wait_job(&s, &id, |j| {
        j["status"] != "queued" && j["status"] != "running"
    });
    assert_eq!(j["status"], "completed_with_errors", "{j}");
    assert_eq!(
        (j["completed"].as_u64(), j["failed"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(j["pairs"][2]["state"], "failed");
    assert_eq!(j["pairs"][2]["error"]["code"], "invalid_image", "{j}");
    assert!(j["pairs"][2]["result"].is_null());
    // Each result equals POST /api/v1/tryon on the same inputs.
    for (i, (p, g)) in [(PERSONS[0], GARMENTS[1]), (PERSONS[1], GARMENTS[0])]
        .iter()
        .enumerate()
    {
        let res = s.get(&format!("/api/v1/jobs/{id}/results/{i}"));
        assert_eq!(res.status, 200);
        let read = |f: String| std::fs::read(data.path().join("cat").join(f)).unwrap();
        let direct = reply(
            ureq::post(&s.url("/api/v1/tryon"))
                .set(
                    "Content-Type",
                    &format!("multipart/form-data; boundary={BOUNDARY}"),
                )
                .set("Accept", "image/png")
                .send_bytes(&multipart(&[
                    ("person_image", &read(format!("{p}.png"))),
                    ("garment_image", &read(format!("{g}.png"))),
                    ("keypoints", &read(format!("{p}_keypoints.json"))),
                    ("person_mask", &read(format!("{p}_mask.png"))),
                    ("garment_mask", &read(format!("{g}_mask.png"))),
                ])),
        );
        assert_eq!(direct.status, 200);
        assert!(
            pixels(&res.body) == pixels(&direct.body),
            "pair {i} differs from /tryon"
        );
    }
    s.get(&format!("/api/v1/jobs/{id}/results/2"))
        .error(409, "conflict");
    s.get(&format!("/api/v1/jobs/{id}/results/9"))
        .error(404, "unknown_id");
    s.get(&format!("/api/v1/jobs/{id}/results/x"))
        .error(404, "unknown_id");
    s.get("/api/v1/jobs/nosuchjob").error(404, "unknown_id");
    reply(ureq::delete(&s.url(&format!("/api/v1/jobs/{id}"))).call()).error(409, "conflict");
    // Bad submissions, each named.
    let m = s
        .post_json(
            "/api/v1/batch",
            &serde_json::json!({"pairs": [{"person": "../etc/passwd", "garment": "cat/x.png"}]}),
        )
        .error(400, "invalid_input");
    assert!(m.contains("pairs[0].person"), "{m}");
    let m = s
        .post_json(
            "/api/v1/batch",
            &serde_json::json!({"pairs": [pair(PERSONS[0], "nope")]}),
        )
        .error(400, "invalid_input");
    assert!(m.contains("pairs[0].garment"), "{m}");
    s.post_json("/api/v1/batch", &serde_json::json!({"pairs": []}))
        .error(400, "invalid_input");
    s.post_json(
        "/api/v1/batch",
        &serde_json::json!({"pairs": [pair(PERSONS[0], GARMENTS[0])], "options": {"quality": 0}}),
    )
    .error(400, "invalid_options");
    s.post_json("/api/v1/batch", &serde_json::json!({"pears": []}))
        .error(400, "invalid_input");
    reply(
        ureq::post(&s.url("/api/v1/batch"))
            .set("Content-Type", "application/json")
            .send_bytes(b"{not json"),
    )
    .error(400, "invalid_input");
    reply(
        ureq::post(&s.url("/api/v1/batch"))
            .set("Content-Type", "text/plain")
            .send_bytes(b"{}"),
    )
    .error(415, "unsupported_media_type");
    post_multipart(&s, "/api/v1/files", &[("other", b"x")]).error(400, "invalid_input");
    post_multipart(&s, "/api/v1/files", &[]).error(400, "missing_field");
    // Cancel: a job of many pairs, cancelled at once; pairs not started never run.
    let many: Vec<_> = (0..30).map(|_| pair(PERSONS[0], GARMENTS[0])).collect();
    let r = s.post_json("/api/v1/batch", &serde_json::json!({"pairs": many}));
    let id2 = r.json()["job_id"].as_str().unwrap().to_string();
    let c = reply(ureq::delete(&s.url(&format!("/api/v1/jobs/{id2}"))).call());
    assert_eq!(c.status, 200);
    assert_eq!(c.json()["status"], "cancelled");
    let j = wait_job(&s, &id2, |j| j["running"] == 0);
    let cancelled = j["cancelled"].as_u64().unwrap();
    assert!(cancelled >= 26, "{j}");
    assert_eq!(j["completed"].as_u64().unwrap() + cancelled, 30);
    let metrics = String::from_utf8(s.get("/metrics").body).unwrap();
    assert!(
        metrics.contains("vton_jobs{state=\"completed_with_errors\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("vton_jobs{state=\"cancelled\"} 1"),
        "{metrics}"
    );
}

#[test]
fn without_a_data_dir_batch_routes_say_so() {
    let s = Server::start(&["--workers", "2"]);
    s.post_json("/api/v1/batch", &serde_json::json!({"pairs": []}))
        .error(404, "batch_disabled");
    post_multipart(&s, "/api/v1/files", &[("file", b"x")]).error(404, "batch_disabled");
    s.get("/api/v1/jobs/x").error(404, "batch_disabled");
}

/// The result files of a job: name -> (bytes, mtime).
fn results(dir: &Path) -> BTreeMap<String, (Vec<u8>, SystemTime)> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            let bytes = std::fs::read(e.path()).unwrap();
            (name, (bytes, e.metadata().unwrap().modified().unwrap()))
        })
        .collect()
}

#[test]
fn a_job_survives_kill_9() {
    let data = data_dir();
    let dir = data.path().to_str().unwrap().to_string();
    const N: usize = 16;
    let pairs: Vec<_> = (0..N)
        .map(|i| pair(PERSONS[i % 2], GARMENTS[(i / 2) % 2]))
        .collect();
    let mut s = Server::start(&["--workers", "2", "--data-dir", &dir]);
    let r = s.post_json("/api/v1/batch", &serde_json::json!({"pairs": pairs}));
    assert_eq!(r.status, 202);
    let id = r.json()["job_id"].as_str().unwrap().to_string();
    wait_job(&s, &id, |j| j["completed"].as_u64().unwrap() >= 3);
    s.child.kill().unwrap(); // SIGKILL
    s.child.wait().unwrap();
    let out = data.path().join("results").join(&id);
    let before = results(&out);
    assert!(
        before.len() < N,
        "the job finished before the kill; make it longer"
    );
    drop(s);
    let s = Server::start(&["--workers", "2", "--data-dir", &dir]);
    let j = wait_job(&s, &id, |j| j["status"] == "completed");
    assert_eq!(j["completed"].as_u64(), Some(N as u64), "{j}");
    let after = results(&out);
    // Exactly one complete file per pair, nothing else (no temporary left behind).
    let names: Vec<String> = (0..N).map(|i| format!("{i}.png")).collect();
    assert_eq!(
        after.keys().cloned().collect::<Vec<_>>().len(),
        N,
        "{:?}",
        after.keys()
    );
    for n in &names {
        assert!(after.contains_key(n), "{n} missing: {:?}", after.keys());
    }
    for (name, (bytes, _)) in &after {
        let i: usize = name.trim_end_matches(".png").parse().unwrap();
        let img = pixels(bytes);
        let served = s.get(&format!("/api/v1/jobs/{id}/results/{i}"));
        assert_eq!(&served.body, bytes);
        // Same inputs, same image: pairs 0 and 4 are (person 0, garment 0), as 8 and 12.
        assert!(img == pixels(&after[&format!("{}.png", i % 4)].0), "{name}");
    }
    // The results written before the kill were not redone.
    for (name, (bytes, mtime)) in &before {
        let (b, m) = &after[name];
        assert_eq!((b, m), (bytes, mtime), "{name} was rewritten");
        let i: usize = name.trim_end_matches(".png").parse().unwrap();
        assert_eq!(j["pairs"][i]["attempts"], 1, "{}", j["pairs"][i]);
    }
    // Nobody ran more than twice (once before the kill, once after).
    for p in j["pairs"].as_array().unwrap() {
        assert!(p["attempts"].as_u64().unwrap() <= 2, "{p}");
    }
}
