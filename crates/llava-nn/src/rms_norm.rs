use burn::module::{Initializer, Module, Param};
use burn::tensor::{Device, Tensor};

/// RMSNorm as transformers computes it (spec §5.1): statistics in f32, the normalised value
/// cast back to the input dtype, then multiplied by the weight. burn-nn's `RmsNorm` divides in
/// the input dtype, which is not the same in bf16.
#[derive(Module, Debug)]
pub struct RmsNorm {
    /// `[hidden]`.
    pub weight: Param<Tensor<1>>,
    /// Added to the mean square.
    #[module(skip)]
    pub eps: f64,
}

impl RmsNorm {
    /// A norm of width `size` (weight initialised to ones; lazy).
    pub fn new(size: usize, eps: f64, device: &Device) -> Self {
        Self {
            weight: Initializer::Ones.init([size], device),
            eps,
        }
    }

    /// `[..., hidden]` → `[..., hidden]`.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        llava_ops::rms_norm(x, self.weight.val(), self.eps)
    }

    /// `(x + delta, self.forward(x + delta))`: a residual add and this norm, in one kernel on
    /// CUDA.
    pub fn forward_added<const D: usize>(
        &self,
        x: Tensor<D>,
        delta: Tensor<D>,
    ) -> (Tensor<D>, Tensor<D>) {
        llava_ops::add_rms_norm(x, delta, self.weight.val(), self.eps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    #[test]
    fn normalises_each_row_then_scales() {
        let device = Device::flex();
        let mut norm = RmsNorm::new(2, 0.0, &device);
        norm.weight = Param::from_tensor(Tensor::from_data(
            TensorData::new(vec![1.0f32, 2.0], [2]),
            &device,
        ));
        let x = Tensor::<2>::from_data(
            TensorData::new(vec![3.0f32, 4.0, 1.0, -1.0], [2, 2]),
            &device,
        );
        let y = norm.forward(x).try_into_vec_as::<f32>().unwrap();
        // rms([3, 4]) = √12.5; rms([1, -1]) = 1
        let r = 12.5f32.sqrt();
        let expected = [3.0 / r, 8.0 / r, 1.0, -2.0];
        for (a, b) in y.iter().zip(expected) {
            assert!((a - b).abs() < 1e-6, "{y:?}");
        }
    }
}
