#!/usr/bin/env python3
"""PyTorch's SDPA on the attention shapes `xtask bench-ops` times, for issue 5's "decode
attention ≥ 0.7× SDPA" and the prompt attention figure, in the same call as ours
(scripts/gpu/attention_vs_sdpa.sh). Prints one JSON object per shape, with `op`, `us` and the
shape fields `bench-ops` prints.

Usage (on the GPU machine, with torch):
  python3 benches/sdpa_attention.py --heads 32,8,128 --context 3072 --prefill 2958
"""

import argparse
import json

import torch
import torch.nn.functional as F


def timed(fn, iters):
    """Mean µs per call over `iters` calls after three warm-up calls (CUDA events)."""
    for _ in range(3):
        fn()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    for _ in range(iters):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) * 1e3 / iters


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--heads", default="32,8,128", help="heads,kv_heads,head_dim")
    parser.add_argument("--context", type=int, default=3072, help="cached positions (decode)")
    parser.add_argument("--prefill", type=int, default=2958, help="prompt positions (causal)")
    parser.add_argument("--iters", type=int, default=50)
    args = parser.parse_args()
    heads, kv, d = (int(x) for x in args.heads.split(","))
    dev, dt = "cuda", torch.bfloat16
    torch.manual_seed(0)

    t = args.context
    q = torch.randn(1, heads, 1, d, device=dev, dtype=dt)
    k = torch.randn(1, kv, t, d, device=dev, dtype=dt)
    v = torch.randn(1, kv, t, d, device=dev, dtype=dt)
    kv_bytes = 2 * kv * t * d * 2
    us = timed(lambda: F.scaled_dot_product_attention(q, k, v, enable_gqa=True), args.iters)
    print(json.dumps({"op": "decode_attention_sdpa", "heads": heads, "kv_heads": kv,
                      "head_dim": d, "context": t, "dtype": "bf16", "us": us,
                      "kv_gb_s": kv_bytes / (us * 1e-6) / 1e9}))
    # transformers' own decode path repeats K/V to every query head before SDPA.
    rep = heads // kv
    us = timed(lambda: F.scaled_dot_product_attention(
        q, k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)), args.iters)
    print(json.dumps({"op": "decode_attention_sdpa_repeat_kv", "heads": heads, "kv_heads": kv,
                      "head_dim": d, "context": t, "dtype": "bf16", "us": us}))

    s = args.prefill
    if s > 0:
        q = torch.randn(1, heads, s, d, device=dev, dtype=dt)
        k = torch.randn(1, kv, s, d, device=dev, dtype=dt)
        v = torch.randn(1, kv, s, d, device=dev, dtype=dt)
        us = timed(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                                          enable_gqa=True), 10)
        flops = 4 * heads * s * s * d / 2
        print(json.dumps({"op": "prefill_attention_sdpa", "heads": heads, "kv_heads": kv,
                          "head_dim": d, "seq": s, "dtype": "bf16", "us": us,
                          "tflops": flops / (us * 1e-6) / 1e12}))


if __name__ == "__main__":
    main()
