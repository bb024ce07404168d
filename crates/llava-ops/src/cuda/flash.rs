//! Prefill attention through cubek's flash-attention forward kernel, launched with a named
//! blueprint strategy (burn's attention op autotunes among them, which on a fresh machine did
//! not finish within minutes: `../shared/notes/burn-0.22.md`). A probe only: `xtask bench-ops
//! --prefill` times it against the materialised scores. Its tensor-core routine takes f16 only
//! ("query global and tile types must be the same" for bf16), and on an H200 it took 4.4–4.9
//! ms for 32 heads × 3072 causal positions against 3.5 ms for our cuBLAS products and
//! probabilities kernel, so the model does not use it.

use burn::tensor::Tensor;
use burn_backend::ops::AttentionModuleOptions;
use burn_cubecl::CubeBackend;
use burn_cubecl::kernel::attention::flash_attention;
use cubek::attention::forward::launch::{BlueprintStrategy, Strategy};
use cubek::attention::forward::routines::blackbox_accelerated::BlackboxAcceleratedStrategy;

use super::on_cuda;

/// Causal attention of `q`, `k`, `v` `[b, heads, s, d]` (as many key/value heads as query
/// heads) through the flash kernel: `planes` planes a cube, each `seq_q` tiles of queries and
/// `seq_kv` tiles of keys; `planes = 0` takes the unit (no tensor core) routine. `None` off
/// CUDA; `Some(Err)` when the kernel declines the problem.
pub fn flash_attention_causal(
    q: &Tensor<4>,
    k: &Tensor<4>,
    v: &Tensor<4>,
    (planes, seq_q, seq_kv): (u8, u8, u8),
) -> Option<Result<Tensor<4>, String>> {
    let (qc, kc, vc) = (on_cuda(q)?, on_cuda(k)?, on_cuda(v)?);
    let strategy = if planes == 0 {
        Strategy::Unit(BlueprintStrategy::Inferred(()))
    } else {
        Strategy::BlackboxAccelerated(BlueprintStrategy::Inferred(BlackboxAcceleratedStrategy {
            num_planes: planes,
            seq_q,
            seq_kv,
        }))
    };
    let options = AttentionModuleOptions {
        scale: None,
        softcap: None,
        is_causal: true,
    };
    Some(
        flash_attention(qc, kc, vc, None, None, options, strategy)
            .map(Tensor::from_primitive::<CubeBackend>)
            .map_err(|e| format!("{e:?}")),
    )
}
