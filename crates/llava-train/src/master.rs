//! f32 master weights (`--master-f32`) for parameters kept in half precision on the model:
//! AdamW updates an f32 copy, with f32 gradients and moments, and the model gets the copy
//! rounded to its dtype after each step. Without it, full fine-tuning in bf16 is pure bf16, as
//! ms-swift runs it without DeepSpeed: an update smaller than half a bf16 step of the weight
//! (2⁻⁹ of it) is lost. Parameters already in f32 (LoRA factors, decision 11) pass unchanged.

use std::collections::BTreeMap;

use burn::tensor::{DType, Tensor};

use crate::optim::Item;

/// The f32 copies, by parameter path.
#[derive(Debug, Clone, Default)]
pub struct MasterWeights {
    by_path: BTreeMap<String, Tensor<1>>,
}

impl MasterWeights {
    /// Masters restored from a checkpoint (paths without one start from the model's values).
    pub fn from_state(by_path: BTreeMap<String, Tensor<1>>) -> Self {
        Self { by_path }
    }

    /// Every master, by path (for checkpoints).
    pub fn state(&self) -> &BTreeMap<String, Tensor<1>> {
        &self.by_path
    }

    /// `item` as the optimizer takes it: a half-precision value replaced by its master (made
    /// from the value the first time), the gradient in f32. Returns the model's dtype of a
    /// widened item, for [`MasterWeights::narrow`].
    pub fn widen(&mut self, mut item: Item) -> (Item, Option<DType>) {
        let dtype = item.value.dtype();
        if dtype == DType::F32 {
            return (item, None);
        }
        let master = match self.by_path.remove(&item.path) {
            Some(m) => m,
            None => item.value.clone().cast(DType::F32),
        };
        item.value = master;
        item.grad = item.grad.cast(DType::F32);
        (item, Some(dtype))
    }

    /// After the step: keeps `new` (f32) as the master of `path` and returns it in `dtype`,
    /// the model's (`None`: the item was not widened, `new` is returned as it is).
    pub fn narrow(&mut self, path: &str, new: Tensor<1>, dtype: Option<DType>) -> Tensor<1> {
        let Some(dtype) = dtype else {
            return new;
        };
        self.by_path.insert(path.to_string(), new.clone());
        new.cast(dtype)
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::Device;

    use super::*;
    use crate::optim::{AdamW, AdamWConfig};

    /// 200 AdamW steps of lr 1e-4 on a bf16 weight of 1.0 with a constant gradient: each step
    /// moves it by ~1e-4, under half a bf16 step at 1.0 (2⁻⁸ / 2 ≈ 0.002).
    fn train(master: bool) -> (f32, Option<f32>) {
        let device = Device::flex();
        let mut value = Tensor::<1>::from_floats([1.0], &device).cast(DType::BF16);
        let mut optim = AdamW::new(AdamWConfig {
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            weight_decay: 0.0,
        });
        let mut masters = MasterWeights::default();
        for _ in 0..200 {
            let item = Item {
                path: "w".into(),
                decay: false,
                value: value.clone(),
                grad: Tensor::<1>::from_floats([0.5], &device).cast(DType::BF16),
            };
            let (item, dtype) = if master {
                masters.widen(item)
            } else {
                (item, None)
            };
            optim.begin_step();
            let gathered = optim.gather(vec![item]);
            let new = optim.apply(gathered, 1.0, 1e-4).remove(0);
            value = masters.narrow("w", new, dtype);
            assert_eq!(value.dtype(), DType::BF16);
        }
        let read = |t: Tensor<1>| t.cast(DType::F32).into_data().try_to_vec::<f32>().unwrap()[0];
        (read(value), masters.state().get("w").cloned().map(read))
    }

    #[test]
    fn small_updates_accumulate_in_the_master_and_are_lost_in_pure_bf16() {
        let (pure, none) = train(false);
        assert_eq!((pure, none), (1.0, None));
        let (rounded, master) = train(true);
        let master = master.unwrap();
        assert!((master - 0.98).abs() < 1e-3, "master {master}");
        // The model's copy is the master rounded to bf16 (0.98 lies between 0.9766 and 0.9805).
        assert!(
            (rounded - master).abs() <= 2f32.powi(-8),
            "{rounded} vs {master}"
        );
        assert!(rounded < 0.99);
    }
}
