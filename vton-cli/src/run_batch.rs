//! `vton run-batch`: a catalogue of person / garment pairs tried on from the command line
//! on one machine (the catalogue of the Ray recipe `python/vton/ray.py`, for users who
//! do not run Ray), resumable.
//!
//! - The catalogue is a text file, one pair a line, whitespace-separated:
//!   `PERSON GARMENT [key=PATH ...]` with the keys of [`KEYS`]; relative paths are
//!   relative to the catalogue's folder; blank lines and lines starting with `#` are
//!   skipped. A pair's output is `{person_stem}__{garment_stem}.png` (`.jpg` for JPEG)
//!   in `--out`. The whole catalogue is checked before the model is loaded: malformed
//!   lines, unknown or repeated keys, missing files and duplicate output names are all
//!   reported at once, each with its line number.
//! - Every try-on is `vton_serve::run::run_fields`, the server's own path from raw
//!   bytes to the encoded image, so a pair gives the bytes `/api/v1/tryon` gives.
//! - Resume: an output is written to `.{name}.partial` in the same folder, fsynced and
//!   renamed, so an output that exists is complete and a rerun skips it; the temporary
//!   files of a killed run are removed at start; `--overwrite` redoes every pair.
//! - A pair that fails is recorded in `errors.jsonl` (rewritten each run) and counted;
//!   the others go on. Each finished pair appends a line to `manifest.jsonl` (truncated
//!   by `--overwrite`). The exit status is non-zero when a pair failed or the run was
//!   interrupted (Ctrl-C: the pairs in flight finish or are cancelled between denoising
//!   steps, none is left half-written).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Map, Value};
use vton_core::{device_from_name, Result, VtonError};
use vton_serve::limits::OutputFormat;
use vton_serve::run::{self, Checked, TryOnOptions};
use vton_serve::Engine;

use crate::serve::{load_engine, ModelArgs};

/// The optional `key=PATH` entries of a catalogue line; each is the `run_fields` field of
/// the same name (the HR-VITON ones are used by `--method hrviton` only).
pub const KEYS: &[&str] = &[
    "keypoints",
    "person_mask",
    "garment_mask",
    "parse",
    "densepose",
    "parse_agnostic",
    "agnostic",
];

/// Suffix of the temporary file an output is written to before its rename.
const PARTIAL: &str = ".partial";

#[derive(Args)]
pub struct RunBatchArgs {
    /// The catalogue: one pair a line, `PERSON GARMENT [key=PATH ...]`, keys keypoints,
    /// person_mask, garment_mask, parse (hrviton: densepose, parse_agnostic, agnostic);
    /// relative paths are relative to this file's folder; blank lines and `#` lines are
    /// skipped.
    #[arg(long)]
    pairs: PathBuf,
    /// Results folder: `{person_stem}__{garment_stem}.png` (.jpg with --format jpeg) a
    /// pair, plus errors.jsonl and manifest.jsonl. Outputs already there are skipped.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    model: ModelArgs,
    /// Try-on options, the JSON of the server's `options` field (or @FILE holding it):
    /// steps, guidance, seed, category, output_format, quality; e.g.
    /// '{"steps":30,"seed":1}'. Defaults: 50 steps, guidance 2.5, seed 0, upper_body,
    /// png, quality 90.
    #[arg(long)]
    options: Option<String>,
    /// Output format, png or jpeg (overrides the options' output_format).
    #[arg(long)]
    format: Option<String>,
    /// Pairs tried on at once (one model, shared).
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Redo every pair, even those whose output exists (after changing options or model).
    #[arg(long)]
    overwrite: bool,
    /// Largest input image, pixels (width x height), as `vton serve --max-pixels`.
    #[arg(long, default_value_t = 4096 * 4096)]
    max_pixels: u64,
}

