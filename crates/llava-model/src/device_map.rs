//! `device_map` for the composed model (ms-swift's `--device-map`, transformers'
//! `device_map="auto"`): the vision tower, projector, `image_newline` and embeddings on the
//! first device, decoder layers spread over the devices, the head on the last one.

use std::ops::RangeInclusive;

use burn::tensor::{DType, Device};
use llava_llm::DeviceMap;

use crate::{LlavaConfig, Result};

/// How to split the model over devices.
#[derive(Debug, Clone, PartialEq)]
pub enum DeviceMapSpec {
    /// Contiguous runs of layers over these devices, balanced by bytes of weights (the first
    /// device also holds the vision tower, projector and embeddings). Where every device reports
    /// its free memory (CUDA), each takes a share of the bytes proportional to it.
    Auto(Vec<Device>),
    /// Layer ranges to devices, covering every layer once.
    Layers(Vec<(RangeInclusive<usize>, Device)>),
}

impl DeviceMapSpec {
    /// The decoder's device map for `config` with parameters of `dtype`.
    pub fn resolve(&self, config: &LlavaConfig, dtype: DType) -> Result<DeviceMap> {
        let text = &config.text;
        let n = text.num_hidden_layers;
        Ok(match self {
            Self::Layers(ranges) => DeviceMap::from_ranges(ranges, n)?,
            Self::Auto(devices) => {
                let bytes = dtype.size() as u64;
                let (h, i, v) = (
                    text.hidden_size as u64,
                    text.intermediate_size as u64,
                    text.vocab_size as u64,
                );
                let (q, kv) = (
                    (text.num_attention_heads * text.head_dim()) as u64,
                    (text.num_kv_heads() * text.head_dim()) as u64,
                );
                let layer = (h * (2 * q + 2 * kv) + 3 * h * i + 2 * h) * bytes;
                let vis = &config.vision;
                let (vh, vi) = (vis.hidden_size as u64, vis.intermediate_size as u64);
                let tower = vis.num_hidden_layers as u64 * (4 * vh * vh + 2 * vh * vi);
                let first = (v * h + tower + vh * h + h * h) * bytes;
                let last = if text.tie_word_embeddings {
                    0
                } else {
                    v * h * bytes
                };
                let free: Option<Vec<u64>> = devices.iter().map(llava_ops::free_memory).collect();
                match free {
                    Some(free) if free.iter().any(|&f| f > 0) => {
                        DeviceMap::balanced_by_memory(devices, &free, n, layer, first, last)?
                    }
                    _ => DeviceMap::balanced(devices, n, layer, first, last)?,
                }
            }
        })
    }
}

/// Which devices a [`DeviceMap`] uses, for logs.
pub fn describe(map: &DeviceMap) -> String {
    let mut runs: Vec<(usize, usize, &Device)> = Vec::new();
    for (i, d) in map.layers.iter().enumerate() {
        match runs.last_mut() {
            Some((_, end, dev)) if *dev == d => *end = i,
            _ => runs.push((i, i, d)),
        }
    }
    runs.iter()
        .map(|(a, b, d)| format!("layers {a}-{b} on {d:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}
