//! The decoder's hot tensor ops, with a CUDA route.
//!
//! burn 0.22 without its `autotune` feature launches one default kernel per op whatever the
//! shape: the tensor-core tiled matmul for a one-row GEMV, and one thread per row for every
//! reduction (an argmax over 152 064 logits on a single thread). Autotune would choose better,
//! but it compiles and times every candidate of every new shape on first use (minutes on a
//! fresh machine; docs/cuda.md). So on CUDA these ops launch cubek's kernels with a strategy
//! picked here from the shape (`choice`), measured once on the target GPU (`cargo xtask
//! sweep`, docs/benchmarks.md). Everywhere else (CPU, autodiff, another runtime) they are
//! plain burn ops, so the CPU parity tests exercise the same formulas.
//!
//! `LLAVA_OPS=burn` turns the route off, for A/B runs.

use burn::tensor::{DType, Int, Tensor, TensorData};

pub mod choice;
#[cfg(feature = "cuda")]
pub mod cuda;

/// Bytes a device can still take: its capacity less what burn's pool already reserves. `None`
/// where no capacity is known (CPU devices, builds without CUDA).
pub fn free_memory(device: &burn::tensor::Device) -> Option<u64> {
    #[cfg(feature = "cuda")]
    return cuda::free_memory(device);
    #[cfg(not(feature = "cuda"))]
    {
        let _ = device;
        None
    }
}

/// Whether a step of tensor ops on `device` can be recorded once as a CUDA graph and replayed
/// (burn's `capture`), its inputs refreshed in place with [`overwrite`] between replays: CUDA
/// devices with the route on. `LLAVA_GRAPH=0` turns replay off, for A/B runs.
pub fn graph_replay_available(device: &burn::tensor::Device) -> bool {
    #[cfg(feature = "cuda")]
    return cuda::graph_replay_available(device);
    #[cfg(not(feature = "cuda"))]
    {
        let _ = device;
        false
    }
}

/// A step of device work recorded as a CUDA graph ([`record`]).
pub struct Recording {
    #[cfg(feature = "cuda")]
    inner: cuda::Recording,
    #[cfg(not(feature = "cuda"))]
    _never: std::convert::Infallible,
}

impl std::fmt::Debug for Recording {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Recording")
    }
}

/// Why [`record`] gave no recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordError {
    /// Nothing was recorded (not CUDA, replay turned off, or the driver would not start): every
    /// buffer is as the warm-up run, if any, left it, so the step can run op by op.
    NotStarted(String),
    /// The driver refused the recording after it began. cubecl then marks the buffers the
    /// recorded run would have written as failed, so what the step writes is lost.
    Refused(String),
}

impl std::fmt::Display for RecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotStarted(why) | Self::Refused(why) => f.write_str(why),
        }
    }
}

/// Runs `step` once as a warm-up, then records a second run of it as a CUDA graph, not
/// executed. Returns the recording, the output its replays write, and the warm-up's output
/// (this step's result; `None` with `LLAVA_GRAPH_WARMUP=drop`, where it is dropped before the
/// recording and one replay gives the result). `step` must issue device work only: no host copies, and no
/// allocations beyond what its first run made. Between replays, refresh its inputs with
/// [`overwrite`]. Off the CUDA route (or with `LLAVA_GRAPH=0`) `step` is not run and the
/// answer is [`RecordError::NotStarted`].
pub fn record<T>(
    device: &burn::tensor::Device,
    step: impl FnMut() -> T,
) -> Result<(Recording, T, Option<T>), RecordError> {
    #[cfg(feature = "cuda")]
    if graph_replay_available(device) {
        return cuda::record(device, step)
            .map(|(inner, out, warm_up)| (Recording { inner }, out, warm_up));
    }
    let _ = (device, step);
    Err(RecordError::NotStarted(
        "graph replay needs the CUDA route".into(),
    ))
}

impl Recording {
    /// Re-runs the recorded launches, queued on the calling thread's stream.
    ///
    /// # Safety
    /// Every tensor the recorded run read or wrote must still be alive (its buffer not freed
    /// and reused), nothing on another stream may use them meanwhile, and input refreshes and
    /// output reads must be issued from the thread that recorded (the same stream).
    pub unsafe fn replay(&self) -> Result<(), String> {
        #[cfg(feature = "cuda")]
        // SAFETY: forwarded from the caller.
        return unsafe { self.inner.replay() };
        #[cfg(not(feature = "cuda"))]
        match self._never {}
    }
}

