//! Choosing the next token: transformers' logits processors, applied in transformers' order
//! (spec §8.2), then the argmax or a seeded draw. Everything works on batched logits
//! `[batch, vocab]` and runs on the logits' device; only the chosen ids come back to the host.

mod processors;
mod sampler;

pub use processors::{repetition_penalty, temperature, top_k, top_p};
pub use sampler::{Sampler, SamplingParams};
