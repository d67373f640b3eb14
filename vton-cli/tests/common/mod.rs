//! What the `vton serve` tests share: the real binary started on loopback (`--port 0`, the
//! bound address read from its first line of stdout), a real HTTP client (ureq), replies
//! read whole, multipart bodies written by hand, the bundled examples.
#![allow(dead_code)] // each test file uses its own part

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("examples")
}

/// A file of `examples/`.
pub fn read(p: &str) -> Vec<u8> {
    std::fs::read(examples().join(p)).unwrap()
}

pub struct Server {
    pub child: Child,
    pub addr: String,
}

impl Server {
    /// `vton serve --port 0 ARGS...`, returned once it listens (the model may still load).
    pub fn start(args: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_vton"))
            .args(["serve", "--port", "0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("first line {line:?}"))
            .to_string();
        Server { child, addr }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn health(&self) -> serde_json::Value {
        let r = self.get("/api/v1/health");
        assert_eq!(r.status, 200);
        r.json()
    }

    /// Polls `/api/v1/health` until `model_loaded` (two minutes at most).
    pub fn wait_loaded(&self) {
        let t = Instant::now();
        while !self.health()["model_loaded"].as_bool().unwrap() {
            assert!(t.elapsed() < Duration::from_secs(120), "model not loaded");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn get(&self, path: &str) -> Reply {
        reply(ureq::get(&self.url(path)).call())
    }

    pub fn post_json(&self, path: &str, body: &serde_json::Value) -> Reply {
        reply(
            ureq::post(&self.url(path))
                .set("Content-Type", "application/json")
                .send_bytes(body.to_string().as_bytes()),
        )
    }

    /// A multipart POST with extra request headers.
    pub fn post_multipart(
        &self,
        path: &str,
        parts: &[(&str, &[u8])],
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut req = ureq::post(&self.url(path)).set(
            "Content-Type",
            &format!("multipart/form-data; boundary={BOUNDARY}"),
        );
        for (k, v) in headers {
            req = req.set(k, v);
        }
        reply(req.send_bytes(&multipart(parts)))
    }

    /// The value of an unlabelled sample `name` in `/metrics`.
    pub fn metric(&self, name: &str) -> f64 {
        let r = self.get("/metrics");
        assert_eq!(r.status, 200);
        let text = String::from_utf8(r.body).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
            .unwrap_or_else(|| panic!("{name} not in {text}"))
            .parse()
            .unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A whole HTTP reply, whatever its status.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(&self.body)))
    }

    /// Asserts an error reply: status, JSON shape, code; returns the message.
    pub fn error(&self, status: u16, code: &str) -> String {
        assert_eq!(
            self.status,
            status,
            "{:?}",
            String::from_utf8_lossy(&self.body)
        );
        let j = self.json();
        assert_eq!(j["status"], "error");
        assert_eq!(j["error"]["code"], code, "{j}");
        j["error"]["message"].as_str().unwrap().to_string()
    }
}

/// Reads a ureq result into a [`Reply`]; only a transport error panics.
pub fn reply(r: Result<ureq::Response, ureq::Error>) -> Reply {
    let r = match r {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("transport error: {e}"),
    };
    let status = r.status();
    let headers = r
        .headers_names()
        .into_iter()
        .map(|n| {
            let v = r.header(&n).unwrap_or("").to_string();
            (n, v)
        })
        .collect();
    let mut body = Vec::new();
    r.into_reader().read_to_end(&mut body).unwrap();
    Reply {
        status,
        headers,
        body,
    }
}

pub const BOUNDARY: &str = "vtonTestBoundary7MA4YWxkTrZu0gW";

/// A `multipart/form-data` body (boundary [`BOUNDARY`]), each part named and a file.
pub fn multipart(parts: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = Vec::new();
    for (name, data) in parts {
        write!(
            b,
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{name}\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        )
        .unwrap();
        b.extend_from_slice(data);
        b.extend_from_slice(b"\r\n");
    }
    write!(b, "--{BOUNDARY}--\r\n").unwrap();
    b
}