/// Writes `data` into `dst`'s own buffer (no new allocation, so a recorded graph that reads
/// `dst` sees the new values on its next replay). `data` must have `dst`'s shape; it is cast to
/// `dst`'s dtype. Returns false, writing nothing, where this is not possible (off the CUDA route,
/// a strided or mismatched tensor): callers check [`graph_replay_available`] first.
pub fn overwrite<const D: usize>(dst: &Tensor<D>, data: TensorData) -> bool {
    #[cfg(feature = "cuda")]
    return cuda::overwrite(dst, data);
    #[cfg(not(feature = "cuda"))]
    {
        let _ = (dst, data);
        false
    }
}

/// [`overwrite`] for an integer tensor.
pub fn overwrite_int<const D: usize>(dst: &Tensor<D, Int>, data: TensorData) -> bool {
    #[cfg(feature = "cuda")]
    return cuda::overwrite(dst, data);
    #[cfg(not(feature = "cuda"))]
    {
        let _ = (dst, data);
        false
    }
}

/// `lhs · rhs` over the last two dims (batch dims equal).
pub fn matmul<const D: usize>(lhs: Tensor<D>, rhs: Tensor<D>) -> Tensor<D> {
    #[cfg(feature = "cuda")]
    if let Some(out) = cuda::matmul(&lhs, &rhs) {
        return out;
    }
    lhs.matmul(rhs)
}

/// `lhs · rhs` with the product in f32 whatever the inputs' dtype, as fused attention kernels
/// (SDPA) keep their scores. On CUDA the kernel writes f32 directly; elsewhere the product is
/// rounded to the inputs' dtype first (transformers' eager attention).
pub fn matmul_wide<const D: usize>(lhs: Tensor<D>, rhs: Tensor<D>) -> Tensor<D> {
    #[cfg(feature = "cuda")]
    if let Some(out) = cuda::matmul_wide(&lhs, &rhs) {
        return out;
    }
    lhs.matmul(rhs).cast(burn::tensor::DType::F32)
}

/// `x · weightᵀ + bias` with `weight` stored as PyTorch stores it, `[d_output, d_input]`.
///
/// In half precision the bias is added to the product's f32 sums and the result rounded once, as
/// PyTorch's `addmm` adds it in the GEMM's epilogue (transformers' biased linears: the CLIP and
/// SigLIP towers, the projector, Qwen's q/k/v); rounding the product first and the sum again
/// moved the CPU fixture's image features 0.73% from transformers' bf16 ones, against 0.56%.
/// Decode rows on CUDA (the GEMV) still round twice.
pub fn linear<const D: usize>(
    x: Tensor<D>,
    weight: Tensor<2>,
    bias: Option<Tensor<1>>,
) -> Tensor<D> {
    #[cfg(feature = "cuda")]
    {
        let routed = match &bias {
            Some(b) => cuda::linear_bias(&x, &weight, b),
            None => cuda::linear(&x, &weight),
        };
        if let Some(out) = routed {
            return out;
        }
    }
    let dtype = x.dtype();
    match bias {
        Some(b) if matches!(dtype, DType::BF16 | DType::F16) => {
            let wide = |t: Tensor<2>| t.cast(DType::F32);
            burn::tensor::module::linear(
                x.cast(DType::F32),
                wide(weight).transpose(),
                Some(b.cast(DType::F32)),
            )
            .cast(dtype)
        }
        bias => burn::tensor::module::linear(x, weight.transpose(), bias),
    }
}

/// GELU (`tanh` approximation or exact) computed in f32 and rounded once to `x`'s dtype, as
/// PyTorch's half-precision kernels compute it (burn's GELU on CUDA is five tensor ops, each
/// rounded). One kernel on CUDA.
pub fn gelu<const D: usize>(x: Tensor<D>, tanh: bool) -> Tensor<D> {
    #[cfg(feature = "cuda")]
    {
        let act = if tanh {
            cuda::Activation::GeluTanh
        } else {
            cuda::Activation::Gelu
        };
        if let Some(out) = cuda::activation(&x, act) {
            return out;
        }
    }
    let dtype = x.dtype();
    let x = x.cast(DType::F32);
    let y = if tanh {
        burn::tensor::activation::gelu_approximate(x)
    } else {
        burn::tensor::activation::gelu(x)
    };
    y.cast(dtype)
}

