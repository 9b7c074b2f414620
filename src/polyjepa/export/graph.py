"""Export a trained encoder as a graph other programs run: ONNX, or a ``torch.export`` ExportedProgram."""
from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from .pretrained import PretrainedEncoder

FORMATS = {"onnx": ".onnx", "torch": ".pt2"}
GRAPH_FORMAT = "polyjepa-graph/1"
INPUT_NAME, OUTPUT_NAME = "x", "embedding"


def sidecar_path(out: str | os.PathLike) -> Path:
    """Where the JSON beside an exported graph goes: the graph's file name plus ``.json``."""
    out = Path(out)
    return out.with_name(out.name + ".json")


def export_encoder(source, out: str | os.PathLike, *, format: str = "onnx", opset: int | None = None) -> dict:
    """Write the encoder as a graph from (B, *input_shape) loader output to (B, F) embeddings.

    The graph is ``PretrainedEncoder.forward``: standardisation with the training statistics is inside
    it, so its input is the data loader's output (for images float pixels in [0, 1], channels first);
    the batch size is free. Beside it, ``<out>.json`` (e.g. ``encoder.onnx.json``) holds the encoder's
    config (recipe, input shape, statistics, the loader's fitted facts) and the graph's input/output
    names, so that another program can read data as the loader does.

    Args:
        source: a run directory, a folder written by ``save_pretrained``, or a ``PretrainedEncoder``.
        out: the file to write (``.onnx`` for onnx, ``.pt2`` for torch by convention).
        format: ``onnx`` (torch.onnx's torch.export-based exporter; needs ``pip install 'polyjepa[export]'``),
            ``torch`` (``torch.export.save`` of the ExportedProgram; load with ``torch.export.load``), or
            ``pretrained`` (``out`` is a folder: what ``save_pretrained`` writes, no graph).
    Returns {"path", "config", "format", "max_abs_diff"}: the largest difference between the exported graph
    (run with onnxruntime or the ExportedProgram) and the module on an example batch, relative to the
    embeddings' scale (None for ONNX when onnxruntime is absent).
    """
    if format not in FORMATS and format != "pretrained":
        raise UserError(f"unknown export format {format!r}: use one of {', '.join(FORMATS)}, pretrained")
    out = Path(out)
    if format == "pretrained":  # the save_pretrained folder, for sharing without Python
        saved = _encoder(source).save_pretrained(out)
        return {"path": str(saved), "config": str(saved / "config.json"), "format": format, "max_abs_diff": None}
    if out.suffix == ".json":
        raise UserError(f"--out {out} ends in .json, as the config written beside the graph does: "
                        f"use {out.with_suffix(FORMATS[format])}")
    if out.is_dir():
        raise UserError(f"--out {out} is a folder: name the file to write, e.g. {out / ('encoder' + FORMATS[format])}")
    if format == "onnx":
        _need("onnx", "onnxscript")
    enc = _encoder(source).eval()
    recipe = enc.recipe.get("name", "?")
    example = enc.example_input(3)
    batch = torch.export.Dim("batch", min=1)
    try:
        with torch.no_grad():
            program = torch.export.export(enc, (example,), dynamic_shapes={"x": {0: batch}}, strict=False)
    except Exception as e:  # data-dependent control flow and other graph breaks: torch's own error types
        raise UserError(f"the {recipe} encoder cannot be exported as a graph ({type(e).__name__}: "
                        f"{_first_line(e)}): use save_pretrained and polyjepa in Python instead") from None
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.tmp{out.suffix}")
    if format == "torch":
        torch.export.save(program, tmp)
    else:
        try:
            with _quiet_exporter():
                onnx_program = torch.onnx.export(program, (example,), dynamo=True, input_names=[INPUT_NAME],
                                                 output_names=[OUTPUT_NAME], opset_version=opset, verbose=False)
            onnx_program.save(str(tmp))
        except Exception as e:
            tmp.unlink(missing_ok=True)
            raise UserError(f"the {recipe} encoder cannot be converted to ONNX ({type(e).__name__}: "
                            f"{_first_line(e)}): try --format torch") from None
    tmp.replace(out)
    config = {**enc.config, "graph": {
        "format": GRAPH_FORMAT, "file": out.name, "kind": format,
        "input": {"name": INPUT_NAME, "shape": ["batch", *enc.input_shape], "dtype": "float32",
                  "is": "the data loader's output before standardisation (the graph standardises)"},
        "output": {"name": OUTPUT_NAME, "shape": ["batch", enc.dim], "dtype": "float32"}}}
    from ..train.checkpoint import atomic_write_text

    atomic_write_text(sidecar_path(out), json.dumps(config, indent=1))
    return {"path": str(out), "config": str(sidecar_path(out)), "format": format,
            "max_abs_diff": _check(enc, out, format)}


def run_onnx(path: str | os.PathLike, x: np.ndarray) -> np.ndarray:
    """Run an exported ONNX encoder with onnxruntime on (B, *input_shape) float32 loader output."""
    _need("onnxruntime")
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: np.ascontiguousarray(x, dtype=np.float32)})[0]


def _check(enc: PretrainedEncoder, out: Path, format: str) -> float | None:
    """Largest |graph - module| on an example batch, over max |module|."""
    x = enc.example_input(5, seed=1)  # other values and another batch size than the traced example
    with torch.no_grad():
        want = enc(x).numpy()
    if format == "torch":
        got = torch.export.load(out).module()(x).detach().numpy()
    else:
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            return None
        got = run_onnx(out, x.numpy())
    return float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-12))


def _encoder(source) -> PretrainedEncoder:
    if isinstance(source, PretrainedEncoder):  # graphs are written from a CPU copy (and checked on CPU)
        on_cpu = all(t.device.type == "cpu" for t in list(source.parameters()) + list(source.buffers()))
        return source if on_cpu else copy.deepcopy(source).cpu()
    path = Path(source)
    if (path / "run.json").exists():
        return PretrainedEncoder.from_run(path)
    if (path / "config.json").exists():
        return PretrainedEncoder.from_pretrained(path)
    raise UserError(f"{path} is neither a run directory (run.json) nor a saved encoder (config.json): pass the "
                    f"--out folder of 'polyjepa pretrain' or a folder written by save_pretrained")


@contextlib.contextmanager
def _quiet_exporter():
    """Without the exporter's notes on optional operator sets (torchvision's) and deprecations of its internals."""
    logs = [logging.getLogger(name) for name in ("torch.onnx._internal.exporter._registration",
                                                 "onnx_ir._convenience")]
    levels = [log.level for log in logs]
    for log in logs:
        log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        for log, level in zip(logs, levels):
            log.setLevel(level)


def _need(*modules: str) -> None:
    from importlib.util import find_spec

    missing = [m for m in modules if find_spec(m) is None]
    if missing:
        raise UserError(f"ONNX export needs {', '.join(missing)}: pip install 'polyjepa[export]'")


def _first_line(e: Exception) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return (lines[0] if lines else type(e).__name__)[:200]
