#!/usr/bin/env python3
"""Whether the demo model's image tokens tell which half of the image an object is in, read
with transformers: `probe_halves.py MODEL_DIR`.

Renders 1,500 scenes of 224x224 (a 2x2 anyres grid: the base tile, the image squashed to one
tile, then four full-scale tiles) with one target disc and up to two others, runs all five
tiles through the tower and the projector, and averages the projector's output over the
patches whose centre lies on the target disc: over the base tile's, over the four tiles',
and over all of them (what attention spread evenly over the object would read). A ridge
regression from each average to whether the disc is in the left half of the image (and, as a
control, whether it is in the left half of its own tile) is fitted on three quarters of the
scenes; the script prints the held-out accuracy (0.5 = chance). A tile sees itself alone, so
its tokens can know the place within the tile but not which tile they are.
"""
import argparse
import random

import numpy as np
import torch
from PIL import Image, ImageDraw
from transformers import LlavaNextForConditionalGeneration, LlavaNextImageProcessor


def accuracy(x: np.ndarray, label: np.ndarray, ridge: float) -> float:
    x = np.c_[x, np.ones(len(x))]
    y = np.where(label, 1.0, -1.0)
    idx = np.random.RandomState(0).permutation(len(x))
    fit, held = idx[: len(x) * 3 // 4], idx[len(x) * 3 // 4 :]
    gram = x[fit].T @ x[fit]
    ridge = ridge * np.trace(gram) / len(gram)
    w = np.linalg.solve(gram + ridge * np.eye(len(gram)), x[fit].T @ y[fit])
    return float(((x[held] @ w > 0) == (y[held] > 0)).mean())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--scenes", type=int, default=1500)
    ap.add_argument("--ridge", type=float, default=0.1, help="ridge, times the mean variance")
    a = ap.parse_args()
    model = LlavaNextForConditionalGeneration.from_pretrained(a.model).eval()
    processor = LlavaNextImageProcessor.from_pretrained(a.model)
    tile = processor.crop_size["height"]
    patch = model.config.vision_config.patch_size
    grid = tile // patch
    rng = random.Random(0)
    colours = [(220, 30, 30), (30, 160, 40), (30, 60, 220), (240, 220, 30)]
    feats: dict = {"base tile": [], "four tiles": [], "all tokens": []}
    left, left_in_tile = [], []
    for _ in range(a.scenes):
        image = Image.new("RGB", (2 * tile, 2 * tile), rng.choice([(255,) * 3, (128,) * 3]))
        draw = ImageDraw.Draw(image)
        palette = rng.sample(colours, 3)
        discs = []
        for k in range(rng.randint(1, 3)):
            r = rng.uniform(13, 26)
            x, y = rng.uniform(r + 3, 2 * tile - r - 3), rng.uniform(r + 3, 2 * tile - r - 3)
            # The target (the first disc) clear of the middle line, as `--mix places` asks.
            while k == 0 and abs(x - tile) < r:
                x = rng.uniform(r + 3, 2 * tile - r - 3)
            draw.ellipse([x - r, y - r, x + r, y + r], fill=palette[k])
            discs.append((x, y, r))
        x, y, r = discs[0]
        pixels = processor(images=image, return_tensors="pt")["pixel_values"][0]
        assert pixels.shape[0] == 5, pixels.shape
        with torch.no_grad():
            hidden = model.model.vision_tower(pixels, output_hidden_states=True).hidden_states
            out = model.model.multi_modal_projector(hidden[-2][:, 1:]).numpy()
        on_disc = lambda cx, cy: (cx - x) ** 2 + (cy - y) ** 2 <= r * r  # noqa: E731
        base, tiles = [], []
        for t in range(5):
            for p in range(grid * grid):
                i, j = divmod(p, grid)
                if t == 0:
                    cx, cy = (j + 0.5) * patch * 2, (i + 0.5) * patch * 2
                else:
                    ty, tx = divmod(t - 1, 2)
                    cx, cy = tx * tile + (j + 0.5) * patch, ty * tile + (i + 0.5) * patch
                if on_disc(cx, cy):
                    (base if t == 0 else tiles).append(out[t, p])
        if not base or not tiles:
            continue
        feats["base tile"].append(np.mean(base, 0))
        feats["four tiles"].append(np.mean(tiles, 0))
        feats["all tokens"].append(np.mean(base + tiles, 0))
        left.append(x < tile)
        left_in_tile.append((x % tile) < tile / 2)
    left, left_in_tile = np.array(left), np.array(left_in_tile)
    print(f"{len(left)} scenes, {a.model}: held-out accuracy of a linear read-out (0.5 = chance)")
    print(f"  {'averaged over':14} {'left half of image':>20} {'left half of its tile':>22}")
    for name, x in feats.items():
        x = np.array(x)
        print(f"  {name:14} {accuracy(x, left, a.ridge):20.3f} {accuracy(x, left_in_tile, a.ridge):22.3f}")


if __name__ == "__main__":
    main()