/// transformers' QuickGELU, `x·σ(1.702·x)`, with its three half-precision roundings: `1.702·x`
/// (the scalar kept in f32, as PyTorch keeps a Python float), its sigmoid, the product. One
/// kernel on CUDA (burn's ops take about ten launches over the MLP's width).
pub fn quick_gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    #[cfg(feature = "cuda")]
    if let Some(out) = cuda::activation(&x, cuda::Activation::QuickGelu) {
        return out;
    }
    let dtype = x.dtype();
    let round = |t: Tensor<D>| t.cast(dtype).cast(DType::F32);
    let wide = x.cast(DType::F32);
    let scaled = round(wide.clone() * 1.702);
    let sigmoid = round(burn::tensor::activation::sigmoid(scaled));
    (wide * sigmoid).cast(dtype)
}

/// `[x · w_iᵀ (+ b_i)]` for weights stored `[d_output, d_input]` in one group of cuBLAS products
/// on CUDA for prompt rows of at least 30 GFLOP in all, with one host wait each side instead of
/// one per product (`LLAVA_OPS_OFF=blas_group` turns it off). `biases` is empty or has one per weight; biased
/// products are rounded once, after the bias, as [`linear`] rounds them. `None` elsewhere, and
/// the caller runs [`linear`] per weight.
pub fn linear_group<const D: usize>(
    x: &Tensor<D>,
    weights: &[&Tensor<2>],
    biases: &[&Tensor<1>],
) -> Option<Vec<Tensor<D>>> {
    #[cfg(feature = "cuda")]
    return cuda::linear_group(x, weights, biases);
    #[cfg(not(feature = "cuda"))]
    {
        let _ = (x, weights, biases);
        None
    }
}

/// `tensors` (equal but for their first dim) copied into one buffer on CUDA in half precision,
/// returned as views of its row blocks: a layer's q/k/v weights so, [`linear_group`] runs one
/// product over them. Opt-in (`LLAVA_OPS_ON=shared_rows`; measured in `cuda::share_rows`).
/// `None` elsewhere, and the caller keeps its tensors.
pub fn share_rows<const D: usize>(tensors: Vec<Tensor<D>>) -> Option<Vec<Tensor<D>>> {
    #[cfg(feature = "cuda")]
    return cuda::share_rows(tensors);
    #[cfg(not(feature = "cuda"))]
    {
        let _ = tensors;
        None
    }
}

/// Softmax over the last dim. On CUDA: the max subtracted, exp, divided by the sum, with both
/// reductions routed; elsewhere burn's `softmax`.
pub fn softmax_last<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    #[cfg(feature = "cuda")]
    if let Some(out) = cuda::softmax_last(&x) {
        return out;
    }
    burn::tensor::activation::softmax(x, D - 1)
}

/// Attention probabilities: the softmax over the last dim of `scores·scale + bias`, cast to
/// `dtype`. `scores` `[b, kv_heads, group·s, t]` f32 holds the `group` query heads of each
/// key/value head stacked over the `s` queries; `bias` `[b, 1, s, t]` f32 is shared by all
/// heads. One kernel on CUDA (one pass over the scores instead of eight); elsewhere burn's ops
/// in the same order.
pub fn attention_probs(
    scores: Tensor<4>,
    bias: Tensor<4>,
    scale: f64,
    dtype: burn::tensor::DType,
) -> Tensor<4> {
    #[cfg(feature = "cuda")]
    if let Some(out) = cuda::attention_probs(&scores, &bias, scale, dtype) {
        return out;
    }
    let [b, kv, rows, t] = scores.dims();
    let s = bias.dims()[2];
    let x =
        scores.mul_scalar(scale).reshape([b, kv, rows / s, s, t]) + bias.reshape([b, 1, 1, s, t]);
    softmax_last(x).cast(dtype).reshape([b, kv, rows, t])
}

