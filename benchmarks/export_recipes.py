"""Which bundled recipes' encoders save, reload and export, and how closely the graphs match torch.

For every bundled recipe: a tiny run (a few steps, small data: the recipe's own where it installs with
the project or sits in ../shared/data, else a small synthetic set of the same kind), then
  - save_pretrained -> from_pretrained: are the embeddings identical to `polyjepa embed`'s?
  - polyjepa export --format onnx, run with onnxruntime, and --format torch (torch.export):
    max |graph - torch| / max |torch| on the loaded data (up to 64 samples).
The numbers are about export fidelity, not representation quality (the runs are a few steps long).

    .venv/bin/python benchmarks/export_recipes.py [RECIPE ...]
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import polyjepa as pj
from polyjepa.errors import UserError
from polyjepa.export.graph import export_encoder, run_onnx
from polyjepa.results import save_result

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
JEPA = ["encoder.size=micro", "encoder.depth=2", "predictor.dim=32", "predictor.depth=1", "predictor.heads=2"]
MV = ["encoder.size=micro", "encoder.depth=2"]
RUN = ["train.batch_size=32", "train.max_steps=3", "train.monitor_every=0", "eval.monitor_samples=32",
       "eval.baselines=false"]


def bars(root: Path) -> str:
    """150 16x16 images of three classes of vertical bars."""
    rng = np.random.default_rng(0)
    y = np.arange(150) % 3
    x = rng.normal(0, 0.1, (150, 16, 16)).astype(np.float32)
    for i, c in enumerate(y):
        x[i, :, 4 * c:4 * c + 4] += 1.0
    np.savez(root / "bars.npz", images=x, labels=y)
    return str(root / "bars.npz")


def series(root: Path) -> str:
    """96 two-channel series of 64 steps, every fourth shorter (NaN-padded at the end)."""
    rng = np.random.default_rng(0)
    y = np.arange(96) % 3
    x = rng.normal(size=(96, 2, 64)).astype(np.float32) + y[:, None, None] * np.sin(np.linspace(0, 6, 64))
    for i in range(0, 96, 4):
        x[i, :, 40 + i % 20:] = np.nan
    np.savez(root / "series.npz", x=x.astype(np.float32), y=y)
    return str(root / "series.npz")


def tones(root: Path) -> str:
    """60 clips of one of three pitches at 8 kHz, in the FSDD .npz layout."""
    rng = np.random.default_rng(0)
    y = np.arange(60) % 3
    clips = [0.3 * np.sin(2 * np.pi * (300 + 600 * c) * np.arange(rng.integers(1600, 7200)) / 8000) for c in y]
    audio = np.concatenate([(c * 32767).astype(np.int16) for c in clips])
    lengths = np.array([len(c) for c in clips])
    np.savez(root / "tones.npz", audio=audio, offsets=np.concatenate([[0], np.cumsum(lengths)[:-1]]),
             lengths=lengths, sample_rate=8000, digit=y)
    return str(root / "tones.npz")


def shapes(root: Path) -> str:
    """72 clouds of 100 points: spheres, cubes, cylinders."""
    rng = np.random.default_rng(0)
    out = []
    for i in range(72):
        p = rng.normal(size=(100, 3))
        if i % 3 == 0:
            p /= np.linalg.norm(p, axis=1, keepdims=True)
        elif i % 3 == 1:
            p = np.clip(p, -1, 1)
        else:
            p[:, :2] /= np.linalg.norm(p[:, :2], axis=1, keepdims=True)
        out.append(p)
    np.savez(root / "shapes.npz", points=np.stack(out), labels=np.arange(72) % 3)
    return str(root / "shapes.npz")


POINTS = ["data.points=64", "tokenizer.n_groups=8", "tokenizer.group_size=8", "tokenizer.widths=[16,16,32]",
          "encoder.dim=32", "encoder.depth=1", "encoder.heads=2", "predictor.dim=16", "predictor.depth=1",
          "predictor.heads=2", "masker.n_targets=2"]
VIDEO = ["encoder.size=micro", "encoder.dim=32", "encoder.depth=1", "encoder.heads=2", "predictor.dim=16",
         "predictor.depth=1", "predictor.heads=2", "tokenizer.patch_size=8", "data.frame_size=16",
         "data.digit_size=8", "data.n_train=96", "data.n_test=48"]
AUDIO = ["encoder.depth=2", "predictor.dim=32", "predictor.depth=1", "predictor.heads=2", "data.n_mels=16",
         "data.frames=32"]
SERIES_CONV = ["encoder.depth=2", "encoder.hidden=8", "encoder.dim=16"]

# recipe -> (modality, data maker or source (None: the recipe's own), overrides)
PLAN = {
    "ijepa-digits": ("images", None, JEPA),
    "ijepa-mnist": ("images", bars, JEPA + ["tokenizer.patch_size=4", "data.test_size=30"]),
    "cjepa-mnist": ("images", bars, JEPA + ["tokenizer.patch_size=4", "data.test_size=30"]),
    "vicreg-mnist": ("images", bars, MV + ["data.test_size=30"]),
    "simclr-mnist": ("images", bars, MV + ["data.test_size=30"]),
    "barlow-mnist": ("images", bars, MV + ["data.test_size=30"]),
    "tico-mnist": ("images", bars, MV + ["data.test_size=30"]),
    "intl-mnist": ("images", bars, MV + ["data.test_size=30"]),
    "dino-mnist": ("images", bars, MV + ["data.test_size=30"]),
    "lejepa-mnist": ("images", bars, MV + ["data.test_size=30"]),
    "tsjepa": ("series", series, ["encoder.depth=1", "predictor.depth=1", "predictor.dim=32", "predictor.heads=2"]),
    "tsjepa-conv": ("series", series, SERIES_CONV + ["predictor.depth=1", "predictor.dim=32", "predictor.heads=2"]),
    "tsvicreg": ("series", series, SERIES_CONV),
    "ecgjepa": ("ECG", str(SHARED / "mitbih" / "100"), ["encoder.depth=1", "predictor.depth=1"]),
    "eegjepa": ("EEG", str(SHARED / "eegmmidb_S001"), ["encoder.depth=1", "predictor.depth=1"]),
    "tjepa": ("tables", None, ["encoder.dim=16", "encoder.depth=1"]),
    "ajepa": ("audio", tones, AUDIO),
    "ajepa-stem": ("audio", tones, AUDIO),
    "pointjepa": ("points", shapes, POINTS),
    "jepa3d": ("points", shapes, POINTS),
    "vjepa-moving-digits": ("video", None, VIDEO),
    "vjvcr-moving-digits": ("video", None, VIDEO),
}


def rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-12))


def one(recipe: str, modality: str, data, overrides: list[str], root: Path) -> list:
    source = data(root) if callable(data) else data
    if source is not None and source.startswith(str(SHARED)) and not Path(source).parent.exists():
        return [recipe, modality, "-", "-", "no data", "-", "-", "-"]
    run = root / recipe
    pj.pretrain(recipe, data=source, out=str(run), overrides=overrides + RUN, progress=False, echo=lambda *a: None)
    enc = pj.from_pretrained(pj.save_pretrained(run, root / f"{recipe}-saved"))
    probe = source if source is not None else str(pj.load_recipe(recipe).data.source)
    want = enc.embed(probe)
    same = "yes" if np.array_equal(want, pj.embed_run(str(run), probe)) else "NO"
    x = enc.load(probe)[:64]
    cells = []
    for fmt, ext in (("onnx", "onnx"), ("torch", "pt2")):
        t = time.time()
        try:
            export_encoder(root / f"{recipe}-saved", root / f"{recipe}.{ext}", format=fmt)
        except UserError as e:
            cells += [f"cannot: {str(e)[:80]}", "-"]
            continue
        seconds = time.time() - t
        if fmt == "onnx":
            got = run_onnx(root / f"{recipe}.onnx", x)
        else:
            got = torch.export.load(root / f"{recipe}.pt2").module()(torch.from_numpy(x)).detach().numpy()
        cells += [f"{rel(got, want[:len(x)]):.1e}", round(seconds, 1)]
    return [recipe, modality, str(tuple(enc.input_shape)), enc.dim, same, cells[0], cells[2], cells[1]]


def main(names: list[str]) -> None:
    torch.set_num_threads(1)
    t0 = time.time()
    rows = []
    with tempfile.TemporaryDirectory(prefix="polyjepa-export-") as tmp:
        for recipe, (modality, data, over) in PLAN.items():
            if names and recipe not in names:
                continue
            rows.append(one(recipe, modality, data, list(over), Path(tmp)))
            print("| " + " | ".join(str(c) for c in rows[-1]) + " |", flush=True)
    columns = ["recipe", "modality", "input shape", "width F", "saved = embed", "ONNX vs torch",
               "torch.export vs torch", "ONNX export s"]
    print("\n| " + " | ".join(columns) + " |\n|" + "---|" * len(columns))
    for r in rows:
        print("| " + " | ".join(str(c) for c in r) + " |")
    if not names:
        save_result("export-recipes", columns=columns, rows=rows, seconds=time.time() - t0,
                    title="Save/load and graph export of every bundled recipe's encoder (tiny runs)",
                    notes=["saved = embed: from_pretrained(save_pretrained(run)).embed(data) equals polyjepa embed "
                           "bit for bit", "ONNX / torch.export vs torch: max |graph - torch| / max |torch| on up to "
                           "64 loaded samples (onnxruntime, CPU)"])


if __name__ == "__main__":
    main(sys.argv[1:])
