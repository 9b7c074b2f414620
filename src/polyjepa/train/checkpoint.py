"""Checkpoints as safetensors + JSON, written atomically and checksummed; loading never unpickles."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..errors import UserError, warn

FORMAT = "polyjepa-checkpoint/1"


def atomic_write_text(path: Path, text: str) -> None:
    """Write to a temporary file beside ``path``, fsync, then rename over it."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _flatten_optimizer(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    tensors, meta = {}, {"param_groups": state["param_groups"], "scalars": {}}
    for pid, entries in state["state"].items():
        for k, v in entries.items():
            if isinstance(v, torch.Tensor):
                tensors[f"{pid}.{k}"] = v.detach().contiguous().cpu()
            else:
                meta["scalars"][f"{pid}.{k}"] = v
    return tensors, meta


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict] = {}
    for key, v in list(tensors.items()) + list(meta["scalars"].items()):
        pid, k = key.split(".", 1)
        state.setdefault(int(pid), {})[k] = v
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(directory: Path, step: int, model_state: dict[str, torch.Tensor], optimizer_state: dict | None,
                    extra: dict, keep: int = 2) -> Path:
    """Write ``directory/step-XXXXXXX`` (model.safetensors, optimizer.safetensors, state.json) atomically.

    The folder is written under a temporary name and renamed when complete; ``latest.json`` is then
    replaced atomically, and all but the ``keep`` newest checkpoints are removed. ``state.json`` records
    the SHA-256 of each tensor file, which loading checks (a flipped bit inside a tensor is otherwise
    a valid file).
    """
    directory.mkdir(parents=True, exist_ok=True)
    name = f"step-{step:07d}"
    tmp = directory / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_file({k: v.detach().contiguous().cpu() for k, v in model_state.items()}, tmp / "model.safetensors")
    meta = {"format": FORMAT, "step": step, **extra}
    if optimizer_state is not None:
        tensors, meta["optimizer"] = _flatten_optimizer(optimizer_state)
        save_file(tensors, tmp / "optimizer.safetensors")
    meta["sha256"] = {p.name: file_sha256(p) for p in sorted(tmp.glob("*.safetensors"))}
    atomic_write_text(tmp / "state.json", json.dumps(meta, indent=1))
    final = directory / name
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    atomic_write_text(directory / "latest.json", json.dumps({"checkpoint": name, "step": step}))
    for old in sorted(directory.glob("step-*"))[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(directory: Path) -> Path | None:
    """The newest complete checkpoint folder under ``directory``, or None."""
    pointer = directory / "latest.json"
    if pointer.exists():
        try:
            name = json.loads(pointer.read_text())["checkpoint"]
        except (ValueError, KeyError):
            raise UserError(f"{pointer} is corrupt: delete it to fall back to the newest step-* folder") from None
        if (directory / name / "state.json").exists():
            return directory / name
    complete = sorted(p for p in directory.glob("step-*") if (p / "state.json").exists())
    return complete[-1] if complete else None


def load_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict | None, dict]:
    """(model state, optimizer state or None, metadata) of a checkpoint folder; clear errors if foreign or corrupt."""
    try:
        meta = json.loads((path / "state.json").read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"{path} is not a readable polyjepa checkpoint ({e}): pick another checkpoint or retrain") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise UserError(f"{path} is not a polyjepa checkpoint (format {found!r}, expected {FORMAT!r})")
    for name, digest in (meta.get("sha256") or {}).items():  # checkpoints written before checksums have none
        try:
            ok = file_sha256(path / name) == digest
        except OSError as e:
            raise UserError(f"checkpoint {path} is corrupt ({name}: {e}): delete it to fall back to an older one, "
                            f"or retrain") from None
        if not ok:
            raise UserError(f"checkpoint {path} is corrupt ({name} does not match its SHA-256 checksum in state.json): "
                            f"delete it to fall back to an older one, or retrain")
    try:
        model = load_file(path / "model.safetensors")
        optim = None
        if "optimizer" in meta and (path / "optimizer.safetensors").exists():
            optim = _unflatten_optimizer(load_file(path / "optimizer.safetensors"), meta["optimizer"])
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise UserError(f"checkpoint {path} is corrupt ({e}): delete it to fall back to an older one, or retrain") from None
    return model, optim, meta


def checkpoints_newest_first(directory: Path) -> list[Path]:
    """Complete checkpoint folders under ``directory``: the one ``latest.json`` names first, then by step."""
    complete = sorted((p for p in directory.glob("step-*") if (p / "state.json").exists()), reverse=True)
    try:
        first = latest_checkpoint(directory)
    except UserError:  # a corrupt latest.json: the step-* folders still say which is newest
        first = None
    return ([first] if first is not None else []) + [p for p in complete if p != first]


def load_latest_checkpoint(directory: Path) -> tuple[Path, dict[str, torch.Tensor], dict | None, dict] | None:
    """(path, model state, optimizer state, metadata) of the newest intact checkpoint, or None when there is none.

    A corrupt newer checkpoint (a failed checksum, a truncated file) is skipped with a warning naming it,
    so a run whose last write was damaged continues from the one before; when every checkpoint is
    corrupt the newest one's error is raised.
    """
    candidates = checkpoints_newest_first(directory)
    first_error = None
    for path in candidates:
        try:
            model, optim, meta = load_checkpoint(path)
        except UserError as e:
            first_error = first_error or e
            continue
        if first_error is not None:
            warn(f"{first_error} Using the older intact checkpoint {path} instead.")
        return path, model, optim, meta
    if first_error is not None:
        raise first_error
    return None


def load_model_state(module: torch.nn.Module, state: dict[str, torch.Tensor], where: Path) -> None:
    """Load weights strictly, turning a mismatch into a one-line error."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        detail = (f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}" if unexpected
                  else f"shape mismatch in {wrong[:3]}")
        raise UserError(f"weights in {where} do not fit this model ({detail}): the checkpoint comes from another "
                        f"recipe or model size; use the run's own config.yaml")
    module.load_state_dict(state)
