//! `vton serve`: the try-on HTTP server (axum on a multi-threaded tokio runtime).
//!
//! - The model is loaded once, on a thread of its own, while the server already answers
//!   `GET /api/v1/health` (`model_loaded: false`); other model routes give 503 until then.
//! - Model work runs on tokio's blocking pool, at most `workers` at a time; at most
//!   `queue` more requests wait for a worker, beyond that 429 with `Retry-After`. A
//!   request past `timeout` gets 504 (diffusion sampling is cancelled between steps).
//! - Limits: `max_body` bytes a request (413), `max_pixels` an image, checked from the
//!   image header before any decoding (413).
//! - `api_key`: every route but health needs `Authorization: Bearer <key>`; binding a
//!   non-loopback address without a key is refused at start.
//! - One log line per request (stderr) with a request id (`x-request-id`, echoed);
//!   Prometheus metrics at `/metrics`; OpenAPI at `/api/v1/openapi.json`.
//! - A panic in a handler is caught into a 500 JSON answer; SIGTERM / Ctrl-C stop
//!   accepting, finish the requests in flight, then [`run`] returns.
//!
//! - Batch jobs (`/api/v1/files`, `/api/v1/batch`, `/api/v1/jobs/...`, module [`jobs`])
//!   keep their state in a durable SQLite store in `Config::data_dir` (module [`store`]):
//!   a `kill -9` loses no finished result, and the next start continues the jobs.

pub mod engine;
pub mod error;
pub mod jobs;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod run;
pub mod store;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, FromRequest, MatchedPath, Multipart, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use tokio::sync::{Notify, Semaphore};

pub use engine::{Engine, Loader, Model};
pub use error::ApiError;
use limits::OutputFormat;
use run::{TryOnOptions, FIELDS, IMAGE_FIELDS};

/// Every route served, `(method, path)`; the OpenAPI spec describes each (tested).
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/v1/health"),
    ("POST", "/api/v1/tryon"),
    ("GET", "/api/v1/openapi.json"),
    ("GET", "/metrics"),
    ("POST", "/api/v1/files"),
    ("POST", "/api/v1/batch"),
    ("GET", "/api/v1/jobs/{id}"),
    ("DELETE", "/api/v1/jobs/{id}"),
    ("GET", "/api/v1/jobs/{id}/results/{index}"),
];

/// The server's settings (`vton serve`'s flags).
#[derive(Debug, Clone)]
pub struct Config {
    pub host: String,
    pub port: u16,
    /// Method name reported by health.
    pub method: String,
    /// Whether the model runs on a GPU (reported by health).
    pub gpu: bool,
    pub workers: usize,
    pub queue: usize,
    pub max_body: usize,
    pub max_pixels: u64,
    pub timeout: Option<Duration>,
    pub api_key: Option<String>,
    /// Where batch jobs keep their store, uploads and results (`None`: no batch jobs).
    pub data_dir: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 8000,
            method: "geometric".into(),
            gpu: false,
            workers: 1,
            queue: 16,
            max_body: 20 * 1024 * 1024,
            max_pixels: 4096 * 4096,
            timeout: Some(Duration::from_secs(300)),
            api_key: None,
            data_dir: None,
        }
    }
}

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("invalid setting {name}: {message}")]
    Config { name: String, message: String },
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    #[error("server error: {0}")]
    Serve(std::io::Error),
    #[error("loading the model failed: {0}")]
    Load(String),
    #[error("cannot open the job store in {dir}: {message}")]
    Store { dir: String, message: String },
}

/// Shared state of the running server.
pub struct AppState {
    config: Config,
    engine: OnceLock<Arc<Engine>>,
    workers: Arc<Semaphore>,
    /// The job store (with `--data-dir`).
    store: Option<Arc<store::Store>>,
    /// Wakes the batch dispatcher when a job is submitted.
    batch_wake: Notify,
    admitted: AtomicUsize,
    metrics: metrics::Metrics,
    /// Last try-on's processing time, ms, for Retry-After.
    last_ms: AtomicU64,
    next_id: AtomicU64,
    id_prefix: u32,
}

