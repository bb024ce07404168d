//! The LoRA-capable linear layer used for every projection of the decoder.

use burn::config::Config;
use burn::module::{Initializer, Module, Param};
use burn::nn::{Dropout, DropoutConfig};
use burn::tensor::{DType, Device, Tensor};

/// Builds a [`Linear`] without an adapter.
#[derive(Config, Debug)]
pub struct LinearConfig {
    /// Input features.
    pub d_input: usize,
    /// Output features.
    pub d_output: usize,
    /// Whether the base layer has a bias (Qwen's q/k/v do).
    #[config(default = false)]
    pub bias: bool,
}

/// A linear layer `y = x·Wᵀ + b`, optionally with a LoRA branch `s·B(A(dropout(x)))`.
///
/// The weight is kept as PyTorch stores it, `[d_output, d_input]`, so checkpoint tensors load
/// without a transpose and the decode GEMV reads it in the layout measured fastest on the GPU
/// (`../shared/notes/burn-0.22.md` §4).
#[derive(Module, Debug)]
pub struct Linear {
    /// `[d_output, d_input]`.
    pub weight: Param<Tensor<2>>,
    /// `[d_output]`.
    pub bias: Option<Param<Tensor<1>>>,
    /// The adapter, when one is attached.
    pub lora: Option<LoraFactors>,
}

/// The two LoRA factors of one layer and their scale.
#[derive(Module, Debug)]
pub struct LoraFactors {
    /// A: `[r, d_input]` (PEFT's `lora_A.weight`).
    pub lora_a: Param<Tensor<2>>,
    /// B: `[d_output, r]` (PEFT's `lora_B.weight`).
    pub lora_b: Param<Tensor<2>>,
    /// `alpha/r`, or `alpha/√r` with rslora.
    #[module(skip)]
    pub scaling: f64,
    /// Dropout on the branch input; active only while training under autodiff.
    pub dropout: Dropout,
}

impl LinearConfig {
    /// A layer with PyTorch's default initialisation (uniform ±1/√d_input). Parameters are
    /// lazy: loading a checkpoint into the layer never runs the initialiser.
    pub fn init(&self, device: &Device) -> Linear {
        let k = 1.0 / (self.d_input as f64).sqrt();
        let init = Initializer::Uniform { min: -k, max: k };
        Linear {
            weight: init.init([self.d_output, self.d_input], device),
            bias: self.bias.then(|| init.init([self.d_output], device)),
            lora: None,
        }
    }
}

impl LoraFactors {
    /// Fresh factors as PEFT initialises them: A ~ U(±1/√d_input) (kaiming-uniform, a = √5),
    /// B = 0, so the layer's output is unchanged until B trains.
    pub fn init(
        r: usize,
        d_input: usize,
        d_output: usize,
        scaling: f64,
        dropout: f64,
        device: &Device,
    ) -> Self {
        let k = 1.0 / (d_input as f64).sqrt();
        Self {
            lora_a: Initializer::Uniform { min: -k, max: k }.init([r, d_input], device),
            lora_b: Initializer::Zeros.init([d_output, r], device),
            scaling,
            dropout: DropoutConfig::new(dropout).init(),
        }
    }

    /// Factors from given tensors (A `[r, d_input]`, B `[d_output, r]`).
    pub fn from_tensors(a: Tensor<2>, b: Tensor<2>, scaling: f64, dropout: f64) -> Self {
        Self {
            lora_a: Param::from_tensor(a),
            lora_b: Param::from_tensor(b),
            scaling,
            dropout: DropoutConfig::new(dropout).init(),
        }
    }

    /// The rank r.
    pub fn rank(&self) -> usize {
        self.lora_a.shape().dims::<2>()[0]
    }

    /// `s·B(A(dropout(x)))`, computed in the factors' dtype as PEFT does.
    fn delta<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let a = self.lora_a.val();
        let x = self.dropout.forward(x.cast(a.dtype()));
        let h = llava_ops::linear(x, a, None);
        llava_ops::linear(h, self.lora_b.val(), None).mul_scalar(self.scaling)
    }

    /// The dense update `s·B·A`, `[d_output, d_input]`, in f32.
    fn dense_update(&self) -> Tensor<2> {
        let a = self.lora_a.val().cast(DType::F32);
        let b = self.lora_b.val().cast(DType::F32);
        b.matmul(a).mul_scalar(self.scaling)
    }
}

