"""CPU fidelity against transformers in bf16 on a tiny LLaVA fixture (the GPU counterpart on
full-size weights is scripts/gpu/fidelity.sh). Writes the fixture prompt's text ids, runs our
example `fixture_logits` (f32 and bf16: logits, merged input embeddings, pixels), runs
transformers on the same pixels and ids in f32 and bf16, and prints cosine / relative error:
ours f32 against transformers f32 (parity), transformers bf16 against its f32 (the bf16 noise),
ours bf16 against both, the merged embeddings (tower and projector) and the decoder alone
(transformers' decoder fed our embeddings).

    python benches/fidelity_cpu.py [FIXTURE] [OUT_DIR]    # default clip-mistral /tmp/fid
Needs torch and transformers (CPU is enough).
"""
import os
import subprocess
import sys

import numpy as np
import torch
from safetensors import safe_open
from transformers import LlavaNextForConditionalGeneration

name = sys.argv[1] if len(sys.argv) > 1 else "clip-mistral"
out = sys.argv[2] if len(sys.argv) > 2 else "/tmp/fid"
os.makedirs(out, exist_ok=True)
root = os.path.join(os.path.dirname(__file__), "..")
d = os.path.join(root, "fixtures/llava", name, "hf")
case = "one.coco_640x480"
ref = safe_open(os.path.join(d, "reference.safetensors"), "pt")
ids = ref.get_tensor(f"{case}.input_ids.0")
wh = ref.get_tensor(f"{case}.image_sizes_wh")[0].tolist()
cfg = LlavaNextForConditionalGeneration.config_class.from_pretrained(d)
image_token = cfg.image_token_index

# The text ids with the image's run of tokens collapsed to one -1 (our prompt's image slot).
text, previous = [], False
for i in ids.tolist():
    if i == image_token:
        if not previous:
            text.append(-1)
        previous = True
    else:
        text.append(i)
        previous = False
with open(os.path.join(out, "ids.txt"), "w") as f:
    f.write(" ".join(map(str, text)))
subprocess.run(["cargo", "run", "--release", "-q", "-p", "llava", "--example", "fixture_logits",
                "--", name, out], cwd=root, check=True)


def load(tag, width):
    return torch.from_numpy(np.fromfile(os.path.join(out, tag), dtype=np.float32).reshape(-1, width))


px = np.fromfile(os.path.join(out, "pixels.f32"), dtype=np.float32)
tile = cfg.vision_config.image_size
pixels = torch.from_numpy(px.reshape(1, -1, 3, tile, tile))
sizes = torch.tensor([[wh[1], wh[0]]])
vocab, hidden = cfg.text_config.vocab_size, cfg.text_config.hidden_size


def report(a, b, what):
    cos = torch.nn.functional.cosine_similarity(a, b, dim=-1)
    rel = ((a - b).norm() / b.norm()).item()
    agree = (a.argmax(-1) == b.argmax(-1)).float().mean().item() if a.shape[-1] == vocab else float("nan")
    print(f"{what:44s} cosine min {cos.min().item():.5f} mean {cos.mean().item():.5f} "
          f"rel {rel:.4f} argmax {agree:.3f}")


results = {}
for dtype in (torch.float32, torch.bfloat16):
    model = LlavaNextForConditionalGeneration.from_pretrained(d, dtype=dtype, attn_implementation="sdpa").eval()
    seen = {}

    def keep(module, args, kwargs):
        seen.setdefault("embeds", kwargs.get("inputs_embeds"))

    hook = model.model.language_model.register_forward_pre_hook(keep, with_kwargs=True)
    with torch.no_grad():
        logits = model(input_ids=ids[None], pixel_values=pixels.to(dtype), image_sizes=sizes).logits[0].float()
        hook.remove()
        results[dtype] = (logits, seen["embeds"][0].float())
        if dtype == torch.bfloat16:
            ours_embeds = load("embeds_bf16.f32", hidden)
            decoder = model(inputs_embeds=ours_embeds[None].to(dtype)).logits[0].float()

report(load("ours_f32.f32", vocab), results[torch.float32][0], "logits: ours f32 vs transformers f32")
report(results[torch.bfloat16][0], results[torch.float32][0], "logits: transformers bf16 vs its f32")
report(load("ours_bf16.f32", vocab), results[torch.float32][0], "logits: ours bf16 vs transformers f32")
report(load("ours_bf16.f32", vocab), results[torch.bfloat16][0], "logits: ours bf16 vs transformers bf16")
report(load("embeds_bf16.f32", hidden), results[torch.bfloat16][1], "embeddings: ours bf16 vs transformers bf16")
report(load("ours_bf16.f32", vocab), decoder, "decoder alone: ours bf16 vs transformers bf16")