/// Causal attention of `q`, `k`, `v` `[b, heads, s, d]` (key/value heads already repeated)
/// through cubek's flash kernel with the blueprint `(planes, seq_q tiles, seq_kv tiles)`
/// (`planes = 0`: the unit routine). A probe for `xtask bench-ops --prefill`: `None` off CUDA,
/// `Some(Err)` when the kernel declines the problem.
pub fn flash_attention_causal(
    q: &Tensor<4>,
    k: &Tensor<4>,
    v: &Tensor<4>,
    blueprint: (u8, u8, u8),
) -> Option<Result<Tensor<4>, String>> {
    #[cfg(feature = "cuda")]
    return cuda::flash_attention_causal(q, k, v, blueprint);
    #[cfg(not(feature = "cuda"))]
    {
        let _ = (q, k, v, blueprint);
        None
    }
}

/// Attention of one query per sequence (a decode step): `q` `[b, heads, 1, d]`, `k`/`v` the
/// cache buffers `[b, kv_heads, t, d]`, `bias` `[b, 1, 1, t]` f32, probabilities in f32. Two
/// kernels on CUDA (flash-decoding: splits of the cache, then their merge); `None` off CUDA or
/// where the shapes do not fit, and the caller runs the scores, probabilities and `p·V`.
/// The decoder calls it where [`decode_attention_in_model`] says so.
pub fn decode_attention(
    q: &Tensor<4>,
    k: &Tensor<4>,
    v: &Tensor<4>,
    bias: &Tensor<4>,
    scale: f64,
) -> Option<Tensor<4>> {
    #[cfg(feature = "cuda")]
    return cuda::decode_attention(q, k, v, bias, scale);
    #[cfg(not(feature = "cuda"))]
    {
        let _ = (q, k, v, bias, scale);
        None
    }
}

/// `x · weightᵀ` for `x` `[rows, k]` (at most a few decode rows) and `weight` `[n, k]` through
/// the GEMV kernel (one plane per weight row or two, 16-byte loads), whether or not the model
/// takes it (`LLAVA_OPS_ON=gemv`): for benchmarks and checks. `None` off CUDA or where the
/// layouts do not fit ([`choice::gemv_plan`]).
pub fn gemv(x: &Tensor<2>, weight: &Tensor<2>) -> Option<Tensor<2>> {
    #[cfg(feature = "cuda")]
    return cuda::gemv_tensors(x, weight);
    #[cfg(not(feature = "cuda"))]
    {
        let _ = (x, weight);
        None
    }
}

/// `silu(x · gateᵀ) · (x · upᵀ)` (a gated MLP's first half, weights `[n, k]` as PyTorch stores
/// them) in one GEMV kernel for decode rows, with the roundings of the two products and
/// `silu_mul`. `None` off CUDA, where the layouts do not fit, or with `LLAVA_OPS_OFF=gemv_silu`
/// unless `force`; the caller then runs the three ops.
pub fn gemv_silu<const D: usize>(
    x: &Tensor<D>,
    gate: &Tensor<2>,
    up: &Tensor<2>,
    force: bool,
) -> Option<Tensor<D>> {
    #[cfg(feature = "cuda")]
    return cuda::gemv_silu_tensors(x, gate, up, force);
    #[cfg(not(feature = "cuda"))]
    {
        let _ = (x, gate, up, force);
        None
    }
}

/// `[x · w_qᵀ, x · w_kᵀ, x · w_vᵀ]` (weights `[n, k]`, `w_k` and `w_v` of one shape) in one GEMV
/// launch for decode rows, equal to three [`gemv`] calls. `None` off CUDA, where the layouts do
/// not fit, or with `LLAVA_OPS_OFF=gemv_qkv` unless `force`; the caller then runs the three
/// projections.
pub fn gemv_qkv<const D: usize>(
    x: &Tensor<D>,
    weights: [&Tensor<2>; 3],
    force: bool,
) -> Option<[Tensor<D>; 3]> {
    #[cfg(feature = "cuda")]
    return cuda::gemv_qkv_tensors(x, weights, force);
    #[cfg(not(feature = "cuda"))]
    {
        let _ = (x, weights, force);
        None
    }
}

