//! The durable job store of `vton serve --data-dir DIR`: uploaded files, batch jobs and
//! the state of every pair, in SQLite (WAL journal, `synchronous=FULL`: a committed
//! change survives `kill -9` and power loss), with the files beside it:
//!
//! ```text
//! DIR/jobs.sqlite              jobs, pairs, files (tables below)
//! DIR/files/<file_id>          uploaded bytes (POST /api/v1/files)
//! DIR/results/<job_id>/<i>.png result of pair i (or .jpg)
//! ```
//!
//! Crash safety, the rules every write follows:
//! - A file (upload or result) is written to a temporary name in its folder, fsynced,
//!   renamed into place and the folder fsynced; only then is the row that names it
//!   committed. So a row never names a half-written file, and a result file that exists
//!   is complete.
//! - A pair is claimed (`pending` -> `running`, attempts + 1) in one transaction.
//!   At [`Store::open`], pairs left `running` by a crash go back to `pending`, unless
//!   their result file exists (the crash fell between the rename and the commit): those
//!   are marked `done` without running again. Temporary files are removed. A pair
//!   interrupted [`MAX_ATTEMPTS`] times is failed instead of retried forever.
//!
//! Input values of a batch are a `file_id` or a path relative to `DIR`, checked to stay
//! inside it (no absolute paths, no `..`, symbolic links resolved) when the job is
//! submitted and again when the pair runs.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde_json::{json, Value};

use crate::error::ApiError;

/// A pair interrupted by this many crashes is failed rather than retried.
pub const MAX_ATTEMPTS: i64 = 3;
/// Most pairs one batch may hold.
pub const MAX_PAIRS: usize = 10_000;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS files (
    id TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    options TEXT NOT NULL,
    ext TEXT NOT NULL,
    total INTEGER NOT NULL,
    cancelled INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS pairs (
    job_id TEXT NOT NULL REFERENCES jobs(id),
    idx INTEGER NOT NULL,
    inputs TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'running', 'done', 'failed', 'cancelled')),
    attempts INTEGER NOT NULL DEFAULT 0,
    error_code TEXT,
    error_message TEXT,
    seconds REAL,
    PRIMARY KEY (job_id, idx)
);
CREATE INDEX IF NOT EXISTS pairs_by_state ON pairs(state);
";

/// One claimed pair, to run.
#[derive(Debug, Clone)]
pub struct Claim {
    pub job_id: String,
    pub index: i64,
    /// Field name (as `run::FIELDS`) -> path relative to the data folder.
    pub inputs: BTreeMap<String, String>,
    /// The job's options JSON.
    pub options: String,
    pub ext: String,
}

/// The store (one connection; every operation is short and runs off the async threads).
pub struct Store {
    conn: Mutex<Connection>,
    root: PathBuf,
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn db(e: rusqlite::Error) -> ApiError {
    ApiError::Internal {
        message: format!("job store: {e}"),
    }
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> ApiError + '_ {
    move |e| ApiError::Internal {
        message: format!("{}: {e}", path.display()),
    }
}

/// A new random id: 32 lowercase hex digits (128 bits from the OS).
pub fn new_id() -> Result<String, ApiError> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| ApiError::Internal {
        message: format!("no randomness for an id: {e}"),
    })?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

fn is_id(s: &str) -> bool {
    s.len() == 32
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Writes `bytes` to `path` so that `path` is either absent or complete: temporary file in
/// the same folder, fsync, rename, fsync of the folder.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ApiError> {
    let dir = path.parent().ok_or_else(|| ApiError::Internal {
        message: format!("{} has no folder", path.display()),
    })?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", new_id()?));
    let res = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res.map_err(io(path))
}

fn remove_temporaries(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let path = e.path();
        if path.is_dir() {
            remove_temporaries(&path);
        } else if name.starts_with('.') && name.contains(".tmp-") {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// Counts of a job's pairs by state.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    pending: i64,
    running: i64,
    done: i64,
    failed: i64,
    cancelled: i64,
}

impl Counts {
    /// The job's status: `queued` (nothing started), `running`, `completed` (every pair
    /// done), `completed_with_errors` (all finished, some failed) or `cancelled`.
    fn status(&self, cancelled: bool) -> &'static str {
        if cancelled {
            "cancelled"
        } else if self.pending == 0 && self.running == 0 {
            if self.failed == 0 {
                "completed"
            } else {
                "completed_with_errors"
            }
        } else if self.running == 0 && self.done == 0 && self.failed == 0 {
            "queued"
        } else {
            "running"
        }
    }
}

