//! Models with random weights, made directly on their devices in the target dtype: full-size
//! shapes for benchmarks and memory checks where no checkpoint exists (or none fits on disk:
//! llava-next-72b is 145 GB in bf16).

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{DType, Distribution, Tensor};
use llava_llm::DeviceMap;

use crate::{LlavaConfig, LlavaNext};

/// Standard deviation of the matrices, as transformers' `initializer_range`.
const STD: f64 = 0.02;

/// Replaces every parameter by random values of `dtype` on the parameter's device: matrices
/// (and convolution kernels) from N(0, 0.02²), as transformers initialises them; vectors (norm
/// scales, biases, `image_newline`) keep their initialiser's values, cast to `dtype`. Lazy
/// parameters are never materialised in f32 first, so the peak is the model in `dtype`.
pub fn randomize<M: Module>(module: M, dtype: DType) -> M {
    module.map(&mut Randomizer { dtype })
}

struct Randomizer {
    dtype: DType,
}

impl ModuleMapper for Randomizer {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if D < 2 {
            let dtype = self.dtype;
            return param.map(|t| t.cast(dtype));
        }
        let (shape, device) = (param.lazy_shape(), param.lazy_device());
        let value =
            Tensor::<D>::random(shape, Distribution::Normal(0.0, STD), (&device, self.dtype));
        Param::initialized(param.id, value)
    }
}

impl LlavaNext {
    /// A model of `config`'s shapes with random weights of `dtype`, each part created on its
    /// device of `map` (see [`randomize`]). `seed` seeds every device's generator.
    pub fn random(config: &LlavaConfig, map: &DeviceMap, dtype: DType, seed: u64) -> Self {
        for device in map.devices() {
            device.seed(seed);
        }
        let model = randomize(Self::new_mapped(config, map), dtype);
        model.release_pool_memory();
        model
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::ModuleVisitor;
    use burn::tensor::Device;

    struct Stats {
        /// Elements visited.
        count: usize,
        dtypes: Vec<DType>,
        matrix_std: Vec<f64>,
    }

    impl ModuleVisitor for Stats {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let t = param.val();
            self.count += t.shape().num_elements();
            self.dtypes.push(t.dtype());
            if D >= 2 && t.shape().num_elements() >= 4096 {
                let t = t.cast(DType::F32).flatten::<1>(0, D - 1);
                let std = t.var(0).sqrt().into_scalar::<f32>() as f64;
                self.matrix_std.push(std);
            }
        }
    }

    #[test]
    fn random_model_has_every_parameter_in_the_dtype_and_runs() {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fixtures/llava/clip-qwen2/hf"
        );
        let config = LlavaConfig::from_dir(dir).expect("fixture config");
        let device = Device::flex();
        let map = DeviceMap::single(&device, config.text.num_hidden_layers);
        let model = LlavaNext::random(&config, &map, DType::F32, 7);
        let mut stats = Stats {
            count: 0,
            dtypes: Vec::new(),
            matrix_std: Vec::new(),
        };
        model.visit(&mut stats);
        assert_eq!(stats.count, model.num_params());
        assert!(stats.dtypes.iter().all(|d| *d == DType::F32));
        assert!(!stats.matrix_std.is_empty());
        for std in &stats.matrix_std {
            assert!((std - STD).abs() < 0.1 * STD, "matrix std {std}");
        }
        let ids = vec![1i64, 5, 9, 13];
        let prompt = crate::Prompt {
            ids,
            images: Vec::new(),
        };
        let (logits, _) = model.forward(&[prompt]).expect("forward");
        assert_eq!(logits.dims(), [1, 4, config.text.vocab_size]);
        let finite = logits.is_finite().all().into_scalar::<bool>();
        assert!(finite);
    }
}
