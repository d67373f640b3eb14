//! Finding a model's files the way diffusers writes them.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use crate::error::{Result, VtonError};
use crate::weights::Checkpoint;

/// The config and weight files of one diffusers model.
#[derive(Debug, Clone)]
pub struct ModelFiles {
    pub config: PathBuf,
    pub weights: Vec<PathBuf>,
}

const WEIGHT_STEM: &str = "diffusion_pytorch_model";
const WEIGHT_EXTS: [&str; 2] = ["safetensors", "bin"];

/// `diffusion_pytorch_model[.variant].ext`, as diffusers names variant files.
fn weight_name(variant: Option<&str>, ext: &str) -> String {
    match variant {
        Some(v) => format!("{WEIGHT_STEM}.{v}.{ext}"),
        None => format!("{WEIGHT_STEM}.{ext}"),
    }
}

impl ModelFiles {
    /// `path` is a model folder (`config.json` + weights), a pipeline folder with a
    /// `subfolder/` (`model_index.json` layout), or a `config.json` file.
    pub fn find(path: &Path, subfolder: &str) -> Result<Self> {
        Self::find_variant(path, subfolder, None)
    }

    /// [`ModelFiles::find`] for diffusers' `variant` files (`variant = Some("fp16")`:
    /// `diffusion_pytorch_model.fp16.safetensors`, or the shards listed by
    /// `diffusion_pytorch_model.safetensors.index.fp16.json`). A folder that holds only
    /// variant files, asked for without one (or the other way round), is an error that
    /// names the files it does hold.
    pub fn find_variant(path: &Path, subfolder: &str, variant: Option<&str>) -> Result<Self> {
        if let Some(v) = variant {
            if v.is_empty() || v.contains(['/', '\\']) || v.starts_with('.') {
                return Err(VtonError::invalid(
                    "variant",
                    format!("{v:?} (a name such as \"fp16\")"),
                ));
            }
        }
        if !path.exists() {
            return Err(VtonError::FileNotFound {
                path: path.to_path_buf(),
            });
        }
        let dir = if path.is_file() {
            path.parent().unwrap_or(Path::new(".")).to_path_buf()
        } else if path.join("config.json").is_file() {
            path.to_path_buf()
        } else if path.join(subfolder).join("config.json").is_file() {
            path.join(subfolder)
        } else {
            return Err(VtonError::FileNotFound {
                path: path.join(subfolder).join("config.json"),
            });
        };
        let config = dir.join("config.json");
        // Sharded: diffusion_pytorch_model.safetensors.index[.variant].json lists the shards.
        let index = dir.join(match variant {
            Some(v) => format!("{WEIGHT_STEM}.safetensors.index.{v}.json"),
            None => format!("{WEIGHT_STEM}.safetensors.index.json"),
        });
        let weights = if index.is_file() {
            let text = std::fs::read_to_string(&index).map_err(|e| VtonError::io(&index, e))?;
            let v: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| VtonError::Json {
                    what: index.display().to_string(),
                    message: e.to_string(),
                })?;
            let mut files: Vec<String> = v["weight_map"]
                .as_object()
                .map(|m| {
                    m.values()
                        .filter_map(|f| f.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            files.sort();
            files.dedup();
            files.into_iter().map(|f| dir.join(f)).collect()
        } else {
            let found = WEIGHT_EXTS
                .iter()
                .map(|e| dir.join(weight_name(variant, e)))
                .find(|p| p.is_file());
            match found {
                Some(f) => vec![f],
                None => return Err(missing_weights(&dir, variant)),
            }
        };
        Ok(ModelFiles { config, weights })
    }

    pub fn checkpoint(&self) -> Result<Checkpoint> {
        Checkpoint::open_all(&self.weights)
    }
}

/// Reads a diffusers `config.json` (unknown keys ignored, missing keys defaulted).
pub fn read_config<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| VtonError::io(path, e))?;
    parse_config(&text, &path.display().to_string())
}

