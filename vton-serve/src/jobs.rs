//! Batch jobs over HTTP: `POST /api/v1/files`, `POST /api/v1/batch`,
//! `GET /api/v1/jobs/{id}`, `GET /api/v1/jobs/{id}/results/{index}`,
//! `DELETE /api/v1/jobs/{id}`, and the dispatcher that runs the pairs.
//!
//! The state lives in the [`Store`] (SQLite, durable). The dispatcher takes a worker
//! (the same `--workers` permits `/tryon` takes, so interactive requests and batch pairs
//! share the model fairly, first come first served), then claims the next pending pair;
//! a pair's result is written before it is marked done. Jobs can be submitted while the
//! model loads: they start when it is ready. On SIGTERM the dispatcher claims nothing
//! more and the pairs running finish; a `kill -9` leaves them `running`, and the next
//! start puts them back in the queue ([`Store::open`]).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use crate::error::ApiError;
use crate::limits::OutputFormat;
use crate::run::{self, TryOnOptions};
use crate::store::{Claim, Store, MAX_PAIRS};
use crate::AppState;

/// Runs a store operation on the blocking pool.
async fn blocking<T: Send + 'static>(
    state: &Arc<AppState>,
    f: impl FnOnce(&Store) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let store = state.store.clone().ok_or(ApiError::BatchDisabled)?;
    tokio::task::spawn_blocking(move || f(&store))
        .await
        .map_err(|e| ApiError::Internal {
            message: format!("job store task failed: {e}"),
        })?
}

fn content_type(req: &Request) -> String {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

/// `POST /api/v1/files`: multipart with one field `file`; stores its bytes.
pub async fn upload(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let limit = state.config.max_body;
    let r = async {
        if state.store.is_none() {
            return Err((ApiError::BatchDisabled, Some(req)));
        }
        let ctype = content_type(&req);
        if !ctype
            .to_ascii_lowercase()
            .starts_with("multipart/form-data")
        {
            return Err((
                ApiError::UnsupportedMediaType {
                    found: ctype,
                    expected: "multipart/form-data".into(),
                },
                Some(req),
            ));
        }
        let read = async {
            let mut mp =
                Multipart::from_request(req, &state)
                    .await
                    .map_err(|e| ApiError::InvalidInput {
                        message: e.body_text(),
                    })?;
            let mut file: Option<Bytes> = None;
            while let Some(field) = mp
                .next_field()
                .await
                .map_err(|e| crate::multipart_error(e, limit))?
            {
                let name = field.name().unwrap_or("").to_string();
                let data = field
                    .bytes()
                    .await
                    .map_err(|e| crate::multipart_error(e, limit))?;
                if name != "file" {
                    return Err(ApiError::InvalidInput {
                        message: format!("unknown field `{name}` (the one field is `file`)"),
                    });
                }
                file = Some(data);
            }
            file.ok_or(ApiError::MissingField {
                field: "file".into(),
            })
        };
        let bytes = read.await.map_err(|e| (e, None))?;
        let size = bytes.len();
        let id = blocking(&state, move |s| s.add_file(&bytes))
            .await
            .map_err(|e| (e, None))?;
        Ok((
            StatusCode::CREATED,
            Json(serde_json::json!({"file_id": id, "size": size})),
        )
            .into_response())
    }
    .await;
    match r {
        Ok(r) => r,
        Err((e, Some(req))) => crate::reject(req, limit, e).await,
        Err((e, None)) => e.into_response(),
    }
}

/// One pair of `POST /api/v1/batch`: each value a file id or a path relative to
/// `--data-dir`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchPair {
    person: String,
    garment: String,
    keypoints: Option<String>,
    person_mask: Option<String>,
    garment_mask: Option<String>,
    parse: Option<String>,
    densepose: Option<String>,
    parse_agnostic: Option<String>,
    agnostic: Option<String>,
}