/// Causal attention of a prompt in one kernel on tensor cores (FlashAttention-2's loop, no
/// scores written): `q` `[b, heads, s, d]` in bf16/f16 with head dim 64 or 128, `k`/`v`
/// `[b, kv_heads, slots, d]` holding the `past` cached positions and then the prompt's; query
/// `i` sees keys `0..=past + i` and nothing else (no padding, no window). `None` off CUDA or
/// where the operands do not fit. The decoder calls it only where [`flash_prefill_in_model`]
/// says so.
pub fn flash_prefill(
    q: &Tensor<4>,
    k: &Tensor<4>,
    v: &Tensor<4>,
    past: usize,
    scale: f64,
) -> Option<Tensor<4>> {
    #[cfg(feature = "cuda")]
    return cuda::flash_prefill(q, k, v, past, scale);
    #[cfg(not(feature = "cuda"))]
    {
        let _ = (q, k, v, past, scale);
        None
    }
}

/// Attention without a mask (every query sees every key: the vision towers) in the kernel of
/// [`flash_prefill`]: `q` `[b, heads, s, d]`, `k`/`v` `[b, kv_heads, t, d]`, bf16/f16, head
/// dim 64 or 128. `None` off CUDA or where the operands do not fit. The towers call it only
/// where [`flash_vision_in_model`] says so.
pub fn flash_attention_full(
    q: &Tensor<4>,
    k: &Tensor<4>,
    v: &Tensor<4>,
    scale: f64,
) -> Option<Tensor<4>> {
    #[cfg(feature = "cuda")]
    return cuda::flash_attention_full(q, k, v, scale);
    #[cfg(not(feature = "cuda"))]
    {
        let _ = (q, k, v, scale);
        None
    }
}

/// Runs `work` (tensor ops on `like`'s device) on cubecl's own device thread, in one
/// `exclusive` call, where `LLAVA_OPS_ON=inline` and `like` is a CUDA tensor; here otherwise.
/// There cubecl's calls run inline instead of each launch being queued to that thread, so a
/// cuBLAS product's buffer lookups cost no wait for the queue, and every prompt product in
/// `work` takes cuBLAS whatever its size (where cuBLAS runs on cubecl's stream). Used for the
/// vision tower and projector. Opt-in: on an H200 (7B first token, medians of six) it gave
/// 82.8 / 81.9 against 84.9 / 84.3 ms in one call (with `LLAVA_CUBLAS_MIN_MFLOP=0` as well)
/// and 89.7 / 88.4 against 85.5 / 87.6 in another; the logits are bit-identical either way
/// (docs/benchmarks.md, seventh session). `work` must not wait on a lock that another thread
/// holds while it waits for cubecl's device thread (a deadlock); none of ours does.
pub fn on_device_thread<const D: usize, R: Send + 'static>(
    like: &Tensor<D>,
    work: impl FnOnce() -> R + Send,
) -> R {
    #[cfg(feature = "cuda")]
    return cuda::on_device_thread(like, work);
    #[cfg(not(feature = "cuda"))]
    {
        let _ = like;
        work()
    }
}

/// Whether the vision towers' attention takes [`flash_attention_full`]: yes on CUDA unless
/// `LLAVA_OPS_OFF=flash_vision` (H200, 7B prompt with one 672×672 image: first token 183.7 →
/// 161.7 ms with the decoder's flash attention on).
pub fn flash_vision_in_model() -> bool {
    #[cfg(feature = "cuda")]
    return cuda::kernel_on("flash_vision");
    #[cfg(not(feature = "cuda"))]
    false
}

/// Whether the decoder's plain causal prompts take [`flash_prefill`]: yes on CUDA unless
/// `LLAVA_OPS_OFF=flash_prefill` (H200: 0.92 against 3.58 ms a layer at 3072 positions for
/// Mistral's 32/8 heads; 7B first token 239.5 → 183.7 ms).
pub fn flash_prefill_in_model() -> bool {
    #[cfg(feature = "cuda")]
    return cuda::kernel_on("flash_prefill");
    #[cfg(not(feature = "cuda"))]
    false
}

/// Whether the decoder's decode steps take [`decode_attention`]: yes on CUDA unless
/// `LLAVA_OPS_OFF=decode_attention` (H200: 43 against 109 µs a layer at 3k cache for Mistral's
/// 32/8 heads, 94 against 254 µs for llava-next-72b's 64/64; 7B decode 125 → 148 tok/s).
pub fn decode_attention_in_model() -> bool {
    #[cfg(feature = "cuda")]
    return cuda::kernel_on("decode_attention");
    #[cfg(not(feature = "cuda"))]
    false
}

