#!/usr/bin/env python3
"""transformers' side of `cargo xtask bench`: the same full-size LLaVA-NeXT shape with random
weights, the same square gradient image and the same seeded question ids, greedy, end of
sequence ignored. Prints one JSON object per batch size, with the fields of `xtask bench`.

The weights are made on the GPUs (no checkpoint on disk: llava-next-72b is 145 GB in bf16).
`--device-map auto` places them as `from_pretrained(device_map="auto")` does (accelerate's
balanced memory, no module class split), then `dispatch_model` adds the same hooks.

Usage (on the GPU machine, with torch, transformers and accelerate):
  python3 benches/transformers_llava.py --config benches/configs/llava-next-72b-hf \
      --device-map auto --max-new-tokens 128 --batch 1

Same weights for both engines (scripts/gpu/fidelity.sh): `--save-weights DIR` writes the random
model as a safetensors checkpoint and exits; `--weights DIR` loads it instead of making random
weights; `--compare-logits FILE` compares the prefill logits with the ones `xtask bench
--dump-logits FILE` wrote (cosine per position, relative error) before timing.
"""

import argparse
import json
import sys
import time

import numpy as np
import torch
from accelerate import dispatch_model, infer_auto_device_map, init_empty_weights
from accelerate.utils import get_balanced_memory, set_module_tensor_to_device
from transformers import (
    LlavaNextConfig,
    LlavaNextForConditionalGeneration,
    LlavaNextImageProcessor,
)
from transformers.image_processing_utils import select_best_resolution

DTYPES = {"bf16": torch.bfloat16, "f16": torch.float16, "f32": torch.float32}
MASK64 = (1 << 64) - 1