/// Every job status, for the metrics.
pub const JOB_STATES: &[&str] = &[
    "queued",
    "running",
    "completed",
    "completed_with_errors",
    "cancelled",
];

impl Store {
    /// Opens (creating) the store in `dir` and recovers from a crash (module docs).
    pub fn open(dir: &Path) -> Result<Store, ApiError> {
        for d in [dir.to_path_buf(), dir.join("files"), dir.join("results")] {
            std::fs::create_dir_all(&d).map_err(io(&d))?;
        }
        let root = dir.canonicalize().map_err(io(dir))?;
        let path = root.join("jobs.sqlite");
        let conn = Connection::open(&path).map_err(db)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(db)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(db)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(ApiError::Internal {
                message: format!("{}: journal mode {mode}, not WAL", path.display()),
            });
        }
        conn.execute_batch("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;")
            .map_err(db)?;
        conn.execute_batch(SCHEMA).map_err(db)?;
        let store = Store {
            conn: Mutex::new(conn),
            root,
        };
        store.recover()?;
        Ok(store)
    }

    /// The data folder (canonical).
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn result_file(&self, job: &str, index: i64, ext: &str) -> PathBuf {
        self.root
            .join("results")
            .join(job)
            .join(format!("{index}.{ext}"))
    }

    fn recover(&self) -> Result<(), ApiError> {
        remove_temporaries(&self.root.join("files"));
        remove_temporaries(&self.root.join("results"));
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db)?;
        let interrupted: Vec<(String, i64, String)> = {
            let mut q = tx
                .prepare(
                    "SELECT p.job_id, p.idx, j.ext FROM pairs p JOIN jobs j ON j.id = p.job_id
                     WHERE p.state IN ('running', 'pending')",
                )
                .map_err(db)?;
            let rows = q
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .map_err(db)?;
            rows.collect::<Result<_, _>>().map_err(db)?
        };
        for (job, idx, ext) in interrupted {
            if self.result_file(&job, idx, &ext).is_file() {
                tx.execute(
                    "UPDATE pairs SET state = 'done' WHERE job_id = ?1 AND idx = ?2",
                    params![job, idx],
                )
                .map_err(db)?;
            }
        }
        tx.execute(
            "UPDATE pairs SET state = 'failed', error_code = 'interrupted',
             error_message = 'the server stopped during this pair ' || attempts || ' times'
             WHERE state = 'running' AND attempts >= ?1",
            params![MAX_ATTEMPTS],
        )
        .map_err(db)?;
        tx.execute(
            "UPDATE pairs SET state = 'pending' WHERE state = 'running'",
            [],
        )
        .map_err(db)?;
        tx.commit().map_err(db)
    }

    /// Stores an uploaded file; returns its id.
    pub fn add_file(&self, bytes: &[u8]) -> Result<String, ApiError> {
        let id = new_id()?;
        write_atomic(&self.root.join("files").join(&id), bytes)?;
        self.conn()
            .execute(
                "INSERT INTO files (id, size, created) VALUES (?1, ?2, ?3)",
                params![id, bytes.len() as i64, now()],
            )
            .map_err(db)?;
        Ok(id)
    }

    /// A path relative to the data folder that stays inside it, or why not.
    fn inside(&self, value: &str) -> Result<PathBuf, String> {
        if value.is_empty() {
            return Err("is empty".into());
        }
        if value.contains('\0') {
            return Err("contains a NUL byte".into());
        }
        let rel = Path::new(value);
        for c in rel.components() {
            match c {
                Component::Normal(_) | Component::CurDir => {}
                _ => {
                    return Err(format!(
                    "{value:?} is not a file_id or a path relative to the data folder without `..`"
                ))
                }
            }
        }
        let full = self
            .root
            .join(rel)
            .canonicalize()
            .map_err(|e| format!("{value:?}: {e}"))?;
        if !full.starts_with(&self.root) {
            return Err(format!("{value:?} leads outside the data folder"));
        }
        if !full.is_file() {
            return Err(format!("{value:?} is not a file"));
        }
        Ok(full)
    }

    /// Resolves a batch input value (a file id or a relative path) to a path relative to
    /// the data folder, or a 400 naming `what`.
    pub fn resolve(&self, value: &str, what: &str) -> Result<String, ApiError> {
        if is_id(value) {
            let known: Option<i64> = self
                .conn()
                .query_row("SELECT size FROM files WHERE id = ?1", [value], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(db)?;
            if known.is_some() {
                return Ok(format!("files/{value}"));
            }
        }
        let full = self.inside(value).map_err(|m| ApiError::InvalidInput {
            message: format!("{what}: {m}"),
        })?;
        let rel = full.strip_prefix(&self.root).unwrap_or(&full);
        Ok(rel.to_string_lossy().into_owned())
    }

    /// Reads a claimed pair's inputs (paths checked again: the folder may have changed).
    pub fn read_inputs(
        &self,
        claim: &Claim,
    ) -> Result<std::collections::HashMap<String, axum::body::Bytes>, ApiError> {
        let mut out = std::collections::HashMap::new();
        for (field, rel) in &claim.inputs {
            let full = self.inside(rel).map_err(|m| ApiError::InvalidInput {
                message: format!("{field}: {m}"),
            })?;
            let bytes = std::fs::read(&full).map_err(|e| ApiError::InvalidInput {
                message: format!("{field}: {rel}: {e}"),
            })?;
            out.insert(field.clone(), axum::body::Bytes::from(bytes));
        }
        Ok(out)
    }

    /// Creates a job from resolved pairs; returns its id.
    pub fn create_job(
        &self,
        pairs: &[BTreeMap<String, String>],
        options: &str,
        ext: &str,
    ) -> Result<String, ApiError> {
        let id = new_id()?;
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db)?;
        tx.execute(
            "INSERT INTO jobs (id, created, options, ext, total) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![id, now(), options, ext, pairs.len() as i64],
        )
        .map_err(db)?;
        {
            let mut ins = tx
                .prepare(
                    "INSERT INTO pairs (job_id, idx, inputs, state) VALUES (?1, ?2, ?3, 'pending')",
                )
                .map_err(db)?;
            for (i, p) in pairs.iter().enumerate() {
                let inputs = serde_json::to_string(p).map_err(|e| ApiError::Internal {
                    message: e.to_string(),
                })?;
                ins.execute(params![id, i as i64, inputs]).map_err(db)?;
            }
        }
        tx.commit().map_err(db)?;
        let dir = self.root.join("results").join(&id);
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        Ok(id)
    }

    fn counts(conn: &Connection, job: &str) -> Result<Counts, ApiError> {
        let mut c = Counts::default();
        let mut q = conn
            .prepare_cached("SELECT state, COUNT(*) FROM pairs WHERE job_id = ?1 GROUP BY state")
            .map_err(db)?;
        let rows = q
            .query_map([job], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .map_err(db)?;
        for row in rows {
            let (state, n) = row.map_err(db)?;
            match state.as_str() {
                "pending" => c.pending = n,
                "running" => c.running = n,
                "done" => c.done = n,
                "failed" => c.failed = n,
                _ => c.cancelled = n,
            }
        }
        Ok(c)
    }

    /// The job's summary (`pairs: false`) or its full state with every pair.
    pub fn job(&self, id: &str, pairs: bool) -> Result<Value, ApiError> {
        let conn = self.conn();
        let row: Option<(f64, i64, i64, String)> = conn
            .query_row(
                "SELECT created, total, cancelled, options FROM jobs WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()
            .map_err(db)?;
        let (created, total, cancelled, options) = row.ok_or_else(|| ApiError::UnknownId {
            kind: "job",
            id: id.into(),
        })?;
        let c = Self::counts(&conn, id)?;
        let mut v = json!({
            "job_id": id,
            "status": c.status(cancelled != 0),
            "total": total,
            "completed": c.done,
            "failed": c.failed,
            "pending": c.pending,
            "running": c.running,
            "cancelled": c.cancelled,
            "created": created,
        });
        if pairs {
            v["options"] = serde_json::from_str(&options).unwrap_or(Value::Null);
            let mut q = conn
                .prepare_cached(
                    "SELECT idx, state, attempts, error_code, error_message, seconds FROM pairs
                     WHERE job_id = ?1 ORDER BY idx",
                )
                .map_err(db)?;
            let rows = q
                .query_map([id], |r| {
                    let idx: i64 = r.get(0)?;
                    let state: String = r.get(1)?;
                    let code: Option<String> = r.get(3)?;
                    let message: Option<String> = r.get(4)?;
                    Ok(json!({
                        "index": idx,
                        "state": state,
                        "attempts": r.get::<_, i64>(2)?,
                        "error": code.map(|c| json!({"code": c, "message": message.unwrap_or_default()})),
                        "processing_time": r.get::<_, Option<f64>>(5)?,
                        "result": (state == "done").then(|| format!("/api/v1/jobs/{id}/results/{idx}")),
                    }))
                })
                .map_err(db)?;
            v["pairs"] = Value::Array(rows.collect::<Result<_, _>>().map_err(db)?);
        }
        Ok(v)
    }

    /// Cancels a job: its pending pairs are not run (a pair already running finishes and
    /// keeps its result). A finished job cannot be cancelled (409).
    pub fn cancel(&self, id: &str) -> Result<Value, ApiError> {
        {
            let mut conn = self.conn();
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db)?;
            let cancelled: Option<i64> = tx
                .query_row("SELECT cancelled FROM jobs WHERE id = ?1", [id], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(db)?;
            let cancelled = cancelled.ok_or_else(|| ApiError::UnknownId {
                kind: "job",
                id: id.into(),
            })?;
            if cancelled == 0 {
                let c = Self::counts(&tx, id)?;
                if c.pending == 0 && c.running == 0 {
                    return Err(ApiError::Conflict {
                        message: format!("job {id} has already finished ({})", c.status(false)),
                    });
                }
                tx.execute("UPDATE jobs SET cancelled = 1 WHERE id = ?1", [id])
                    .map_err(db)?;
                tx.execute(
                    "UPDATE pairs SET state = 'cancelled' WHERE job_id = ?1 AND state = 'pending'",
                    [id],
                )
                .map_err(db)?;
            }
            tx.commit().map_err(db)?;
        }
        self.job(id, false)
    }

    /// The result file of a finished pair, with its media type.
    pub fn result(&self, id: &str, index: i64) -> Result<(PathBuf, &'static str), ApiError> {
        let conn = self.conn();
        let row: Option<(String, String)> = conn
            .query_row(
                "SELECT p.state, j.ext FROM pairs p JOIN jobs j ON j.id = p.job_id
                 WHERE p.job_id = ?1 AND p.idx = ?2",
                params![id, index],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(db)?;
        let (state, ext) = row.ok_or_else(|| ApiError::UnknownId {
            kind: "result",
            id: format!("{id}/{index}"),
        })?;
        if state != "done" {
            return Err(ApiError::Conflict {
                message: format!("pair {index} of job {id} is {state}, not done"),
            });
        }
        let mime = if ext == "jpg" {
            "image/jpeg"
        } else {
            "image/png"
        };
        Ok((self.result_file(id, index, &ext), mime))
    }

    /// Claims the next pending pair (oldest job first), or `None`.
    pub fn claim(&self) -> Result<Option<Claim>, ApiError> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db)?;
        let row: Option<(String, i64, String, String, String)> = tx
            .query_row(
                "SELECT p.job_id, p.idx, p.inputs, j.options, j.ext FROM pairs p
                 JOIN jobs j ON j.id = p.job_id
                 WHERE p.state = 'pending' ORDER BY j.rowid, p.idx LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .optional()
            .map_err(db)?;
        let Some((job_id, index, inputs, options, ext)) = row else {
            return Ok(None);
        };
        tx.execute(
            "UPDATE pairs SET state = 'running', attempts = attempts + 1 WHERE job_id = ?1 AND idx = ?2",
            params![job_id, index],
        )
        .map_err(db)?;
        tx.commit().map_err(db)?;
        let inputs = serde_json::from_str(&inputs).map_err(|e| ApiError::Internal {
            message: format!("job store: inputs of {job_id}/{index}: {e}"),
        })?;
        Ok(Some(Claim {
            job_id,
            index,
            inputs,
            options,
            ext,
        }))
    }

    /// Records a claimed pair's outcome: the image is written (atomically) before the
    /// row says `done`.
    pub fn finish(
        &self,
        claim: &Claim,
        outcome: Result<Vec<u8>, ApiError>,
        seconds: f64,
    ) -> Result<(), ApiError> {
        let outcome = match outcome {
            Ok(image) => {
                let path = self.result_file(&claim.job_id, claim.index, &claim.ext);
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(io(dir))?;
                }
                write_atomic(&path, &image).map(|_| ())
            }
            Err(e) => Err(e),
        };
        let conn = self.conn();
        match outcome {
            Ok(()) => conn.execute(
                "UPDATE pairs SET state = 'done', seconds = ?3, error_code = NULL, error_message = NULL
                 WHERE job_id = ?1 AND idx = ?2",
                params![claim.job_id, claim.index, seconds],
            ),
            Err(e) => conn.execute(
                "UPDATE pairs SET state = 'failed', seconds = ?3, error_code = ?4, error_message = ?5
                 WHERE job_id = ?1 AND idx = ?2",
                params![claim.job_id, claim.index, seconds, e.code(), e.to_string()],
            ),
        }
        .map_err(db)?;
        Ok(())
    }

    /// Number of jobs in each status (every status of [`JOB_STATES`] present).
    pub fn jobs_by_status(&self) -> Result<Vec<(&'static str, i64)>, ApiError> {
        let conn = self.conn();
        let mut q = conn
            .prepare_cached(
                "SELECT j.cancelled,
                        SUM(p.state = 'pending'), SUM(p.state = 'running'), SUM(p.state = 'done'),
                        SUM(p.state = 'failed'), SUM(p.state = 'cancelled')
                 FROM jobs j JOIN pairs p ON p.job_id = j.id GROUP BY j.id",
            )
            .map_err(db)?;
        let mut by: BTreeMap<&'static str, i64> = JOB_STATES.iter().map(|s| (*s, 0)).collect();
        let rows = q
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)? != 0,
                    Counts {
                        pending: r.get(1)?,
                        running: r.get(2)?,
                        done: r.get(3)?,
                        failed: r.get(4)?,
                        cancelled: r.get(5)?,
                    },
                ))
            })
            .map_err(db)?;
        for row in rows {
            let (cancelled, c) = row.map_err(db)?;
            *by.entry(c.status(cancelled)).or_default() += 1;
        }
        Ok(JOB_STATES.iter().map(|s| (*s, by[s])).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(store: &Store, names: &[(&str, &str)]) -> BTreeMap<String, String> {
        names
            .iter()
            .map(|(f, v)| (f.to_string(), store.resolve(v, f).unwrap()))
            .collect()
    }

    #[test]
    fn paths_stay_inside_the_data_folder() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("data")).unwrap();
        std::fs::create_dir_all(s.root().join("cat")).unwrap();
        std::fs::write(s.root().join("cat/p.png"), b"x").unwrap();
        std::fs::write(dir.path().join("secret"), b"x").unwrap();
        assert_eq!(s.resolve("cat/p.png", "person").unwrap(), "cat/p.png");
        assert_eq!(s.resolve("./cat/p.png", "person").unwrap(), "cat/p.png");
        #[cfg(unix)]
        std::os::unix::fs::symlink(dir.path().join("secret"), s.root().join("cat/link")).unwrap();
        for bad in [
            "../secret",
            "cat/../../secret",
            "/etc/passwd",
            "",
            "cat",
            "missing.png",
            "cat/link",
        ] {
            let e = s.resolve(bad, "pairs[0].person").unwrap_err();
            assert!(matches!(e, ApiError::InvalidInput { .. }), "{bad}: {e}");
            assert!(e.to_string().contains("pairs[0].person"), "{e}");
        }
        let id = s.add_file(b"bytes").unwrap();
        assert_eq!(s.resolve(&id, "x").unwrap(), format!("files/{id}"));
        // An id-shaped value that is no file id is a (missing) path.
        assert!(s.resolve(&"0".repeat(32), "x").is_err());
    }

    #[test]
    fn claim_finish_cancel_and_recover() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let f = s.add_file(b"img").unwrap();
        let p = pair(&s, &[("person_image", &f), ("garment_image", &f)]);
        let job = s
            .create_job(&[p.clone(), p.clone(), p.clone()], "{}", "png")
            .unwrap();
        assert_eq!(s.job(&job, false).unwrap()["status"], "queued");
        let c0 = s.claim().unwrap().unwrap();
        assert_eq!((c0.index, c0.inputs.len()), (0, 2));
        assert_eq!(s.read_inputs(&c0).unwrap()["person_image"], &b"img"[..]);
        s.finish(&c0, Ok(b"png0".to_vec()), 0.1).unwrap();
        let c1 = s.claim().unwrap().unwrap();
        assert_eq!(c1.index, 1);
        // Not done yet: 409; unknown: 404.
        assert!(matches!(s.result(&job, 1), Err(ApiError::Conflict { .. })));
        assert!(matches!(s.result(&job, 9), Err(ApiError::UnknownId { .. })));
        let (path, mime) = s.result(&job, 0).unwrap();
        assert_eq!(
            (std::fs::read(path).unwrap(), mime),
            (b"png0".to_vec(), "image/png")
        );
        // A crash now: pair 1 is running. Simulate the crash falling after the rename of
        // pair 1's result but before its commit.
        std::fs::write(s.result_file(&job, 1, "png"), b"png1").unwrap();
        std::fs::write(
            s.root().join("results").join(&job).join(".2.png.tmp-x"),
            b"half",
        )
        .unwrap();
        drop(s);
        let s = Store::open(dir.path()).unwrap();
        let v = s.job(&job, true).unwrap();
        assert_eq!(v["completed"], 2, "{v}");
        assert_eq!(v["pairs"][1]["attempts"], 1);
        assert!(!s
            .root()
            .join("results")
            .join(&job)
            .join(".2.png.tmp-x")
            .exists());
        let c2 = s.claim().unwrap().unwrap();
        assert_eq!(c2.index, 2);
        s.finish(
            &c2,
            Err(ApiError::InvalidInput {
                message: "bad".into(),
            }),
            0.0,
        )
        .unwrap();
        assert!(s.claim().unwrap().is_none());
        let v = s.job(&job, true).unwrap();
        assert_eq!(v["status"], "completed_with_errors");
        assert_eq!(v["pairs"][2]["error"]["code"], "invalid_input");
        assert!(matches!(s.cancel(&job), Err(ApiError::Conflict { .. })));
        // Cancel a fresh job: its pending pairs never run.
        let job2 = s.create_job(&[p.clone(), p], "{}", "jpg").unwrap();
        assert_eq!(s.cancel(&job2).unwrap()["status"], "cancelled");
        assert!(s.claim().unwrap().is_none());
        let by: BTreeMap<_, _> = s.jobs_by_status().unwrap().into_iter().collect();
        assert_eq!(
            (by["completed_with_errors"], by["cancelled"], by["queued"]),
            (1, 1, 0)
        );
    }

    #[test]
    fn a_pair_that_keeps_crashing_the_server_fails() {
        let dir = tempfile::tempdir().unwrap();
        let f = {
            let s = Store::open(dir.path()).unwrap();
            let f = s.add_file(b"img").unwrap();
            let p = pair(&s, &[("person_image", &f)]);
            s.create_job(&[p], "{}", "png").unwrap()
        };
        for _ in 0..MAX_ATTEMPTS {
            let s = Store::open(dir.path()).unwrap();
            assert!(s.claim().unwrap().is_some());
        }
        let s = Store::open(dir.path()).unwrap();
        assert!(s.claim().unwrap().is_none());
        let v = s.job(&f, true).unwrap();
        assert_eq!(v["pairs"][0]["error"]["code"], "interrupted", "{v}");
    }
}