/// LayerNorm over the last dim as PyTorch computes it in half precision: mean and variance in
/// f32, `(x − mean)/√(var + eps)·weight + bias` in f32, cast back to `x`'s dtype. One kernel on
/// CUDA; elsewhere burn's ops.
pub fn layer_norm<const D: usize>(
    x: Tensor<D>,
    weight: Tensor<1>,
    bias: Tensor<1>,
    eps: f64,
) -> Tensor<D> {
    #[cfg(feature = "cuda")]
    if let Some(out) = cuda::layer_norm(&x, &weight, &bias, eps) {
        return out;
    }
    let dtype = x.dtype();
    let x = x.cast(burn::tensor::DType::F32);
    let mean = mean_last(x.clone());
    let centred = x - mean;
    let var = mean_last(centred.clone().square());
    let normed = centred * var.add_scalar(eps).sqrt().recip();
    let w = weight.cast(burn::tensor::DType::F32).unsqueeze::<D>();
    let b = bias.cast(burn::tensor::DType::F32).unsqueeze::<D>();
    (normed * w + b).cast(dtype)
}

/// `(x + delta, rms_norm(x + delta))`: the residual add (rounded to the dtype, as burn's add
/// rounds it) and the next norm. One kernel on CUDA (one pass less over the hidden states);
/// elsewhere the add, then [`rms_norm`].
pub fn add_rms_norm<const D: usize>(
    x: Tensor<D>,
    delta: Tensor<D>,
    weight: Tensor<1>,
    eps: f64,
) -> (Tensor<D>, Tensor<D>) {
    #[cfg(feature = "cuda")]
    if let Some(out) = cuda::add_rms_norm(&x, &delta, &weight, eps) {
        return out;
    }
    let sum = x + delta;
    let normed = rms_norm(sum.clone(), weight, eps);
    (sum, normed)
}

/// RMSNorm over the last dim as transformers computes it: the mean square in f32, the
/// normalised value cast back to `x`'s dtype, then multiplied by `weight` (cast to that dtype).
/// One kernel on CUDA; elsewhere burn's ops.
pub fn rms_norm<const D: usize>(x: Tensor<D>, weight: Tensor<1>, eps: f64) -> Tensor<D> {
    #[cfg(feature = "cuda")]
    if let Some(out) = cuda::rms_norm(&x, &weight, eps) {
        return out;
    }
    let dtype = x.dtype();
    let x = x.cast(burn::tensor::DType::F32);
    let mean_square = mean_last(x.clone().square());
    let normed = x * mean_square.add_scalar(eps).sqrt().recip();
    normed.cast(dtype) * weight.cast(dtype).unsqueeze::<D>()
}

/// Rotate-half RoPE on `x` `[b, s, heads, d]` with `cos` and `sin_signed` `[b, s, d]` (the
/// sine with its first half negated): `x·cos + swap_halves(x)·sin_signed`, the three ops of
/// transformers' formula each rounded to `x`'s dtype. One kernel on CUDA; elsewhere burn's ops.
pub fn rope_bshd(x: Tensor<4>, cos: Tensor<3>, sin_signed: Tensor<3>) -> Tensor<4> {
    #[cfg(feature = "cuda")]
    if let Some(out) = cuda::rope_bshd(&x, &cos, &sin_signed) {
        return out;
    }
    let d = x.dims()[3];
    let swapped = Tensor::cat(
        vec![
            x.clone().narrow(3, d / 2, d / 2),
            x.clone().narrow(3, 0, d / 2),
        ],
        3,
    );
    x * cos.unsqueeze_dim::<4>(2) + swapped * sin_signed.unsqueeze_dim::<4>(2)
}

/// The SwiGLU gate `silu(gate) ⊙ up`, each rounded to the inputs' dtype as transformers rounds
/// them. One kernel on CUDA; elsewhere burn's ops.
pub fn silu_mul<const D: usize>(gate: Tensor<D>, up: Tensor<D>) -> Tensor<D> {
    #[cfg(feature = "cuda")]
    if let Some(out) = cuda::silu_mul(&gate, &up) {
        return out;
    }
    burn::tensor::activation::silu(gate) * up
}

/// Maximum over the last dim, kept as a dim of size 1.
pub fn max_last<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    #[cfg(feature = "cuda")]
    if let Some(out) = cuda::reduce_last(&x, cuda::RowOp::Max) {
        return out;
    }
    x.max_dim(D - 1)
}