impl AppState {
    fn new(config: Config, store: Option<Arc<store::Store>>) -> Self {
        let id_prefix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() ^ (d.as_secs() as u32))
            .unwrap_or(0);
        Self {
            workers: Arc::new(Semaphore::new(config.workers.max(1))),
            config,
            engine: OnceLock::new(),
            store,
            batch_wake: Notify::new(),
            admitted: AtomicUsize::new(0),
            metrics: metrics::Metrics::default(),
            last_ms: AtomicU64::new(1000),
            next_id: AtomicU64::new(1),
            id_prefix,
        }
    }

    fn capacity(&self) -> usize {
        self.config.workers.max(1) + self.config.queue
    }

    /// Takes a place among the running-or-waiting requests, or 429.
    fn admit(self: &Arc<Self>) -> Result<Admission, ApiError> {
        let cap = self.capacity();
        self.admitted
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < cap).then_some(n + 1)
            })
            .map_err(|_| {
                let per = self.last_ms.load(Ordering::Relaxed) as f64 / 1000.0;
                let waves = (cap as f64 / self.config.workers.max(1) as f64).ceil();
                ApiError::QueueFull {
                    capacity: cap,
                    retry_after_s: (per * waves).ceil().max(1.0) as u64,
                }
            })?;
        self.metrics.queued.fetch_add(1, Ordering::Relaxed);
        Ok(Admission {
            state: self.clone(),
            queued: true,
        })
    }
}

/// A request's place: while waiting it counts in the queue depth, then in flight; freed
/// on drop (after the model work, even when the client already got its 504).
struct Admission {
    state: Arc<AppState>,
    queued: bool,
}

impl Admission {
    fn start(&mut self) {
        if self.queued {
            self.queued = false;
            self.state.metrics.queued.fetch_sub(1, Ordering::Relaxed);
            self.state.metrics.in_flight.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        if self.queued {
            self.state.metrics.queued.fetch_sub(1, Ordering::Relaxed);
        } else {
            self.state.metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
        }
        self.state.admitted.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The router with every route, limit and middleware.
pub fn app(state: Arc<AppState>) -> Router {
    Router::new()
        .route(ROUTES[0].1, get(health))
        .route(ROUTES[1].1, post(tryon))
        .route(ROUTES[2].1, get(openapi_json))
        .route(ROUTES[3].1, get(metrics_text))
        .route(ROUTES[4].1, post(jobs::upload))
        .route(ROUTES[5].1, post(jobs::submit))
        .route(ROUTES[6].1, get(jobs::get_job).delete(jobs::cancel_job))
        .route(ROUTES[8].1, get(jobs::get_result))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.config.max_body))
        .layer(from_fn_with_state(state.clone(), auth))
        .layer(from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

async fn not_found(req: Request) -> ApiError {
    ApiError::NotFound {
        path: req.uri().path().to_string(),
    }
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

fn request_id(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(id) = headers.get("x-request-id").and_then(|v| v.to_str().ok()) {
        if !id.is_empty()
            && id.len() <= 64
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return id.to_string();
        }
    }
    format!(
        "{:08x}-{}",
        state.id_prefix,
        state.next_id.fetch_add(1, Ordering::Relaxed)
    )
}

/// Request id, one log line, metrics, and a panic caught into 500 JSON.
async fn observe(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let id = request_id(&state, req.headers());
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    // The handler runs as a task of its own: a panic in it ends that task, not the
    // connection, and comes back here as an error.
    let mut resp = match tokio::spawn(next.run(req)).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(request_id = %id, "handler failed: {e}");
            ApiError::Internal {
                message: "the request handler failed".into(),
            }
            .into_response()
        }
    };
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    let secs = start.elapsed().as_secs_f64();
    let status = resp.status().as_u16();
    state.metrics.observe(&route, &method, status, secs);
    tracing::info!(
        request_id = %id,
        method = %method,
        path = %path,
        status,
        latency_ms = format_args!("{:.1}", secs * 1000.0),
        "request"
    );
    resp
}

/// Reads and drops a rejected request's body (at most `limit` bytes, 10 s), so that a
/// client still sending it reads the answer instead of a reset connection. A body
/// declared larger than `limit` is not read: that answer is 413 and the connection closes.
async fn drain(mut body: Body, limit: usize) {
    use axum::body::HttpBody;
    if body.size_hint().lower() > limit as u64 {
        return;
    }
    let read = async {
        let mut n = 0usize;
        while let Some(Ok(frame)) =
            std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await
        {
            n += frame.data_ref().map_or(0, |d| d.len());
            if n > limit {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(10), read).await;
}

/// An early answer to a request whose body has not been read.
pub(crate) async fn reject(req: Request, limit: usize, e: ApiError) -> Response {
    drain(req.into_body(), limit).await;
    e.into_response()
}

fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `Authorization: Bearer <key>` on every route but health, when a key is set.
async fn auth(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if let Some(key) = &state.config.api_key {
        if req.uri().path() != ROUTES[0].1 {
            let given = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::trim);
            if !given.is_some_and(|g| same(g.as_bytes(), key.as_bytes())) {
                return reject(req, state.config.max_body, ApiError::Unauthorized).await;
            }
        }
    }
    next.run(req).await
}

async fn health(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "status": "healthy",
        "model_loaded": state.engine.get().is_some(),
        "gpu_available": state.config.gpu,
        "version": env!("CARGO_PKG_VERSION"),
        "method": state.config.method,
    }))
}

