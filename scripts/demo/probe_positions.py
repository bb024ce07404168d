#!/usr/bin/env python3
"""How much of where a patch is survives the demo model's vision tower, read with
transformers: `probe_positions.py MODEL_DIR [--set-positions NORM OUT_DIR]`.

Renders 120 scenes of 1-4 discs on plain backgrounds, runs the base tile (the whole image
squashed to one tile) through the tower, and fits a ridge regression from each patch's hidden
state to its (row, column) in the 8x8 grid, on three quarters of the patches; prints R² on the
rest for every layer's output and for the projector's (1 = the layer knows where each patch is,
0 = it does not). A model that must answer left/right/above/below or read a glyph from patches
needs it well above 0 at the feature layer (-2) and after the projector.

`--set-positions NORM OUT_DIR` first writes a copy of the checkpoint to OUT_DIR (configs
copied) with the tower's patch position rows replaced by a 2-D sine-cosine table of the grid
(as `xtask demo-model --position-init sincos` draws it) scaled to row norm NORM, the class row
kept, and probes that copy.
"""
import argparse
import random
import shutil
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from safetensors.numpy import load_file, save_file
from transformers import LlavaNextForConditionalGeneration, LlavaNextImageProcessor


def sincos_rows(grid: int, width: int, norm: float) -> np.ndarray:
    q = width // 4
    omega = 100.0 ** (-np.arange(q) / max(q - 1, 1))
    rows = np.zeros((grid * grid, width), np.float32)
    for r in range(grid):
        for c in range(grid):
            row = rows[r * grid + c]
            for half, coord in ((0, r), (1, c)):
                row[half * 2 * q : half * 2 * q + q] = np.sin(coord * omega)
                row[half * 2 * q + q : half * 2 * q + 2 * q] = np.cos(coord * omega)
            row *= norm / np.linalg.norm(row)
    return rows


def set_positions(src: Path, dst: Path, norm: float) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for f in src.glob("*.json"):
        shutil.copy(f, dst / f.name)
    tensors = load_file(src / "model.safetensors")
    key = next(k for k in tensors if "vision" in k and k.endswith("position_embedding.weight"))
    table = tensors[key].copy()
    grid = int(round((table.shape[0] - 1) ** 0.5))
    table[1:] = sincos_rows(grid, table.shape[1], norm)
    tensors[key] = table
    save_file(tensors, dst / "model.safetensors", metadata={"format": "pt"})


def r2(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    x = np.c_[x, np.ones(len(x))]
    idx = np.random.RandomState(0).permutation(len(x))
    fit, held = idx[: len(x) * 3 // 4], idx[len(x) * 3 // 4 :]
    w = np.linalg.solve(x[fit].T @ x[fit] + 1e-3 * np.eye(x.shape[1]), x[fit].T @ y[fit])
    err = ((x[held] @ w - y[held]) ** 2).sum(0)
    return 1 - err / ((y[held] - y[held].mean(0)) ** 2).sum(0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--set-positions", nargs=2, metavar=("NORM", "OUT_DIR"))
    a = ap.parse_args()
    model_dir = Path(a.model)
    if a.set_positions:
        model_dir = Path(a.set_positions[1])
        set_positions(Path(a.model), model_dir, float(a.set_positions[0]))
    model = LlavaNextForConditionalGeneration.from_pretrained(model_dir).eval()
    processor = LlavaNextImageProcessor.from_pretrained(model_dir)
    rng = random.Random(0)
    colours = [(220, 30, 30), (30, 160, 40), (30, 60, 220), (240, 220, 30)]
    layers: dict = {}
    for _ in range(120):
        image = Image.new("RGB", (224, 224), rng.choice([(255,) * 3, (128,) * 3, (0,) * 3]))
        draw = ImageDraw.Draw(image)
        for _ in range(rng.randint(1, 4)):
            r = rng.randint(13, 26)
            x, y = rng.uniform(r, 224 - r), rng.uniform(r, 224 - r)
            draw.ellipse([x - r, y - r, x + r, y + r], fill=rng.choice(colours))
        base = processor(images=image, return_tensors="pt")["pixel_values"][0][:1]
        with torch.no_grad():
            hidden = model.model.vision_tower(base, output_hidden_states=True).hidden_states
            for k, h in enumerate(hidden):
                layers.setdefault(f"layer {k}", []).append(h[0, 1:].numpy())
            projected = model.model.multi_modal_projector(hidden[-2][:, 1:])
            layers.setdefault("projector (of layer -2)", []).append(projected[0].numpy())
    tokens = layers["layer 0"][0].shape[0]
    grid = int(round(tokens**0.5))
    y = np.array([(t // grid, t % grid) for t in range(tokens)] * 120, dtype=float)
    print(f"R² of (row, column) from each patch's state, {model_dir}:")
    for name, states in layers.items():
        row, col = r2(np.concatenate(states), y)
        print(f"  {name:24} row {row:.3f}  column {col:.3f}")


if __name__ == "__main__":
    main()
