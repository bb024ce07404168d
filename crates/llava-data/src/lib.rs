//! Fine-tuning data as ms-swift 2.0.5 reads it (`../shared/spec/swift-llava.md` §6), with the
//! project's decisions (`../shared/spec/README.md` 7 and 14):
//! - [`read`]: custom `.jsonl` / `.json` / `.csv` files of `{"query", "response", "images",
//!   "history"?, "system"?}` rows, every malformed row reported with its file, line and field;
//! - [`spec`] and [`registry`]: `--dataset` entries (paths or registered names, `#N` sampling);
//! - [`split`]: sampling and the validation split with a seeded, documented permutation
//!   ([`rng`]);
//! - [`images`]: image paths relative to the dataset file, URLs fetched once into a cache,
//!   every image decoded once before training;
//! - [`encode`]: a row → template ids and labels, with image tokens counted as they expand.

pub mod encode;
mod error;
pub mod images;
pub mod load;
pub mod parquet_rows;
pub mod read;
pub mod registry;
pub mod rng;
pub mod row;
pub mod spec;
pub mod split;

pub use encode::{Encoder, Sample, TruncationStrategy};
pub use error::{DataError, Problem, Result};
pub use images::{ImageCache, ImageRef};
pub use load::{DataOptions, Datasets, EncodeReport, encode_rows, load_datasets};
pub use registry::{BUILTIN, Builtin};
pub use row::{Origin, Row};
pub use spec::DatasetSpec;