async fn openapi_json() -> Json<serde_json::Value> {
    Json(openapi::spec())
}

async fn metrics_text(State(state): State<Arc<AppState>>) -> Response {
    let mut text = state.metrics.render();
    if let Some(store) = state.store.clone() {
        let counts = tokio::task::spawn_blocking(move || store.jobs_by_status()).await;
        if let Ok(Ok(counts)) = counts {
            metrics::render_jobs(&mut text, &counts, jobs::RUNNING.load(Ordering::Relaxed));
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

pub(crate) fn multipart_error(
    e: axum::extract::multipart::MultipartError,
    limit: usize,
) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::BodyTooLarge { limit }
    } else {
        ApiError::InvalidInput {
            message: format!("malformed multipart body: {}", e.body_text()),
        }
    }
}

/// Which bare image the client's Accept header asks for, if any.
fn accept_image(headers: &HeaderMap) -> Option<OutputFormat> {
    let accept = headers.get(header::ACCEPT)?.to_str().ok()?;
    accept
        .split(',')
        .find_map(|part| match part.split(';').next().unwrap_or("").trim() {
            "image/png" => Some(OutputFormat::Png),
            "image/jpeg" => Some(OutputFormat::Jpeg),
            _ => None,
        })
}

async fn tryon(State(state): State<Arc<AppState>>, req: Request) -> Response {
    match tryon_inner(&state, req).await {
        Ok(r) => r,
        Err((e, Some(req))) => reject(req, state.config.max_body, e).await,
        Err((e, None)) => e.into_response(),
    }
}

/// Checks made before the body is read: on failure the request comes back, to be drained.
fn admit_request(
    state: &Arc<AppState>,
    req: &Request,
) -> Result<(Arc<Engine>, Admission), ApiError> {
    let engine = state.engine.get().cloned().ok_or(ApiError::ModelLoading)?;
    let ctype = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ctype
        .to_ascii_lowercase()
        .starts_with("multipart/form-data")
    {
        return Err(ApiError::UnsupportedMediaType {
            found: ctype.to_string(),
            expected: "multipart/form-data".into(),
        });
    }
    let limit = state.config.max_body;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::BodyTooLarge { limit });
    }
    Ok((engine, state.admit()?))
}

async fn tryon_inner(
    state: &Arc<AppState>,
    req: Request,
) -> Result<Response, (ApiError, Option<Request>)> {
    let (engine, admission) = match admit_request(state, &req) {
        Ok(x) => x,
        Err(e) => return Err((e, Some(req))),
    };
    let headers = req.headers().clone();
    tryon_admitted(state, req, headers, engine, admission)
        .await
        .map_err(|e| (e, None))
}

