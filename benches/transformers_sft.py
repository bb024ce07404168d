"""transformers + PEFT twin of `cargo xtask bench-sft`: LoRA (and full) SFT steps of transformers' LlavaNext
on one GPU, with the same work (scripts/gpu/bench_sft.sh runs both in one call).

Full-size config with random bf16 weights (benches/transformers_llava.py's `build`), one 640x480 image
(COCO's usual size) per sample, a 15-token question and a 15-token caption trained (labels -100 elsewhere),
pure bf16 like ms-swift's default, AdamW lr 1e-4 wd 0.1, LoRA r 8 alpha 32 dropout 0.05; full fine-tuning
with the vision tower frozen (ms-swift's freeze_vit).
Prints one JSON line per variant: seconds per step, samples/s, tokens/s, peak memory.
Usage (from the project root, so that benches/transformers_llava.py imports):
  python3 benches/transformers_sft.py benches/configs/llava-v1.6-mistral-7b-hf lora-qkv:gc:b1 lora-qkv:nogc:b1 lora-all:gc:b4 full:gc:b1   VARIANT = lora-qkv|lora-all|full + :gc|:nogc + :bN
"""
import json, sys, time
import numpy as np
import torch
sys.path.insert(0, "benches")
from transformers_llava import build, image_features, gradient  # noqa: E402
from transformers import LlavaNextConfig, LlavaNextImageProcessor
from PIL import Image

cfg_dir = sys.argv[1]
config = LlavaNextConfig.from_pretrained(cfg_dir)
S, P = config.vision_config.image_size, config.vision_config.patch_size
DEV = "cuda:0" if torch.cuda.is_available() else "cpu"
proc = LlavaNextImageProcessor(image_grid_pinpoints=config.image_grid_pinpoints,
                               size={"shortest_edge": S}, crop_size={"height": S, "width": S})
img = Image.fromarray(gradient(640)[:480, :640])
pix = proc(images=img, return_tensors="pt")
n_img = image_features(480, 640, config.image_grid_pinpoints, S, P)
tok = config.image_token_index


def batch(b, dev):
    q = list(range(1000, 1015)); r = list(range(2000, 2015))
    ids = [1] + q[:5] + [tok] * n_img + q[5:] + r + [2]
    lab = [-100] * (len(ids) - len(r) - 1) + r + [2]
    t = lambda x: torch.tensor([x] * b, device=dev)
    return dict(input_ids=t(ids), attention_mask=torch.ones(b, len(ids), dtype=torch.long, device=dev),
                labels=t(lab), pixel_values=pix["pixel_values"].repeat(b, 1, 1, 1, 1).to(dev, torch.bfloat16),
                image_sizes=pix["image_sizes"].repeat(b, 1).to(dev)), len(ids)


def sync():
    if DEV != "cpu":
        torch.cuda.synchronize()


def run(variant):
    kind, gc, bs = variant.split(":")
    b = int(bs[1:])
    if DEV != "cpu":
        torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats()
    model, _ = build(config, torch.bfloat16, DEV, 0)
    model.train()
    if kind.startswith("lora"):
        from peft import LoraConfig, get_peft_model
        tm = (r".*language_model.*\.(q_proj|k_proj|v_proj)" if kind == "lora-qkv"
              else r".*(language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)|multi_modal_projector\.linear_[12])")
        model = get_peft_model(model, LoraConfig(r=8, lora_alpha=32, lora_dropout=0.05, target_modules=tm))
    if kind == "full":
        # The vision tower stays frozen, as ms-swift's `freeze_vit` default and `bench-sft` keep it.
        for name, p in model.named_parameters():
            if "vision_tower" in name:
                p.requires_grad_(False)
    if gc == "gc":
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.1)
    inputs, seq = batch(b, DEV)
    times = []
    for step in range(8):
        sync(); t0 = time.perf_counter()
        loss = model(**inputs).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 0.5)
        opt.step(); opt.zero_grad(set_to_none=True)
        sync(); times.append(time.perf_counter() - t0)
    s = float(np.median(times[3:]))
    rec = {"anchor": "transformers+peft sft step", "variant": variant, "seq_len": seq, "image_tokens": n_img,
           "trainable_params": sum(p.numel() for p in params), "s_per_step": round(s, 4),
           "samples_per_s": round(b / s, 3), "tokens_per_s": round(b * seq / s, 1), "loss": float(loss),
           "peak_alloc_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if DEV != "cpu" else None,
           "peak_reserved_gib": round(torch.cuda.max_memory_reserved() / 2**30, 2) if DEV != "cpu" else None,
           "torch": torch.__version__}
    print(json.dumps(rec), flush=True)
    del model, opt, params, inputs, loss
    torch.cuda.empty_cache()


for v in sys.argv[2:]:
    try:
        run(v)
    except Exception as e:  # OOM and the like: report, go on
        print(json.dumps({"variant": v, "error": repr(e)[:300]}), flush=True)
        torch.cuda.empty_cache()