def gradient(side):
    """The image of `xtask bench`: R = x·255/side, G = y·255/side, B = (x+y)·127/side."""
    x = np.arange(side, dtype=np.int64)[None, :].repeat(side, 0)
    y = np.arange(side, dtype=np.int64)[:, None].repeat(side, 1)
    return np.stack([x * 255 // side, y * 255 // side, (x + y) * 127 // side], -1).astype(np.uint8)


def question_ids(seed, count, vocab):
    """The question ids of `xtask bench` (the same linear congruential stream)."""
    state = (seed * 6364136223846793005 + 1) & MASK64
    ids = []
    for _ in range(count):
        state = (state * 6364136223846793005 + 1442695040888963407) & MASK64
        ids.append((state >> 33) % (min(vocab, 30000) - 100) + 100)
    return ids


def image_features(height, width, pinpoints, tile, patch):
    """Feature rows of one image in transformers' convention (its processor's count)."""
    best_h, best_w = select_best_resolution([height, width], pinpoints)
    side = tile // patch
    cur_h, cur_w = side * (best_h // tile), side * (best_w // tile)
    if width / height > cur_w / cur_h:
        new_h = int(round(height * (cur_w / width), 7))
        cur_h -= 2 * ((cur_h - new_h) // 2)
    else:
        new_w = int(round(width * (cur_h / height), 7))
        cur_w -= 2 * ((cur_w - new_w) // 2)
    return cur_h * cur_w + cur_h + side * side


def build(config, dtype, device_map_arg, seed):
    """Random weights created on their devices; returns the model and its device map."""
    with init_empty_weights():
        try:
            model = LlavaNextForConditionalGeneration._from_config(
                config, attn_implementation="sdpa", dtype=dtype
            )
        except TypeError:  # transformers 4.x
            model = LlavaNextForConditionalGeneration._from_config(
                config, attn_implementation="sdpa", torch_dtype=dtype
            )
    if device_map_arg == "auto":
        no_split = model._no_split_modules
        memory = get_balanced_memory(model, dtype=dtype, no_split_module_classes=no_split)
        device_map = infer_auto_device_map(
            model, max_memory=memory, no_split_module_classes=no_split, dtype=dtype
        )
    else:
        device_map = {"": device_map_arg}
    generator = {}

    def device_of(name):
        best = ""
        for prefix in device_map:
            if (prefix == "" or name == prefix or name.startswith(prefix + ".")) and len(
                prefix
            ) >= len(best):
                best = prefix
        target = device_map[best]
        return f"cuda:{target}" if isinstance(target, int) else target

    for name, param in list(model.named_parameters()):
        device = device_of(name)
        gen = generator.setdefault(device, torch.Generator(device=device).manual_seed(seed))
        if param.dim() >= 2 or name.endswith("image_newline"):
            value = torch.empty(param.shape, dtype=dtype, device=device).normal_(
                0.0, 0.02, generator=gen
            )
        elif "norm" in name and name.endswith("weight"):
            value = torch.ones(param.shape, dtype=dtype, device=device)
        else:
            value = torch.zeros(param.shape, dtype=dtype, device=device)
        set_module_tensor_to_device(model, name, device, value=value)
    if device_map_arg == "auto":
        model = dispatch_model(model, device_map=device_map)
    else:
        model.to(device_map_arg)
    return model.eval(), device_map


def logits_of(model, ids, inputs, device, dtype):
    """transformers' prefill logits for the prompt, f32 [positions, vocab]."""
    with torch.inference_mode():
        extra = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in inputs.items()}
        return model(
            input_ids=torch.tensor([ids], device=device),
            attention_mask=torch.ones(1, len(ids), dtype=torch.long, device=device),
            **extra,
        ).logits[0].float()


def report(name, got, ref):
    """Cosine per position, relative error overall and per position, argmax agreement."""
    if got.shape != ref.shape:
        raise SystemExit(f"logits shapes differ: {tuple(got.shape)} vs {tuple(ref.shape)}")
    cos = torch.nn.functional.cosine_similarity(got, ref, dim=-1)
    per_pos = (got - ref).norm(dim=-1) / ref.norm(dim=-1)
    record = {
        "fidelity": f"prefill logits, {name}, same weights",
        "positions": ref.shape[0],
        "vocab": ref.shape[1],
        "cosine_min": cos.min().item(),
        "cosine_mean": cos.mean().item(),
        "rel_err": ((got - ref).norm() / ref.norm()).item(),
        "rel_err_max_position": per_pos.max().item(),
        "argmax_agree": (got.argmax(-1) == ref.argmax(-1)).float().mean().item(),
    }
    print(json.dumps(record), flush=True)


def set_attention(model, name):
    """Switch every attention module of the loaded model (tower and decoder) to `name`."""
    if hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation(name)
        return
    for config in (model.config, model.config.text_config, model.config.vision_config):
        config._attn_implementation = name


def noise_floor(model, ids, inputs, device, args, ref, ours):
    """transformers against itself: bf16 runs of the same weights that differ only in which
    (equally valid) kernels they use. Their spread is the least any other bf16 implementation
    can be expected to differ from transformers' default run; ours is compared with each too."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    dtype = DTYPES[args.dtype]
    variants = {}
    # The memory-efficient and cuDNN kernels take no grouped K/V (the decoder's 32/8 heads):
    # there the next backend listed runs.
    for name, backends in (
        ("sdpa math backend", [SDPBackend.MATH]),
        (
            "sdpa memory-efficient backend (math where it does not apply)",
            [SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH],
        ),
        (
            "sdpa cuDNN backend (flash where it does not apply)",
            [SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION],
        ),
    ):
        try:
            with sdpa_kernel(backends, set_priority=True):
                variants[name] = logits_of(model, ids, inputs, device, dtype)
        except RuntimeError as e:
            print(f"{name}: {e}", file=sys.stderr)
    try:
        set_attention(model, "eager")
        variants["eager attention"] = logits_of(model, ids, inputs, device, dtype)
    except (RuntimeError, ValueError) as e:
        print(f"eager attention: {e}", file=sys.stderr)
    finally:
        set_attention(model, "sdpa")
    matmul = torch.backends.cuda.matmul
    reduced = matmul.allow_bf16_reduced_precision_reduction
    matmul.allow_bf16_reduced_precision_reduction = not reduced
    try:
        variants[f"cuBLAS reduced-precision reductions {not reduced}"] = logits_of(
            model, ids, inputs, device, dtype
        )
    finally:
        matmul.allow_bf16_reduced_precision_reduction = reduced
    again = logits_of(model, ids, inputs, device, dtype)
    report(f"transformers {args.dtype} sdpa, second run vs first (determinism)", again, ref)
    for name, logits in variants.items():
        report(f"transformers {args.dtype} {name} vs transformers {args.dtype} sdpa", logits, ref)
        if ours is not None:
            report(f"ours {args.dtype} vs transformers {args.dtype} {name}", ours, logits)


def compare_logits(model, ids, inputs, device, args):
    """Our prefill logits against transformers' on the same weights and prompt; with
    --f32-reference also both against transformers in f32, with --noise-floor transformers'
    bf16 kernel variants against each other."""
    ref = logits_of(model, ids, inputs, device, DTYPES[args.dtype])
    ours = torch.from_numpy(np.fromfile(args.compare_logits, dtype="<f4"))
    ours = ours.reshape(-1, ref.shape[-1]).to(ref.device)
    report(f"ours {args.dtype} vs transformers {args.dtype}", ours, ref)
    if args.noise_floor:
        noise_floor(model, ids, inputs, device, args, ref, ours)
    if args.f32_reference:
        wide = LlavaNextForConditionalGeneration.from_pretrained(
            args.weights, dtype=torch.float32, device_map=str(device), attn_implementation="sdpa"
        ).eval()
        ref32 = logits_of(wide, ids, inputs, device, torch.float32)
        del wide
        torch.cuda.empty_cache()
        report(f"transformers {args.dtype} vs transformers f32", ref, ref32)
        report(f"ours {args.dtype} vs transformers f32", ours, ref32)


def sync():
    for i in range(torch.cuda.device_count()):
        torch.cuda.synchronize(i)


def gpus():
    return range(torch.cuda.device_count())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--device-map", default="cuda:0")
    parser.add_argument("--dtype", default="bf16", choices=DTYPES)
    parser.add_argument("--image-size", type=int, default=672)
    parser.add_argument("--prompt-tokens", type=int, default=30)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--batch", default="1")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save-weights", help="write the random weights here and exit")
    parser.add_argument("--weights", help="load this checkpoint instead of random weights")
    parser.add_argument("--compare-logits", help="our prefill logits (f32 [positions, vocab])")
    parser.add_argument(
        "--f32-reference",
        action="store_true",
        help="with --compare-logits: also load the weights in f32 and compare both engines' "
        "logits with that (the bf16 noise floor)",
    )
    parser.add_argument(
        "--noise-floor",
        action="store_true",
        help="with --compare-logits: also run transformers' bf16 with other attention kernels "
        "(sdpa math and memory-efficient backends, eager) and the other cuBLAS reduction mode, "
        "and compare each with its default run and with ours",
    )
    args = parser.parse_args()
    dtype = DTYPES[args.dtype]
    torch.manual_seed(args.seed)

    config = LlavaNextConfig.from_pretrained(args.config)
    start = time.perf_counter()
    if args.weights:
        model = LlavaNextForConditionalGeneration.from_pretrained(
            args.weights, dtype=dtype, device_map=args.device_map, attn_implementation="sdpa"
        ).eval()
        device_map = getattr(model, "hf_device_map", None) or {"": args.device_map}
    else:
        model, device_map = build(config, dtype, args.device_map, args.seed)
    sync()
    if args.save_weights:
        model.save_pretrained(args.save_weights, safe_serialization=True)
        print(f"weights saved to {args.save_weights}", file=sys.stderr)
        return
    load_s = time.perf_counter() - start
    placement = {}
    for prefix, device in device_map.items():
        placement.setdefault(str(device), []).append(prefix)
    print(
        "placement: "
        + "; ".join(f"{d}: {len(p)} modules ({p[0]} … {p[-1]})" for d, p in placement.items()),
        file=sys.stderr,
    )
    print(f"random weights ready in {load_s:.1f} s", file=sys.stderr)
    first_device = next(model.parameters()).device

    vision = config.vision_config
    text = config.text_config
    ids = question_ids(args.seed, args.prompt_tokens, text.vocab_size)
    inputs = {}
    if args.image_size > 0:
        processor = LlavaNextImageProcessor(
            image_grid_pinpoints=config.image_grid_pinpoints,
            size={"shortest_edge": vision.image_size},
            crop_size={"height": vision.image_size, "width": vision.image_size},
        )
        pixels = processor(images=[gradient(args.image_size)], return_tensors="pt")
        rows = image_features(
            args.image_size,
            args.image_size,
            config.image_grid_pinpoints,
            vision.image_size,
            vision.patch_size,
        )
        ids = [config.image_token_index] * rows + ids
        inputs["pixel_values"] = pixels["pixel_values"].to(first_device, dtype)
        inputs["image_sizes"] = pixels["image_sizes"].to(first_device)

    if args.compare_logits:
        compare_logits(model, ids, inputs, first_device, args)

    def run(batch, new_tokens):
        batch_inputs = {
            "input_ids": torch.tensor([ids] * batch, device=first_device),
            "attention_mask": torch.ones(batch, len(ids), dtype=torch.long, device=first_device),
        }
        for key, value in inputs.items():
            batch_inputs[key] = value.repeat(batch, *([1] * (value.dim() - 1)))
        sync()
        t = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(
                **batch_inputs,
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                do_sample=False,
                eos_token_id=None,
                pad_token_id=0,
            )
        sync()
        return time.perf_counter() - t, out.shape[1] - len(ids)

    for batch in [int(b) for b in args.batch.split(",")]:
        cold = None
        for i in range(args.warmup):
            total, _ = run(batch, args.max_new_tokens)
            cold = cold or total
            print(f"batch {batch}, warm-up {i}: {total:.2f} s", file=sys.stderr)
        for i in gpus():
            torch.cuda.reset_peak_memory_stats(i)
        ttft, _ = run(batch, 1)
        total, steps = run(batch, args.max_new_tokens)
        decode_s = total - ttft
        record = {
            "engine": f"transformers {__import__('transformers').__version__}, torch {torch.__version__}, sdpa",
            "config": args.config,
            "dtype": args.dtype,
            "device_map": args.device_map,
            "image_size": args.image_size,
            "prompt_tokens": args.prompt_tokens,
            "max_new_tokens": args.max_new_tokens,
            "load_s": load_s,
            "batch": batch,
            "prompt_len": len(ids),
            "ttft_ms": ttft * 1e3,
            "decode_tok_s": (steps - 1) / decode_s,
            "decode_ms_per_step": decode_s * 1e3 / (steps - 1),
            "new_tokens": steps,
            "cold_total_s": cold,
            "peak_allocated_gib": [
                torch.cuda.max_memory_allocated(i) / 2**30
                for i in gpus()
            ],
            "peak_reserved_gib": [
                torch.cuda.max_memory_reserved(i) / 2**30
                for i in gpus()
            ],
        }
        print(
            f"batch {batch}: prompt {len(ids)}, first token {ttft * 1e3:.1f} ms, "
            f"{steps} steps at {record['decode_tok_s']:.1f} tok/s per row",
            file=sys.stderr,
        )
        print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