async fn tryon_admitted(
    state: &Arc<AppState>,
    req: Request,
    headers: HeaderMap,
    engine: Arc<Engine>,
    mut admission: Admission,
) -> Result<Response, ApiError> {
    let limit = state.config.max_body;
    // --timeout counts from admission: a slow upload holds its place no longer.
    let timeout = state.config.timeout;
    let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
    let timed_out = || ApiError::Timeout {
        seconds: timeout.map_or(0.0, |t| t.as_secs_f64()),
    };
    let read = async {
        let mut mp =
            Multipart::from_request(req, state)
                .await
                .map_err(|e| ApiError::InvalidInput {
                    message: e.body_text(),
                })?;
        let mut fields: HashMap<String, Bytes> = HashMap::new();
        let mut unknown = None;
        // The whole body is read (it is within --max-body) before any answer.
        while let Some(field) = mp
            .next_field()
            .await
            .map_err(|e| multipart_error(e, limit))?
        {
            let name = field.name().unwrap_or("").to_string();
            let data = field.bytes().await.map_err(|e| multipart_error(e, limit))?;
            if FIELDS.contains(&name.as_str()) {
                fields.insert(name, data);
            } else {
                unknown.get_or_insert(name);
            }
        }
        if let Some(name) = unknown {
            return Err(ApiError::InvalidInput {
                message: format!("unknown field `{name}` (fields: {})", FIELDS.join(", ")),
            });
        }
        Ok(fields)
    };
    let fields = match deadline {
        Some(d) => tokio::time::timeout_at(d, read)
            .await
            .map_err(|_| timed_out())??,
        None => read.await?,
    };
    for f in ["person_image", "garment_image"] {
        if !fields.contains_key(f) {
            return Err(ApiError::MissingField { field: f.into() });
        }
    }
    let opts = TryOnOptions::parse(fields.get("options").map(|b| &b[..]))?;
    let max_pixels = state.config.max_pixels;
    // Header-only checks, before anything is decoded.
    let mut input_res = (0, 0);
    for f in IMAGE_FIELDS {
        if let Some(b) = fields.get(*f) {
            let dims = limits::check_pixels(f, b, max_pixels)?;
            if *f == "person_image" {
                input_res = dims;
            }
        }
    }
    let bare = accept_image(&headers);
    let format = bare.unwrap_or(opts.format);
    let cancel = Arc::new(AtomicBool::new(false));
    let cancel_job = cancel.clone();
    let workers = state.workers.clone();
    let st = state.clone();
    let work = async move {
        let permit = workers
            .acquire_owned()
            .await
            .map_err(|_| ApiError::ShuttingDown)?;
        admission.start();
        let job = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let _admission = admission;
            let start = Instant::now();
            let r = run::run_fields(&engine, fields, &opts, format, max_pixels, &cancel_job);
            st.last_ms
                .store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
            r.map(|r| (r, start.elapsed().as_secs_f64()))
        });
        match job.await {
            Ok(r) => r,
            Err(e) if e.is_panic() => Err(ApiError::Internal {
                message: "the model panicked on this input".into(),
            }),
            Err(e) => Err(ApiError::Internal {
                message: e.to_string(),
            }),
        }
    };
    let result = match deadline {
        Some(d) => match tokio::time::timeout_at(d, work).await {
            Ok(r) => r,
            Err(_) => {
                cancel.store(true, Ordering::Relaxed);
                return Err(timed_out());
            }
        },
        None => work.await,
    };
    let ((image, mask, out_res), secs) = result?;
    if bare.is_some() {
        return Ok(([(header::CONTENT_TYPE, format.mime())], Body::from(image)).into_response());
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut body = serde_json::json!({
        "status": "success",
        "result_image": b64.encode(&image),
        "processing_time": secs,
        "metadata": {
            "input_resolution": [input_res.0, input_res.1],
            "output_resolution": [out_res.0, out_res.1],
            "output_format": match format { OutputFormat::Png => "png", OutputFormat::Jpeg => "jpeg" },
            "method": state.config.method,
        }
    });
    if let Some(m) = mask {
        body["mask"] = serde_json::Value::String(b64.encode(&m));
    }
    Ok(Json(body).into_response())
}

fn check(config: &Config) -> Result<(), ServeError> {
    let bad = |name: &str, message: &str| ServeError::Config {
        name: name.into(),
        message: message.into(),
    };
    let loopback = config.host == "localhost"
        || config
            .host
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !loopback && config.api_key.is_none() {
        return Err(bad(
            "--host",
            &format!(
                "{} is not a loopback address: serving beyond this machine needs --api-key-file",
                config.host
            ),
        ));
    }
    if config.workers == 0 {
        return Err(bad("--workers", "must be at least 1"));
    }
    if config.max_body == 0 {
        return Err(bad("--max-body", "must be at least 1"));
    }
    if config.max_pixels == 0 {
        return Err(bad("--max-pixels", "must be at least 1"));
    }
    if config.timeout.is_some_and(|t| t.is_zero()) {
        return Err(bad("--timeout", "must be positive"));
    }
    if config
        .api_key
        .as_deref()
        .is_some_and(|k| k.trim().is_empty())
    {
        return Err(bad("--api-key-file", "the key file is empty"));
    }
    Ok(())
}