impl BatchPair {
    /// `(field name as run::FIELDS, value)` of the inputs given.
    fn fields(&self) -> Vec<(&'static str, &str)> {
        let opt = [
            ("keypoints", &self.keypoints),
            ("person_mask", &self.person_mask),
            ("garment_mask", &self.garment_mask),
            ("parse", &self.parse),
            ("densepose", &self.densepose),
            ("parse_agnostic", &self.parse_agnostic),
            ("agnostic", &self.agnostic),
        ];
        let mut v = vec![
            ("person_image", self.person.as_str()),
            ("garment_image", self.garment.as_str()),
        ];
        v.extend(
            opt.iter()
                .filter_map(|(f, v)| v.as_deref().map(|v| (*f, v))),
        );
        v
    }
}

/// The JSON key a field came from, for error messages.
fn json_key(field: &str) -> &str {
    match field {
        "person_image" => "person",
        "garment_image" => "garment",
        f => f,
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchRequest {
    pairs: Vec<BatchPair>,
    #[serde(default)]
    options: Option<serde_json::Value>,
}

/// `POST /api/v1/batch` (JSON): creates a job; 202 with its summary and `Location`.
pub async fn submit(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let limit = state.config.max_body;
    if state.store.is_none() {
        return crate::reject(req, limit, ApiError::BatchDisabled).await;
    }
    let ctype = content_type(&req);
    let essence = ctype.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return crate::reject(
            req,
            limit,
            ApiError::UnsupportedMediaType {
                found: ctype,
                expected: "application/json".into(),
            },
        )
        .await;
    }
    match submit_inner(&state, req.into_body(), limit).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn submit_inner(
    state: &Arc<AppState>,
    body: Body,
    limit: usize,
) -> Result<Response, ApiError> {
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::BodyTooLarge { limit })?;
    let req: BatchRequest = serde_json::from_slice(&bytes).map_err(|e| ApiError::InvalidInput {
        message: format!("batch JSON: {e}"),
    })?;
    if req.pairs.is_empty() {
        return Err(ApiError::InvalidInput {
            message: "`pairs` is empty".into(),
        });
    }
    if req.pairs.len() > MAX_PAIRS {
        return Err(ApiError::InvalidInput {
            message: format!(
                "{} pairs: a batch holds at most {MAX_PAIRS}",
                req.pairs.len()
            ),
        });
    }
    let options = match &req.options {
        None | Some(serde_json::Value::Null) => "{}".to_string(),
        Some(v) => v.to_string(),
    };
    let checked = TryOnOptions::parse(Some(options.as_bytes()))?;
    if checked.return_mask {
        return Err(ApiError::InvalidOptions {
            message: "return_mask is not available for batch jobs (one result image per pair)"
                .into(),
        });
    }
    let ext = match checked.format {
        OutputFormat::Png => "png",
        OutputFormat::Jpeg => "jpg",
    };
    let pairs = req.pairs;
    let summary = blocking(state, move |s| {
        let mut resolved = Vec::with_capacity(pairs.len());
        for (i, p) in pairs.iter().enumerate() {
            let mut m = BTreeMap::new();
            for (field, value) in p.fields() {
                let what = format!("pairs[{i}].{}", json_key(field));
                m.insert(field.to_string(), s.resolve(value, &what)?);
            }
            resolved.push(m);
        }
        let id = s.create_job(&resolved, &options, ext)?;
        s.job(&id, false)
    })
    .await?;
    state.batch_wake.notify_one();
    let id = summary["job_id"].as_str().unwrap_or_default().to_string();
    let mut resp = (StatusCode::ACCEPTED, Json(summary)).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/api/v1/jobs/{id}")) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

/// `GET /api/v1/jobs/{id}`: status and every pair's state.
pub async fn get_job(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    match blocking(&state, move |s| s.job(&id, true)).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `DELETE /api/v1/jobs/{id}`: cancels the pairs not started.
pub async fn cancel_job(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    match blocking(&state, move |s| s.cancel(&id)).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `GET /api/v1/jobs/{id}/results/{index}`: the image of a done pair.
pub async fn get_result(
    State(state): State<Arc<AppState>>,
    Path((id, index)): Path<(String, String)>,
) -> Response {
    let r = async {
        let index: i64 =
            index
                .parse()
                .ok()
                .filter(|i| *i >= 0)
                .ok_or_else(|| ApiError::UnknownId {
                    kind: "result",
                    id: format!("{id}/{index}"),
                })?;
        blocking(&state, move |s| {
            let (path, mime) = s.result(&id, index)?;
            let bytes = std::fs::read(&path).map_err(|e| ApiError::Internal {
                message: format!("result {}: {e}", path.display()),
            })?;
            Ok((mime, bytes))
        })
        .await
    }
    .await;
    match r {
        Ok((mime, bytes)) => ([(header::CONTENT_TYPE, mime)], bytes).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Pairs running now (for the graceful stop).
pub static RUNNING: AtomicUsize = AtomicUsize::new(0);

/// Runs pending pairs until `stop` is set: one worker permit per pair.
pub async fn dispatcher(state: Arc<AppState>, stop: Arc<AtomicBool>) {
    let Some(store) = state.store.clone() else {
        return;
    };
    // Wait for the model.
    let engine = loop {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        if let Some(e) = state.engine.get() {
            break e.clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    loop {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let permit = tokio::select! {
            p = state.workers.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
            _ = tokio::time::sleep(Duration::from_millis(500)) => continue,
        };
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let s = store.clone();
        let claim = match tokio::task::spawn_blocking(move || s.claim()).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                tracing::error!("batch: cannot claim a pair: {e}");
                None
            }
            Err(e) => {
                tracing::error!("batch: claim task failed: {e}");
                None
            }
        };
        let Some(claim) = claim else {
            drop(permit);
            // Nothing to do: wait for a submission (or look again in a while).
            let _ = tokio::time::timeout(Duration::from_secs(2), state.batch_wake.notified()).await;
            continue;
        };
        RUNNING.fetch_add(1, Ordering::SeqCst);
        let (engine, store, st) = (engine.clone(), store.clone(), state.clone());
        tokio::spawn(async move {
            run_claim(&st, engine, store, claim).await;
            drop(permit);
            RUNNING.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

async fn run_claim(state: &Arc<AppState>, engine: Arc<crate::Engine>, store: Arc<Store>, c: Claim) {
    let cancel = Arc::new(AtomicBool::new(false));
    let (cancel2, max_pixels) = (cancel.clone(), state.config.max_pixels);
    let claim = c.clone();
    let s = store.clone();
    let job = tokio::task::spawn_blocking(move || {
        let start = Instant::now();
        let out = (|| {
            let fields = s.read_inputs(&claim)?;
            let opts = TryOnOptions::parse(Some(claim.options.as_bytes()))?;
            run::run_fields(&engine, fields, &opts, opts.format, max_pixels, &cancel2)
                .map(|(image, _, _)| image)
        })();
        let secs = start.elapsed().as_secs_f64();
        if let Err(e) = s.finish(&claim, out, secs) {
            tracing::error!(job = %claim.job_id, index = claim.index, "batch: cannot record the result: {e}");
        }
        secs
    });
    let timeout = state.config.timeout;
    let res = match timeout {
        Some(t) => {
            tokio::pin!(job);
            match tokio::time::timeout(t, &mut job).await {
                Ok(r) => r,
                Err(_) => {
                    // The pair stops at its next cancellation point (diffusion steps)
                    // and is recorded as failed by the model's own error.
                    cancel.store(true, Ordering::Relaxed);
                    job.await
                }
            }
        }
        None => job.await,
    };
    match res {
        Ok(secs) => tracing::info!(job = %c.job_id, index = c.index, seconds = secs, "batch pair"),
        Err(e) => {
            tracing::error!(job = %c.job_id, index = c.index, "batch pair panicked: {e}");
            let _ = tokio::task::spawn_blocking(move || {
                store.finish(
                    &c,
                    Err(ApiError::Internal {
                        message: "the model panicked on this pair".into(),
                    }),
                    0.0,
                )
            })
            .await;
        }
    }
}