/// One catalogue line.
struct Pair {
    /// 1-based line number in the catalogue.
    line: usize,
    /// Output file name in `--out`.
    output: String,
    /// `(run_fields field, path)`: person_image, garment_image, then the keys given.
    inputs: Vec<(&'static str, PathBuf)>,
}

impl Pair {
    /// The pair as JSON: line, output and the input paths (person, garment, keys).
    fn json(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("line".into(), json!(self.line));
        m.insert("output".into(), json!(self.output));
        for (field, path) in &self.inputs {
            let key = match *field {
                "person_image" => "person",
                "garment_image" => "garment",
                k => k,
            };
            m.insert(key.into(), json!(path.to_string_lossy()));
        }
        m
    }
}

fn stem(p: &Path) -> String {
    p.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Reads and checks the catalogue: every problem of the file, each with its line number,
/// in one [`VtonError::InvalidArgument`] (named `--pairs`).
fn read_catalogue(path: &Path, ext: &str) -> Result<Vec<Pair>> {
    let text = std::fs::read_to_string(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            VtonError::FileNotFound {
                path: path.to_path_buf(),
            }
        } else {
            VtonError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    })?;
    let base = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut pairs: Vec<Pair> = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    let mut outputs: HashMap<String, usize> = HashMap::new();
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim_start_matches('\u{feff}').trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let tokens: Vec<&str> = line.split_whitespace().collect();
        let mut line_errors = Vec::new();
        let positional = tokens.iter().take_while(|t| !t.contains('=')).count();
        if positional != 2 {
            line_errors.push(format!(
                "expected `PERSON GARMENT [key=PATH ...]`, got {positional} path(s) before \
                 the keys in {line:?}"
            ));
        }
        let resolve = |p: &str| {
            let p = Path::new(p);
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };
        let mut inputs: Vec<(&'static str, PathBuf)> = Vec::new();
        if positional >= 2 {
            inputs.push(("person_image", resolve(tokens[0])));
            inputs.push(("garment_image", resolve(tokens[1])));
        }
        for t in tokens.iter().skip(positional) {
            let Some((key, value)) = t.split_once('=') else {
                line_errors.push(format!("expected key=PATH, got {t:?}"));
                continue;
            };
            let Some(field) = KEYS.iter().find(|k| **k == key) else {
                line_errors.push(format!("unknown key {key:?} (known: {})", KEYS.join(", ")));
                continue;
            };
            if value.is_empty() {
                line_errors.push(format!("key {key} has no path"));
                continue;
            }
            if inputs.iter().any(|(f, _)| f == field) {
                line_errors.push(format!("key {key} given twice"));
                continue;
            }
            inputs.push((field, resolve(value)));
        }
        for (field, p) in &inputs {
            let what = match *field {
                "person_image" => "person",
                "garment_image" => "garment",
                k => k,
            };
            if !p.exists() {
                line_errors.push(format!("{what} file not found: {}", p.display()));
            } else if !p.is_file() {
                line_errors.push(format!("{what} {} is not a file", p.display()));
            }
        }
        let mut output = String::new();
        if positional >= 2 {
            output = format!(
                "{}__{}.{ext}",
                stem(Path::new(tokens[0])),
                stem(Path::new(tokens[1]))
            );
            if let Some(first) = outputs.get(&output) {
                line_errors.push(format!("output {output} is also line {first}'s"));
            } else {
                outputs.insert(output.clone(), n);
            }
        }
        if line_errors.is_empty() {
            pairs.push(Pair {
                line: n,
                output,
                inputs,
            });
        } else {
            errors.extend(line_errors.into_iter().map(|e| format!("line {n}: {e}")));
        }
    }
    if !errors.is_empty() {
        const SHOWN: usize = 50;
        let mut message = format!(
            "{} problem(s) in {}, nothing was run:",
            errors.len(),
            path.display()
        );
        for e in errors.iter().take(SHOWN) {
            message.push_str("\n  ");
            message.push_str(e);
        }
        if errors.len() > SHOWN {
            message.push_str(&format!("\n  ... and {} more", errors.len() - SHOWN));
        }
        return Err(VtonError::invalid("--pairs", message));
    }
    if pairs.is_empty() {
        return Err(VtonError::invalid(
            "--pairs",
            format!("{} holds no pair", path.display()),
        ));
    }
    Ok(pairs)
}

/// `--options` (JSON or @FILE) and `--format`, checked as the server checks `options`.
fn options(args: &RunBatchArgs) -> Result<Checked> {
    let text = match args.options.as_deref() {
        Some(s) if s.starts_with('@') => {
            let p = Path::new(&s[1..]);
            Some(std::fs::read(p).map_err(|source| VtonError::Io {
                path: p.to_path_buf(),
                source,
            })?)
        }
        Some(s) => Some(s.as_bytes().to_vec()),
        None => None,
    };
    let mut o = TryOnOptions::parse(text.as_deref())
        .map_err(|e| VtonError::invalid("--options", e.to_string()))?;
    if o.return_mask {
        return Err(VtonError::invalid(
            "--options",
            "return_mask is a server option: run-batch writes the try-on image only",
        ));
    }
    if let Some(f) = &args.format {
        o.format = match f.to_ascii_lowercase().as_str() {
            "png" => OutputFormat::Png,
            "jpeg" | "jpg" => OutputFormat::Jpeg,
            _ => {
                return Err(VtonError::invalid(
                    "--format",
                    format!("{f:?} is not png or jpeg"),
                ))
            }
        };
    }
    Ok(o)
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> VtonError + '_ {
    move |source| VtonError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `bytes` to `dir/name` atomically: `dir/.name.partial`, fsync, rename, fsync of
/// the folder. The temporary file is removed on failure.
fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let tmp = dir.join(format!(".{name}{PARTIAL}"));
    let dst = dir.join(name);
    let written = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(io_err(&tmp)(e));
    }
    if let Err(e) = std::fs::rename(&tmp, &dst) {
        let _ = std::fs::remove_file(&tmp);
        return Err(io_err(&dst)(e));
    }
    // The rename itself durable (best effort: not every platform opens folders).
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Removes the temporary files (`.NAME.partial`) a killed run left in `dir`.
fn remove_stale(dir: &Path) -> Result<usize> {
    let mut removed = 0;
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let is_file = entry.file_type().map(|t| t.is_file()).unwrap_or(false);
        if is_file && name.starts_with('.') && name.ends_with(PARTIAL) {
            std::fs::remove_file(entry.path()).map_err(io_err(&entry.path()))?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Reads a pair's files and runs it through `run_fields`: the encoded image.
fn try_on(
    engine: &Engine,
    pair: &Pair,
    o: &Checked,
    max_pixels: u64,
    cancel: &AtomicBool,
) -> std::result::Result<Vec<u8>, String> {
    let mut fields = HashMap::new();
    for (field, path) in &pair.inputs {
        let data =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        fields.insert(field.to_string(), data.into());
    }
    match catch_unwind(AssertUnwindSafe(|| {
        run::run_fields(engine, fields, o, o.format, max_pixels, cancel)
    })) {
        Ok(Ok((image, _, _))) => Ok(image),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("the model panicked on this input".into()),
    }
}

/// A JSON-lines file shared by the workers; a line is written and flushed at once.
struct Log(Mutex<File>);

impl Log {
    fn open(path: &Path, truncate: bool) -> Result<Log> {
        let f = OpenOptions::new()
            .create(true)
            .write(true)
            .append(!truncate)
            .truncate(truncate)
            .open(path)
            .map_err(io_err(path))?;
        Ok(Log(Mutex::new(f)))
    }

    fn line(&self, v: Map<String, Value>) -> std::io::Result<()> {
        let mut f = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let mut s = Value::Object(v).to_string();
        s.push('\n');
        f.write_all(s.as_bytes())?;
        f.flush()
    }
}

pub fn run(args: RunBatchArgs) -> Result<()> {
    let t0 = Instant::now();
    args.model.check_method()?;
    if args.workers == 0 {
        return Err(VtonError::invalid("--workers", "must be at least 1"));
    }
    let checked = options(&args)?;
    let ext = match checked.format {
        OutputFormat::Png => "png",
        OutputFormat::Jpeg => "jpg",
    };
    let pairs = read_catalogue(&args.pairs, ext)?;
    args.model.check_weights()?;
    let device = device_from_name(&args.model.device)?;
    let out = &args.out;
    std::fs::create_dir_all(out).map_err(io_err(out))?;
    let stale = remove_stale(out)?;
    if stale > 0 {
        println!("removed {stale} temporary file(s) of an interrupted run");
    }
    let errors_path = out.join("errors.jsonl");
    let errors = Log::open(&errors_path, true)?;
    let manifest = Log::open(&out.join("manifest.jsonl"), args.overwrite)?;
    let todo: Vec<&Pair> = pairs
        .iter()
        .filter(|p| args.overwrite || !out.join(&p.output).is_file())
        .collect();
    let skipped = pairs.len() - todo.len();
    println!(
        "{} pairs: {} to run, {skipped} already in {} (skipped)",
        pairs.len(),
        todo.len(),
        out.display()
    );
    let done = AtomicUsize::new(0);
    let failed = AtomicUsize::new(0);
    let cancel = Arc::new(AtomicBool::new(false));
    if !todo.is_empty() {
        println!("loading the {} model", args.model.method);
        let engine = load_engine(&args.model, device)?;
        {
            let c = cancel.clone();
            let _ = ctrlc::set_handler(move || {
                if c.swap(true, Ordering::SeqCst) {
                    std::process::exit(130);
                }
                eprintln!("\nstopping: finishing the pairs in flight (Ctrl-C again to quit now)");
            });
        }
        let bar = ProgressBar::new(todo.len() as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "{msg} [{bar:30}] {pos}/{len} pairs ({elapsed}, eta {eta})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        let status = |bar: &ProgressBar| {
            bar.set_message(format!(
                "done {} skipped {skipped} failed {}",
                done.load(Ordering::Relaxed),
                failed.load(Ordering::Relaxed)
            ))
        };
        status(&bar);
        let next = AtomicUsize::new(0);
        let worker = || loop {
            if cancel.load(Ordering::SeqCst) {
                return;
            }
            let Some(pair) = todo.get(next.fetch_add(1, Ordering::SeqCst)) else {
                return;
            };
            let start = Instant::now();
            let result =
                try_on(&engine, pair, &checked, args.max_pixels, &cancel).and_then(|bytes| {
                    write_atomic(out, &pair.output, &bytes).map_err(|e| e.to_string())
                });
            match result {
                Ok(()) => {
                    let mut m = pair.json();
                    m.insert("seconds".into(), json!(start.elapsed().as_secs_f64()));
                    if let Err(e) = manifest.line(m) {
                        bar.suspend(|| eprintln!("warning: manifest.jsonl: {e}"));
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
                // Cancelled by Ctrl-C: neither done nor failed, redone by the next run.
                Err(_) if cancel.load(Ordering::SeqCst) => return,
                Err(message) => {
                    failed.fetch_add(1, Ordering::Relaxed);
                    bar.suspend(|| {
                        eprintln!("line {}: {} failed: {message}", pair.line, pair.output)
                    });
                    let mut m = pair.json();
                    m.insert("error".into(), json!(message));
                    if let Err(e) = errors.line(m) {
                        bar.suspend(|| eprintln!("warning: errors.jsonl: {e}"));
                    }
                }
            }
            bar.inc(1);
            status(&bar);
        };
        std::thread::scope(|s| {
            for _ in 0..args.workers.min(todo.len()) {
                s.spawn(&worker);
            }
        });
        bar.finish_and_clear();
    }
    let (done, failed) = (done.into_inner(), failed.into_inner());
    let interrupted = cancel.load(Ordering::SeqCst);
    println!(
        "{}done {done}, skipped {skipped}, failed {failed} of {} pairs in {:.1} s; results in {}",
        if interrupted { "interrupted: " } else { "" },
        pairs.len(),
        t0.elapsed().as_secs_f64(),
        out.display()
    );
    if failed > 0 {
        return Err(VtonError::invalid(
            "--pairs",
            format!(
                "{failed} of {} pairs failed (listed in {})",
                pairs.len(),
                errors_path.display()
            ),
        ));
    }
    if interrupted {
        return Err(VtonError::Cancelled {
            step: done + skipped,
            total: pairs.len(),
        });
    }
    Ok(())
}