/// Starts the server, prints `listening on http://ADDR` as the first line of stdout,
/// loads the model with `loader` in the background and serves until SIGTERM / Ctrl-C
/// (then finishes the requests in flight) or until loading fails.
pub fn run(config: Config, loader: Loader) -> Result<(), ServeError> {
    check(&config)?;
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(ServeError::Runtime)?;
    let result = rt.block_on(serve(config, loader));
    // Work that outlived its request (past --timeout) is not waited for.
    rt.shutdown_timeout(Duration::from_secs(1));
    result
}

async fn serve(config: Config, loader: Loader) -> Result<(), ServeError> {
    // The job store first: a store that cannot be opened stops the start, before listening.
    let store = match &config.data_dir {
        Some(dir) => {
            let d = dir.clone();
            let opened = tokio::task::spawn_blocking(move || store::Store::open(&d))
                .await
                .map_err(|e| ServeError::Store {
                    dir: dir.display().to_string(),
                    message: e.to_string(),
                })?;
            Some(Arc::new(opened.map_err(|e| ServeError::Store {
                dir: dir.display().to_string(),
                message: e.to_string(),
            })?))
        }
        None => None,
    };
    let addr = format!("{}:{}", config.host, config.port);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|source| ServeError::Bind {
            addr: addr.clone(),
            source,
        })?;
    let local: SocketAddr = listener.local_addr().map_err(ServeError::Serve)?;
    {
        use std::io::Write;
        let mut out = std::io::stdout();
        let _ = writeln!(out, "listening on http://{local}");
        let _ = out.flush();
    }
    let state = Arc::new(AppState::new(config, store));
    let failed = Arc::new(Notify::new());
    let load_error: Arc<OnceLock<String>> = Arc::new(OnceLock::new());
    {
        let (state, failed, load_error) = (state.clone(), failed.clone(), load_error.clone());
        let method = state.config.method.clone();
        std::thread::spawn(move || {
            let start = Instant::now();
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(loader)) {
                Ok(Ok(engine)) => {
                    let _ = state.engine.set(Arc::new(engine));
                    state.metrics.model_loaded.store(true, Ordering::Relaxed);
                    tracing::info!(method = %method, seconds = start.elapsed().as_secs_f64(), "model loaded");
                }
                Ok(Err(e)) => {
                    let _ = load_error.set(e.to_string());
                    failed.notify_one();
                }
                Err(_) => {
                    let _ = load_error.set("the loader panicked".into());
                    failed.notify_one();
                }
            }
        });
    }
    let stop_batch = Arc::new(AtomicBool::new(false));
    let dispatcher = tokio::spawn(jobs::dispatcher(state.clone(), stop_batch.clone()));
    let app = app(state.clone());
    let shutdown = async move {
        let ctrl_c = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        #[cfg(unix)]
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => tracing::info!("interrupt: finishing requests in flight"),
            _ = term => tracing::info!("SIGTERM: finishing requests in flight"),
            _ = failed.notified() => {}
        }
    };
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(ServeError::Serve);
    // Batch pairs running finish (bounded by --timeout, else a minute); the rest stay in
    // the store for the next start.
    stop_batch.store(true, Ordering::Relaxed);
    let _ = dispatcher.await;
    let wait = state.config.timeout.unwrap_or(Duration::from_secs(60));
    let t = Instant::now();
    while jobs::RUNNING.load(Ordering::SeqCst) > 0 && t.elapsed() < wait {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    served?;
    match load_error.get() {
        Some(e) => Err(ServeError::Load(e.clone())),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_loopback_needs_a_key() {
        let mut c = Config {
            host: "0.0.0.0".into(),
            ..Config::default()
        };
        assert!(matches!(check(&c), Err(ServeError::Config { .. })));
        c.api_key = Some("k".into());
        assert!(check(&c).is_ok());
        for h in ["127.0.0.1", "::1", "localhost", "127.1.2.3"] {
            let c = Config {
                host: h.into(),
                ..Config::default()
            };
            assert!(check(&c).is_ok(), "{h}");
        }
    }

    #[test]
    fn accept_negotiation() {
        let mut h = HeaderMap::new();
        assert_eq!(accept_image(&h), None);
        h.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        assert_eq!(accept_image(&h), None);
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static("text/html, image/jpeg;q=0.9"),
        );
        assert_eq!(accept_image(&h), Some(OutputFormat::Jpeg));
    }
}