impl Linear {
    /// Input features.
    pub fn d_input(&self) -> usize {
        self.weight.shape().dims::<2>()[1]
    }

    /// Output features.
    pub fn d_output(&self) -> usize {
        self.weight.shape().dims::<2>()[0]
    }

    /// `[..., d_input]` → `[..., d_output]`.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let bias = self.bias.as_ref().map(|b| b.val());
        match &self.lora {
            None => llava_ops::linear(x, self.weight.val(), bias),
            Some(_) => {
                let y = llava_ops::linear(x.clone(), self.weight.val(), bias);
                self.with_adapter(x, y)
            }
        }
    }

    /// `layer.forward(x)` for each of `layers`, which read the same `x` (a layer's q/k/v or
    /// gate/up projections): the base products as one group ([`llava_ops::linear_group`], whose
    /// biased products round as [`Self::forward`] rounds them), then each layer's adapter added
    /// as [`Self::forward`] adds it.
    pub fn forward_group<const D: usize, const L: usize>(
        layers: [&Linear; L],
        x: Tensor<D>,
    ) -> [Tensor<D>; L] {
        let bases = llava_ops::linear_group(&x, layers.map(Linear::base));
        let mut bases = bases.into_iter();
        layers.map(|l| match bases.next() {
            Some(y) => l.with_adapter(x.clone(), y),
            None => l.forward(x.clone()),
        })
    }

    /// `silu(gate.forward(x)) ⊙ up.forward(x)`, a gated MLP's first half: without adapters one
    /// op ([`llava_ops::swiglu`]), with one the group and then the gate.
    pub fn forward_swiglu<const D: usize>(gate: &Linear, up: &Linear, x: Tensor<D>) -> Tensor<D> {
        if gate.lora.is_none() && up.lora.is_none() {
            return llava_ops::swiglu(x, gate.base(), up.base());
        }
        let [g, u] = Self::forward_group([gate, up], x);
        llava_ops::silu_mul(g, u)
    }

    /// The base weight and bias, as the ops take them.
    fn base(&self) -> (Tensor<2>, Option<Tensor<1>>) {
        (self.weight.val(), self.bias.as_ref().map(|b| b.val()))
    }

    /// `y` (the base output for `x`) plus the adapter's branch, when one is attached.
    fn with_adapter<const D: usize>(&self, x: Tensor<D>, y: Tensor<D>) -> Tensor<D> {
        let Some(lora) = &self.lora else {
            return y;
        };
        let delta = lora.delta(x);
        let (out, branch) = (y.dtype(), delta.dtype());
        if out == branch {
            y + delta
        } else {
            // PEFT adds an f32 branch to a half-precision base output in f32 (torch promotes),
            // then casts the sum back once.
            let wide = if branch == DType::F32 { branch } else { out };
            (y.cast(wide) + delta.cast(wide)).cast(out)
        }
    }

    /// Attaches an adapter and freezes the base weight and bias, as PEFT does.
    pub fn attach(&mut self, factors: LoraFactors) {
        self.weight = self.weight.clone().set_require_grad(false);
        self.bias = self.bias.take().map(|b| b.set_require_grad(false));
        self.lora = Some(factors);
    }

    /// Folds the adapter into the weight (`W ← W + s·B·A`, computed in f32 and cast back to the
    /// weight's dtype; a quantized weight is dequantized, merged and quantized again with its
    /// scheme) and drops it. A layer without an adapter is left unchanged.
    pub fn merge(&mut self) {
        if let Some(lora) = self.lora.take() {
            let weight = self.weight.val();
            // Detached before quantizing: burn's `detach` of a quantized tensor dequantizes it.
            let merged = match weight.dtype() {
                DType::QFloat(scheme) => (weight.dequantize().cast(DType::F32)
                    + lora.dense_update())
                .detach()
                .quantize_dynamic(&scheme),
                dtype => (weight.cast(DType::F32) + lora.dense_update())
                    .cast(dtype)
                    .detach(),
            };
            self.weight = Param::from_tensor(merged).set_require_grad(false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    fn tensor<const D: usize>(values: Vec<f32>, shape: [usize; D], device: &Device) -> Tensor<D> {
        Tensor::from_data(TensorData::new(values, shape), device)
    }

    fn layer(device: &Device) -> Linear {
        // W = [[1, 2], [3, 4], [5, 6]] (out 3, in 2), b = [0.5, -0.5, 1]
        Linear {
            weight: Param::from_tensor(tensor(vec![1., 2., 3., 4., 5., 6.], [3, 2], device)),
            bias: Some(Param::from_tensor(tensor(
                vec![0.5, -0.5, 1.0],
                [3],
                device,
            ))),
            lora: None,
        }
    }

    fn factors(device: &Device) -> LoraFactors {
        // A = [[1, -1]] (r 1, in 2), B = [[2], [0], [-1]] (out 3, r 1), s = 0.5
        LoraFactors::from_tensors(
            tensor(vec![1., -1.], [1, 2], device),
            tensor(vec![2., 0., -1.], [3, 1], device),
            0.5,
            0.0,
        )
    }

    #[test]
    fn forward_is_x_w_transposed_plus_bias_plus_scaled_branch() {
        let device = Device::flex();
        let mut l = layer(&device);
        let x = tensor(vec![1., 2., -1., 0.5], [2, 2], &device);
        let y: Vec<f32> = l.forward(x.clone()).try_into_vec_as::<f32>().unwrap();
        assert_eq!(y, vec![5.5, 10.5, 18.0, 0.5, -1.5, -1.0]);
        l.attach(factors(&device));
        // x·Aᵀ = [-1, -1.5]; ·Bᵀ·0.5 = [[-1, 0, 0.5], [-1.5, 0, 0.75]]
        let y: Vec<f32> = l.forward(x.clone()).try_into_vec_as::<f32>().unwrap();
        assert_eq!(y, vec![4.5, 10.5, 18.5, -1.0, -1.5, -0.25]);
        l.merge();
        assert!(l.lora.is_none());
        let y: Vec<f32> = l.forward(x).try_into_vec_as::<f32>().unwrap();
        assert_eq!(y, vec![4.5, 10.5, 18.5, -1.0, -1.5, -0.25]);
    }

    #[test]
    fn fresh_factors_leave_the_output_unchanged() {
        let device = Device::flex();
        let mut l = layer(&device);
        let x = tensor(vec![1., 2., -1., 0.5], [1, 2, 2], &device);
        let before = l.forward(x.clone()).into_data();
        l.attach(LoraFactors::init(4, 2, 3, 2.0, 0.1, &device));
        assert_eq!(l.forward(x).into_data(), before);
    }

    #[test]
    fn runs_under_autodiff_with_the_base_frozen() {
        let device = Device::flex().autodiff();
        let mut l = layer(&device);
        l.attach(factors(&device));
        let x = tensor(vec![1., 2., -1., 0.5], [2, 2], &device);
        let loss = l.forward(x).sum();
        let grads = loss.backward();
        // d(sum)/dB[o, 0] = s · Σ_rows (x·Aᵀ) = 0.5 · (-2.5) for every o.
        let gb: Vec<f32> = l
            .lora
            .as_ref()
            .unwrap()
            .lora_b
            .val()
            .grad(&grads)
            .expect("B has a gradient")
            .try_into_vec_as::<f32>()
            .unwrap();
        assert_eq!(gb, vec![-1.25, -1.25, -1.25]);
        // d(sum)/dA[0, i] = s · (Σ_o B[o]) · Σ_rows x[:, i] = 0.5 · 1 · [0, 2.5]
        let ga: Vec<f32> = l
            .lora
            .as_ref()
            .unwrap()
            .lora_a
            .val()
            .grad(&grads)
            .expect("A has a gradient")
            .try_into_vec_as::<f32>()
            .unwrap();
        assert_eq!(ga, vec![0.0, 1.25]);
        assert!(
            l.weight.val().grad(&grads).is_none(),
            "the base weight is frozen"
        );
    }
}
