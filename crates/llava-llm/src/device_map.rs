//! Where each part of the decoder lives when one device is not enough (transformers'
//! `device_map`): the embeddings (and, in LLaVA, the vision tower and projector) on the first
//! device, each decoder layer on its own device, the final norm and head on the last one.
//! Activations move between devices at layer boundaries; each layer's KV cache lives on the
//! layer's device.

use std::ops::RangeInclusive;

use burn::tensor::Device;

use crate::{LlmError, Result};

/// The device of every part of the decoder.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceMap {
    /// Embeddings (and whatever feeds them).
    pub embed: Device,
    /// One device per decoder layer.
    pub layers: Vec<Device>,
    /// Final norm and `lm_head`.
    pub head: Device,
}

impl DeviceMap {
    /// Everything on `device`.
    pub fn single(device: &Device, num_layers: usize) -> Self {
        Self {
            embed: device.clone(),
            layers: vec![device.clone(); num_layers],
            head: device.clone(),
        }
    }

    /// `device_map="auto"`: contiguous runs of layers over `devices` in order, sized so each
    /// device holds about the same bytes of weights. `first_extra` is what the first device
    /// holds besides layers (embeddings, vision tower, projector), `last_extra` what the last
    /// holds (norm, untied head), `layer_bytes` one layer's weights.
    pub fn balanced(
        devices: &[Device],
        num_layers: usize,
        layer_bytes: u64,
        first_extra: u64,
        last_extra: u64,
    ) -> Result<Self> {
        let equal = vec![1; devices.len()];
        Self::balanced_by_memory(
            devices,
            &equal,
            num_layers,
            layer_bytes,
            first_extra,
            last_extra,
        )
    }

    /// As [`DeviceMap::balanced`], with each device's share of the weights proportional to
    /// `free[i]`, the bytes it can take (ms-swift / accelerate balance by free memory).
    pub fn balanced_by_memory(
        devices: &[Device],
        free: &[u64],
        num_layers: usize,
        layer_bytes: u64,
        first_extra: u64,
        last_extra: u64,
    ) -> Result<Self> {
        let Some(first) = devices.first() else {
            return Err(LlmError::Input("device_map: no device given".into()));
        };
        if free.len() != devices.len() || free.iter().all(|&f| f == 0) {
            return Err(LlmError::Input(format!(
                "device_map: {} free-memory figures for {} devices",
                free.len(),
                devices.len()
            )));
        }
        let slots = weighted_slots(free, num_layers, layer_bytes, first_extra, last_extra);
        let last = slots.last().copied().unwrap_or(0);
        Ok(Self {
            embed: first.clone(),
            layers: slots.iter().map(|&i| devices[i].clone()).collect(),
            head: devices[last].clone(),
        })
    }

    /// A map from layer ranges (`0..=15` → device), which must cover every layer exactly once;
    /// the embeddings go with layer 0's device and the head with the last layer's.
    pub fn from_ranges(
        ranges: &[(RangeInclusive<usize>, Device)],
        num_layers: usize,
    ) -> Result<Self> {
        let bad = |m: String| LlmError::Input(format!("device_map: {m}"));
        let mut layers: Vec<Option<Device>> = vec![None; num_layers];
        for (range, device) in ranges {
            let (a, b) = (*range.start(), *range.end());
            if a > b || b >= num_layers {
                return Err(bad(format!(
                    "layers {a}-{b} outside the model's {num_layers} layers"
                )));
            }
            for slot in &mut layers[a..=b] {
                if slot.is_some() {
                    return Err(bad(format!("a layer of {a}-{b} is mapped twice")));
                }
                *slot = Some(device.clone());
            }
        }
        let layers = layers
            .into_iter()
            .enumerate()
            .map(|(i, d)| d.ok_or_else(|| bad(format!("layer {i} is not mapped"))))
            .collect::<Result<Vec<_>>>()?;
        let (Some(embed), Some(head)) = (layers.first().cloned(), layers.last().cloned()) else {
            return Err(bad("the model has no layer".into()));
        };
        Ok(Self {
            embed,
            layers,
            head,
        })
    }

    /// The distinct devices, in order of first use.
    pub fn devices(&self) -> Vec<Device> {
        let mut out: Vec<Device> = Vec::new();
        for d in std::iter::once(&self.embed)
            .chain(&self.layers)
            .chain(std::iter::once(&self.head))
        {
            if !out.contains(d) {
                out.push(d.clone());
            }
        }
        out
    }
}

/// Parses `"0-15:DEV,16-31:DEV"` (layer ranges to device names; a single layer as `7:DEV`),
/// resolving each name with `resolve`.
pub fn parse_layer_ranges(
    spec: &str,
    resolve: impl Fn(&str) -> Result<Device>,
) -> Result<Vec<(RangeInclusive<usize>, Device)>> {
    let bad = |m: String| LlmError::Input(format!("device_map {spec:?}: {m}"));
    let mut out = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (range, name) = part
            .split_once(':')
            .ok_or_else(|| bad(format!("{part:?} is not RANGE:DEVICE")))?;
        let (a, b) = range.split_once('-').unwrap_or((range, range));
        let number = |x: &str| {
            x.trim()
                .parse::<usize>()
                .map_err(|_| bad(format!("{x:?} is not a layer number")))
        };
        out.push((number(a)?..=number(b)?, resolve(name.trim())?));
    }
    if out.is_empty() {
        return Err(bad("no layer range".into()));
    }
    Ok(out)
}

/// For [`DeviceMap::balanced`]: the index of the device of each layer. A layer goes to the next
/// device when more than half of it would overflow this device's share of all the bytes; the
/// last device takes whatever is left.
pub fn balanced_slots(
    devices: usize,
    num_layers: usize,
    layer_bytes: u64,
    first_extra: u64,
    last_extra: u64,
) -> Vec<usize> {
    let equal = vec![1; devices.max(1)];
    weighted_slots(&equal, num_layers, layer_bytes, first_extra, last_extra)
}

/// The device index of each layer when device `i` should hold about `weights[i] / Σ weights`
/// of all the bytes.
pub fn weighted_slots(
    weights: &[u64],
    num_layers: usize,
    layer_bytes: u64,
    first_extra: u64,
    last_extra: u64,
) -> Vec<usize> {
    let total = (layer_bytes * num_layers as u64 + first_extra + last_extra) as u128;
    let sum = weights.iter().map(|&w| w as u128).sum::<u128>().max(1);
    let share = |i: usize| (total * weights[i] as u128).div_ceil(sum) as u64;
    let mut slots = Vec::with_capacity(num_layers);
    let (mut device, mut used) = (0usize, first_extra);
    for _ in 0..num_layers {
        if used + layer_bytes / 2 > share(device) && used > 0 && device + 1 < weights.len() {
            device += 1;
            used = 0;
            // A device with no room gets nothing.
            while share(device) == 0 && device + 1 < weights.len() {
                device += 1;
            }
        }
        used += layer_bytes;
        slots.push(device);
    }
    slots
}