/// Parses a config from JSON text (Python's `Infinity` / `NaN` accepted, as null).
pub fn parse_config<T: DeserializeOwned>(text: &str, what: &str) -> Result<T> {
    serde_json::from_str(&python_json(text)).map_err(|e| VtonError::Json {
        what: what.to_string(),
        message: e.to_string(),
    })
}

/// Python's `json.dumps` writes `Infinity`, `-Infinity` and `NaN` (diffusers saves
/// `lambda_min_clipped: -Infinity`); standard JSON has no such tokens. Outside strings they
/// become `null`, which configs read as "unset" (diffusers' default).
pub fn python_json(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_str = false;
    let mut escaped = false;
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if in_str {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_str = false;
            }
            rest = &rest[c.len_utf8()..];
            continue;
        }
        let token = ["-Infinity", "Infinity", "NaN"]
            .into_iter()
            .find(|t| rest.starts_with(t));
        match token {
            Some(t) => {
                out.push_str("null");
                rest = &rest[t.len()..];
            }
            None => {
                if c == '"' {
                    in_str = true;
                }
                out.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    out
}

/// When the checkpoint holds keys under `prefix` (e.g. `vae.` in a whole-pipeline file),
/// keeps only those, without the prefix; otherwise returns it unchanged.
pub fn select_prefix(ckpt: Checkpoint, prefix: &str) -> Checkpoint {
    if ckpt.keys().any(|k| k.starts_with(prefix)) {
        ckpt.map_keys(|k| k.strip_prefix(prefix).map(String::from))
    } else {
        ckpt
    }
}

/// The error for a model folder without the weight file asked for: names the weight
/// files it holds (other variants), so the caller knows which `variant` to pass.
fn missing_weights(dir: &Path, variant: Option<&str>) -> VtonError {
    let mut held: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| {
                    n.starts_with(WEIGHT_STEM) && WEIGHT_EXTS.iter().any(|x| n.ends_with(x))
                })
                .collect()
        })
        .unwrap_or_default();
    held.sort();
    let wanted = weight_name(variant, WEIGHT_EXTS[0]);
    if held.is_empty() {
        return VtonError::FileNotFound {
            path: dir.join(wanted),
        };
    }
    let hint = match variant {
        None => "pass the variant of one of them (e.g. variant=\"fp16\")".to_string(),
        Some(v) => format!("no {v:?} variant here; pass one of theirs, or none"),
    };
    VtonError::Checkpoint {
        path: dir.join(wanted),
        message: format!("not found; the folder holds {}: {hint}", held.join(", ")),
    }
}

/// Config and checkpoint of a diffusers model folder (or a pipeline folder's `subfolder/`).
pub(crate) fn pretrained<C: DeserializeOwned>(
    path: &Path,
    subfolder: &str,
) -> Result<(C, Checkpoint)> {
    pretrained_variant(path, subfolder, None)
}

/// [`pretrained`] for a weights `variant` (see [`ModelFiles::find_variant`]).
pub(crate) fn pretrained_variant<C: DeserializeOwned>(
    path: &Path,
    subfolder: &str,
    variant: Option<&str>,
) -> Result<(C, Checkpoint)> {
    let files = ModelFiles::find_variant(path, subfolder, variant)?;
    Ok((read_config(&files.config)?, files.checkpoint()?))
}

/// Config and checkpoint of a model stored in one file: `config` or the `config.json`
/// beside the file; keys bare or under `prefix` (a whole pipeline in one file).
pub(crate) fn single_file<C: DeserializeOwned + Clone>(
    path: &Path,
    config: Option<&C>,
    prefix: &str,
) -> Result<(C, Checkpoint)> {
    let config = match config {
        Some(c) => c.clone(),
        None => read_config(&path.with_file_name("config.json"))?,
    };
    Ok((config, select_prefix(Checkpoint::open(path)?, prefix)))
}
