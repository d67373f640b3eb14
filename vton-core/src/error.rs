//! The one error type of vton-core.

use std::path::PathBuf;

/// Result alias used across vton-core.
pub type Result<T, E = VtonError> = std::result::Result<T, E>;

/// Everything that can go wrong in vton-core. Every variant carries the context a
/// user needs to fix the input (path, key, expected and actual values).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VtonError {
    /// A file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file does not exist.
    #[error("file not found: {path}")]
    FileNotFound { path: PathBuf },
    /// An image could not be decoded or encoded.
    #[error("image error for {what}: {message}")]
    Image { what: String, message: String },
    /// A JSON document (keypoints, config) is malformed.
    #[error("invalid JSON in {what}: {message}")]
    Json { what: String, message: String },
    /// Keypoints the operation needs are missing (confidence 0 or absent).
    #[error("missing keypoints for {operation}: {missing}")]
    MissingKeypoints { operation: String, missing: String },
    /// A pose file has no person, or the requested person index is out of range.
    #[error("no person {index} in {what} ({available} people found)")]
    NoPerson {
        what: String,
        index: usize,
        available: usize,
    },
    /// Two inputs that must agree in size do not.
    #[error("size mismatch: {what}: expected {expected}, got {actual}")]
    SizeMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    /// A tensor or array has the wrong shape.
    #[error("bad shape for {what}: expected {expected}, got {actual:?}")]
    Shape {
        what: String,
        expected: String,
        actual: Vec<usize>,
    },
    /// A mask is empty where content is needed.
    #[error("empty mask: {what}")]
    EmptyMask { what: String },
    /// An argument is out of its valid range or otherwise invalid.
    #[error("invalid argument {name}: {message}")]
    InvalidArgument { name: String, message: String },
    /// A feature that is declared but not implemented for this input.
    #[error("unsupported: {what}")]
    Unsupported { what: String },
    /// A numerical failure (singular system, non-finite values).
    #[error("numerical failure in {operation}: {message}")]
    Numerical { operation: String, message: String },
    /// A checkpoint file is not a readable checkpoint (wrong format, truncated, a pickle
    /// that asks for code to run, an unsupported dtype).
    #[error("cannot load checkpoint {path}: {message}")]
    Checkpoint { path: PathBuf, message: String },
    /// Weights a model needs are absent from the checkpoint.
    #[error("{count} missing weight(s) in {source_name}: {keys}")]
    MissingWeights {
        source_name: String,
        count: usize,
        keys: String,
    },
    /// The checkpoint holds weights the model does not use.
    #[error("{count} unexpected weight(s) in {source_name}: {keys}")]
    UnexpectedWeights {
        source_name: String,
        count: usize,
        keys: String,
    },
    /// A weight has a different shape than the model's configuration implies.
    #[error("weight {key} has shape {found:?}, the model expects {expected:?}")]
    WeightShape {
        key: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    /// A model or scheduler configuration is invalid or inconsistent.
    #[error("invalid config {what}: {message}")]
    Config { what: String, message: String },
    /// A long operation was cancelled by its progress callback.
    #[error("cancelled at step {step} of {total}")]
    Cancelled { step: usize, total: usize },
    /// A `.tflite` flatbuffer is malformed: truncated, an offset out of bounds, an index
    /// that names no tensor or buffer, a shape that is absurd or disagrees with its data.
    #[error("invalid TFLite model: {message}")]
    TfliteFormat { message: String },
    /// A tensor backend operation failed.
    #[error("backend error in {operation}: {message}")]
    Backend { operation: String, message: String },
}

impl VtonError {
    /// An [`VtonError::InvalidArgument`].
    pub fn invalid(name: impl Into<String>, message: impl Into<String>) -> Self {
        VtonError::InvalidArgument {
            name: name.into(),
            message: message.into(),
        }
    }

    pub(crate) fn config(what: impl Into<String>, message: impl Into<String>) -> Self {
        VtonError::Config {
            what: what.into(),
            message: message.into(),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let path = path.into();
        if source.kind() == std::io::ErrorKind::NotFound {
            VtonError::FileNotFound { path }
        } else {
            VtonError::Io { path, source }
        }
    }
}
