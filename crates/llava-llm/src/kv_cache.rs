use burn::tensor::{DType, Device, IndexingUpdateOp, Int, Tensor};

use crate::{LlmError, Result, TextConfig};

/// Keys (after RoPE) and values of every layer, preallocated as
/// `[batch, kv_heads, capacity, head_dim]` and written in place, so a decode step never
/// concatenates or reallocates.
#[derive(Debug, Clone)]
pub struct KvCache {
    layers: Vec<(Tensor<4>, Tensor<4>)>,
    len: usize,
    capacity: usize,
    slots: usize,
    batch: usize,
    /// Per layer: when set, [`KvCache::append`] writes its one new position at the slot this
    /// tensor (on the layer's device) holds instead of at `len` (a recorded decode step reads
    /// the slot from the device).
    write_slots: Vec<Option<Tensor<1, Int>>>,
}

/// Buffers hold a multiple of this many positions: attention reads the whole buffer, and
/// lengths that are multiples of 256 keep the GPU kernels vectorised and their shapes few (one
/// compiled kernel serves every prompt length in a bucket).
pub const SLOT_BLOCK: usize = 256;

impl KvCache {
    /// An empty cache for `batch` sequences of up to `capacity` positions.
    pub fn new(
        config: &TextConfig,
        batch: usize,
        capacity: usize,
        dtype: DType,
        device: &Device,
    ) -> Self {
        let devices = vec![device.clone(); config.num_hidden_layers];
        Self::new_mapped(config, batch, capacity, dtype, &devices)
    }

    /// An empty cache whose layer `i` lives on `devices[i]`.
    pub fn new_mapped(
        config: &TextConfig,
        batch: usize,
        capacity: usize,
        dtype: DType,
        devices: &[Device],
    ) -> Self {
        let slots = capacity.div_ceil(SLOT_BLOCK).max(1) * SLOT_BLOCK;
        let shape = [batch, config.num_kv_heads(), slots, config.head_dim()];
        let layers: Vec<(Tensor<4>, Tensor<4>)> = devices
            .iter()
            .map(|device| {
                (
                    Tensor::zeros(shape, (device, dtype)),
                    Tensor::zeros(shape, (device, dtype)),
                )
            })
            .collect();
        Self {
            write_slots: vec![None; layers.len()],
            layers,
            len: 0,
            capacity,
            slots,
            batch,
        }
    }

    /// Positions written so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing has been written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Positions the cache can hold.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Positions the buffers hold (the capacity rounded up to [`SLOT_BLOCK`]); the slots past
    /// the written positions are masked.
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// Sequences in the batch.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Forgets every position (the buffers are kept).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// From now on, one-position appends go to the slot `slot` (`[1]`) holds when they run,
    /// not to [`KvCache::len`]; the length is then the caller's to track.
    #[cfg(test)]
    pub(crate) fn write_at(&mut self, slot: Tensor<1, Int>) {
        let layers = 0..self.layers.len();
        self.write_layers_at(layers, slot);
    }

    /// As [`KvCache::write_at`] for the layers in `layers` only (`slot` on their device).
    pub(crate) fn write_layers_at(&mut self, layers: std::ops::Range<usize>, slot: Tensor<1, Int>) {
        for write in &mut self.write_slots[layers] {
            *write = Some(slot.clone());
        }
    }

    /// Back to appending at [`KvCache::len`].
    pub(crate) fn write_at_len(&mut self) {
        self.write_slots.fill(None);
    }

    /// Errors unless `incoming` more positions fit.
    pub(crate) fn reserve(&self, incoming: usize) -> Result<()> {
        if self.len + incoming > self.capacity {
            return Err(LlmError::CacheFull {
                capacity: self.capacity,
                used: self.len,
                incoming,
            });
        }
        Ok(())
    }

    /// Writes `k`, `v` (`[batch, kv_heads, s, head_dim]`) of layer `layer` after the current
    /// positions and returns the layer's whole buffers, `[batch, kv_heads, slots, head_dim]`:
    /// slots past `len + s` hold zeros and the attention bias masks them. Attending over the
    /// whole buffer costs a few unused slots; a slice of it would be copied on every step
    /// (measured on CUDA: 2 × 88 µs per layer and step for a 3k-token llava-next-72b cache).
    /// The length advances only in [`KvCache::advance`], once all layers are written.
    pub(crate) fn append(
        &mut self,
        layer: usize,
        k: Tensor<4>,
        v: Tensor<4>,
    ) -> (Tensor<4>, Tensor<4>) {
        let s = k.dims()[2];
        let (start, end) = (self.len, self.len + s);
        let slot = self.write_slots[layer].clone().filter(|_| s == 1);
        let (ck, cv) = &mut self.layers[layer];
        for (cache, new) in [(ck, k), (cv, v)] {
            cache.inplace(|c| match &slot {
                // In place: the cache holds the only reference to its buffers.
                Some(slot) => c.select_assign(2, slot.clone(), new, IndexingUpdateOp::Assign),
                None => {
                    let [b, h, _, d] = new.dims();
                    c.slice_assign([0..b, 0..h, start..end, 0..d], new)
                }
            });
        }
        let (ck, cv) = &self.layers[layer];
        (ck.clone(), cv.clone())
    }

    pub(crate) fn advance(&mut self, s: usize) {
        self.len += s;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_round_up_to_the_slot_block_but_the_capacity_still_limits() {
        let config = TextConfig::from_json(
            r#"{"model_type": "llama", "vocab_size": 8, "hidden_size": 8,
                "intermediate_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
                "num_key_value_heads": 1}"#,
            "tiny.json",
        )
        .unwrap();
        let device = Device::flex();
        let mut cache = KvCache::new(&config, 1, 300, DType::F32, &device);
        assert_eq!((cache.capacity(), cache.slots()), (300, 512));
        let kv = Tensor::<4>::ones([1, 1, 300, 4], &device);
        let (k, _) = cache.append(0, kv.clone(), kv);
        assert_eq!(k.dims(), [1, 1, 512, 4]);
        cache.advance(300);
        assert!(
            cache.reserve(1).is_err(),
            "the capacity, not the slots, bounds the length"
        );
    }
}
