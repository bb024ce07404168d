use std::path::PathBuf;

/// What can go wrong while reading a checkpoint. Every variant names the file or key involved.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A JSON file (index, config) is malformed or lacks a field.
    /// A file could not be written (nothing replaced the previous file).
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Json {
        /// The file.
        path: PathBuf,
        /// What serde reported (it names the field and line).
        message: String,
    },
    /// A directory holds no weights in a known layout.
    #[error(
        "no weights found in {dir}: expected model.safetensors or model.safetensors.index.json"
    )]
    NoWeights {
        /// The directory searched.
        dir: PathBuf,
    },
    /// The shard index names a file that is not there.
    #[error("{index} lists shard {shard}, which does not exist")]
    MissingShard {
        /// The index file.
        index: PathBuf,
        /// The missing shard's file name.
        shard: String,
    },
    /// A safetensors file is truncated or its header is corrupt.
    #[error("{path} is not a valid safetensors file: {message}")]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The module expects tensors the checkpoint does not have.
    #[error("{dir}: {} tensor(s) missing from the checkpoint: {}", names.len(), names.join(", "))]
    MissingTensors {
        /// The checkpoint directory or file.
        dir: PathBuf,
        /// The module paths that received nothing.
        names: Vec<String>,
    },
    /// A tensor could not be applied (wrong shape, wrong kind, unreadable data).
    #[error("{file}: {message}")]
    BadTensor {
        /// The shard that holds the tensor.
        file: PathBuf,
        /// burn-store's description, which names the tensor, the expected and the found shape.
        message: String,
    },
    /// A key-map rule is not a valid regular expression (a programming error in a caller).
    #[error("invalid key-map rule {pattern:?}: {message}")]
    BadRule {
        /// The pattern.
        pattern: String,
        /// The regex error.
        message: String,
    },
}

impl CheckpointError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

/// A configuration file (a `config.json`, `adapter_config.json`, `generation_config.json`, …)
/// that cannot be read or is malformed: the error every crate's config reader shares.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is malformed, lacks a field or has an inconsistent value.
    #[error("{path}: {message}")]
    Config {
        /// The file (or the origin of an in-memory config).
        path: PathBuf,
        /// What is wrong, naming the field.
        message: String,
    },
    /// The file asks for something not implemented (another projector, merge type, …).
    #[error("{path}: unsupported {what}")]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// The key and its value.
        what: String,
    },
}