/// Sum over the last dim, kept as a dim of size 1.
pub fn sum_last<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    #[cfg(feature = "cuda")]
    if let Some(out) = cuda::reduce_last(&x, cuda::RowOp::Sum) {
        return out;
    }
    x.sum_dim(D - 1)
}

/// Mean over the last dim, kept as a dim of size 1.
pub fn mean_last<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    #[cfg(feature = "cuda")]
    if let Some(out) = cuda::reduce_last(&x, cuda::RowOp::Mean) {
        return out;
    }
    x.mean_dim(D - 1)
}

/// The index of each row's maximum (the first on ties), `[rows, 1]`.
pub fn argmax_last(x: Tensor<2>) -> Tensor<2, Int> {
    #[cfg(feature = "cuda")]
    if let Some(out) = cuda::argmax_last(&x) {
        return out;
    }
    x.argmax(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    fn t2(values: &[f32], shape: [usize; 2]) -> Tensor<2> {
        Tensor::from_data(TensorData::new(values.to_vec(), shape), &Device::flex())
    }

    #[test]
    fn linear_multiplies_by_the_transposed_weight_and_adds_the_bias() {
        let x = t2(&[1.0, 2.0, 3.0, 4.0], [2, 2]);
        let w = t2(&[1.0, 0.0, 1.0, 1.0, 0.0, 2.0], [3, 2]); // [out 3, in 2]
        let b = Tensor::<1>::from_data(
            TensorData::new(vec![0.5f32, 0.0, -1.0], [3]),
            &Device::flex(),
        );
        let y = linear(x, w, Some(b)).try_into_vec_as::<f32>().unwrap();
        assert_eq!(y, vec![1.5, 3.0, 3.0, 3.5, 7.0, 7.0]);
    }

    #[test]
    fn softmax_rows_sum_to_one_and_keep_order() {
        let p = softmax_last(t2(&[0.0, 1.0, 2.0, 5.0, 5.0, 5.0], [2, 3]))
            .try_into_vec_as::<f32>()
            .unwrap();
        let e = [1.0f32, 1f32.exp(), 2f32.exp()];
        let s: f32 = e.iter().sum();
        for (got, want) in p.iter().zip([
            e[0] / s,
            e[1] / s,
            e[2] / s,
            1.0 / 3.0,
            1.0 / 3.0,
            1.0 / 3.0,
        ]) {
            assert!((got - want).abs() < 1e-6, "{p:?}");
        }
    }

    #[test]
    fn row_reductions_and_argmax_take_the_first_maximum() {
        let x = t2(&[1.0, 7.0, 7.0, -2.0, -1.0, -3.0], [2, 3]);
        assert_eq!(
            max_last(x.clone()).try_into_vec_as::<f32>().unwrap(),
            vec![7.0, -1.0]
        );
        assert_eq!(
            sum_last(x.clone()).try_into_vec_as::<f32>().unwrap(),
            vec![15.0, -6.0]
        );
        assert_eq!(
            mean_last(x.clone()).try_into_vec_as::<f32>().unwrap(),
            vec![5.0, -2.0]
        );
        assert_eq!(argmax_last(x).try_into_vec_as::<i64>().unwrap(), vec![1, 1]);
    }

    #[test]
    fn layer_norm_centres_scales_and_shifts_each_row() {
        // Row [1, 2, 3, 6]: mean 3, variance (4 + 1 + 0 + 9) / 4 = 3.5.
        let x = t2(&[1.0, 2.0, 3.0, 6.0, 5.0, 5.0, 5.0, 5.0], [2, 4]);
        let one =
            |v: [f32; 4]| Tensor::<1>::from_data(TensorData::new(v.to_vec(), [4]), &Device::flex());
        let y = layer_norm(x, one([1.0, 2.0, 1.0, 1.0]), one([0.0, 0.0, 0.5, 0.0]), 0.5)
            .try_into_vec_as::<f32>()
            .unwrap();
        let inv = 1.0 / 4f32.sqrt();
        let want = [-2.0 * inv, -2.0 * inv, 0.5, 3.0 * inv, 0.0, 0.0, 0.5, 0.0];
        for (got, want) in y.iter().zip(want) {
            assert!((got - want).abs() < 1e-6, "{y:?}");
        }
    }
}
