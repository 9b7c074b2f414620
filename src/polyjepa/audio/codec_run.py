"""Train, evaluate, save and use the JEPA audio codec: ``polyjepa pretrain codec-fsdd`` and ``polyjepa codec``.

A codec run directory holds ``config.yaml``, ``codec.safetensors`` (weights), ``codec.json`` (what the
weights need: mel settings, normalisation, levels, stride, sample rate), ``metrics.csv``, ``summary.json``
and ``report.md``. Tokens files are .npz (no pickle) with ``tokens`` (T',) and the facts to decode them.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from ..train.schedules import set_lr, warmup_cosine_factor
from ..train.stages import StageCheckpoints, generator_state, open_stage_run, set_generator_state
from .codec import JEPACodec

MEL_KEYS = ("n_mels", "win_ms", "hop_ms", "n_fft", "f_min", "f_max", "window")
TOKENS_FORMAT = "polyjepa-audio-tokens/1"


@dataclass
class DecoderTraining:
    """Stage 2 of the codec (the recipe's ``decoder_training``): ``epochs`` of reconstruction at peak ``lr``."""

    epochs: int = 15
    lr: float = 2e-3

    def __post_init__(self):
        if self.epochs < 1 or not self.lr > 0:
            raise ValueError(f"decoder_training needs epochs >= 1 and lr > 0, got {self.epochs}, {self.lr}")


def _loop(params, loss_fn, x, valid, *, epochs, batch_size, lr, seed, log, stage, after_step=None,
          ckpts: StageCheckpoints | None = None, modules: dict | None = None) -> tuple[dict, list[dict]]:
    """Minibatch AdamW with warm-up + cosine over ``epochs`` of (x, valid); returns the last logged row and
    every row logged in the stage. With ``ckpts`` the stage ``stage`` of ``modules`` is checkpointed and a
    stopped run continues from its checkpoint (the epoch's order drawn again from its saved generator state)."""
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    g = torch.Generator().manual_seed(seed)
    n = len(x)
    per_epoch = max(1, n // batch_size)
    total = epochs * per_epoch
    pos = (ckpts or StageCheckpoints(None)).begin(stage, modules or {}, opt, generators={"data": g},
                                                  state={"rows": []})
    step, rows = pos.step, list(pos.state["rows"])
    order, epoch_state = None, pos.state.get("epoch_generator")
    if step % per_epoch:                           # resumed inside an epoch: its order again
        now = generator_state(g)
        set_generator_state(g, epoch_state)
        order = torch.randperm(n, generator=g)
        set_generator_state(g, now)
    while step < total:
        if step % per_epoch == 0:
            epoch_state = generator_state(g)
            order = torch.randperm(n, generator=g)
        b = step % per_epoch
        idx = order[b * batch_size:(b + 1) * batch_size]
        set_lr(opt, lr * warmup_cosine_factor(step, total, int(0.05 * total)))
        out = loss_fn(x[idx], valid[idx], g)
        if not torch.isfinite(out["loss"]):
            raise UserError(f"the codec's {stage} loss became {float(out['loss'])} at step {step}: lower its lr")
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if after_step is not None:
            after_step(step, total)
        step += 1
        if step % 20 == 0 or step == total:
            rows.append({"stage": stage, "step": step, **{k: float(v.detach()) for k, v in out.items()}})
            log(rows[-1])
        pos.advance(rows=rows, epoch_generator=epoch_state)
    pos.finish(rows=rows)
    return (rows[-1] if rows else {}), rows


def train_codec(codec: JEPACodec, x: torch.Tensor, valid: torch.Tensor, *, jepa_epochs: int, decoder_epochs: int,
                batch_size: int = 32, lr: float = 1e-3, decoder_lr: float = 2e-3, seed: int = 0, log=lambda row: None,
                ckpts: StageCheckpoints | None = None, history: list | None = None) -> dict:
    """Stage 1 (JEPA, ``jepa_epochs``; 0 leaves the encoder at its random initialisation), then stage 2
    (encoder frozen, FSQ + decoder trained for reconstruction). x (n, n_mels, T) normalised log-mels, valid (n, T).

    Returns each stage's last logged row; ``log`` sees each row as it is logged, ``history`` (a list) receives
    every row of the run, those logged before a resume included. With ``ckpts`` both stages are checkpointed
    (stages ``jepa`` and ``decoder`` of the module ``codec``) and a stopped run continues where it stopped."""
    if x.shape[-1] % codec.stride:
        raise UserError(f"data.frames ({x.shape[-1]}) must be a multiple of method.stride ({codec.stride})")
    ckpts = ckpts or StageCheckpoints(None)
    modules = {"codec": codec}
    history = [] if history is None else history
    codec.train()
    rows = {}
    for stage, epochs in (("jepa", jepa_epochs), ("decoder", decoder_epochs)):
        if stage == "decoder":
            codec.encoder.requires_grad_(False)
        if stage == "jepa" and epochs <= 0:
            continue
        done = ckpts.skip(stage, modules)
        if done is not None:
            stage_rows = done["rows"]
        elif stage == "jepa":
            _, stage_rows = _loop(codec.jepa_parameters(), codec.jepa_loss, x, valid, epochs=epochs,
                                  batch_size=batch_size, lr=lr, seed=seed, log=log, stage=stage,
                                  after_step=codec.update_target, ckpts=ckpts, modules=modules)
        else:
            _, stage_rows = _loop(codec.decoder_parameters(), lambda xb, vb, g: codec.recon_loss(xb, vb), x, valid,
                                  epochs=epochs, batch_size=batch_size, lr=decoder_lr, seed=seed + 1, log=log,
                                  stage=stage, ckpts=ckpts, modules=modules)
        rows[stage] = stage_rows[-1] if stage_rows else {}
        history.extend(stage_rows)
    codec.eval()
    return rows


def clips_from(loaded_x: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """The audio loader's (n, 1, n_mels, T) -> (x (n, n_mels, T), valid (n, T): frames that are not padding)."""
    from .augment import padding_frames

    x = torch.from_numpy(np.ascontiguousarray(loaded_x[:, 0])).float()
    return x, ~padding_frames(x)


@torch.no_grad()
def evaluate_codec(codec: JEPACodec, meta: dict, train: tuple, test: tuple, *, griffin_lim_iters: int = 32,
                   seed: int = 0) -> dict:
    """Reconstruction and downstream quality on the test clips.

    ``train``/``test`` are (x (n, n_mels, T) normalised log-mels, valid (n, T), digit labels (n,)). Returns
    mel distance (mean |difference| of log-mel energies in dB over real frames) of the decoded mels and
    of the decoded waveforms re-analysed, and the accuracy of a digit classifier (logistic regression
    on MFCC summary statistics, fitted on the original training clips) on the original test clips,
    their decoded mels, their decoded waveforms and (for reference, no codec) Griffin-Lim of the originals.
    """
    from ..eval.probes import linear_probe
    from .mfcc import mfcc_summary

    (xtr, vtr, ytr), (xte, vte, yte) = train, test
    rec = codec.reconstruct(xte)
    std = float(meta["std"])
    to_db = 10.0 / math.log(10.0)

    def mel_db(a, b, valid):
        w = valid[:, None].to(a.dtype)
        return float(((a - b).abs() * w).sum() / (w.sum() * a.shape[1])) * std * to_db

    wave_rec = _resynthesised(rec, vte, meta, griffin_lim_iters, seed)
    wave_orig = _resynthesised(xte, vte, meta, griffin_lim_iters, seed)
    feats = lambda x, v: mfcc_summary(x.numpy(), valid=v.numpy())  # noqa: E731
    f_train = feats(xtr, vtr)

    def acc(x):
        return linear_probe(f_train, ytr, feats(x, vte), yte, seed=seed)["accuracy"]

    return {"mel_db": mel_db(rec, xte, vte), "mel_db_waveform": mel_db(wave_rec, xte, vte),
            "mel_db_griffin_lim_only": mel_db(wave_orig, xte, vte),
            "accuracy_original": acc(xte), "accuracy_decoded_mel": acc(rec), "accuracy_decoded_waveform": acc(wave_rec),
            "accuracy_griffin_lim_only": acc(wave_orig)}


def _resynthesised(x: torch.Tensor, valid: torch.Tensor, meta: dict, iters: int, seed: int) -> torch.Tensor:
    """Normalised log-mels -> waveform (Griffin-Lim) -> normalised log-mels again, clip by clip over real frames."""
    from .griffinlim import mel_to_wave
    from .melspec import log_mel

    mean, std, rate = float(meta["mean"]), float(meta["std"]), int(meta["sample_rate"])
    mel = {k: meta["mel"][k] for k in MEL_KEYS if k != "n_mels" and k in meta["mel"]}
    mel.pop("window", None)
    out = torch.zeros_like(x)
    for i in range(len(x)):
        n = int(valid[i].sum())
        if n < 2:
            continue
        wave = mel_to_wave(x[i, :, :n] * std + mean, rate, iters=iters, seed=seed, **mel)
        spec = log_mel(wave, rate, n_mels=x.shape[1], window=meta["mel"].get("window", "povey"), **mel)
        out[i, :, :n] = (spec[:, :n] - mean) / std
    return out


def run_codec(cfg, *, out: str | None = None, seed: int = 0, echo=print, resume: bool = False) -> dict:
    """``polyjepa pretrain`` for a ``jepa_codec`` recipe: train both stages, evaluate, write the run directory.

    The run directory is made before training (config.yaml, run.json) and both stages are checkpointed every
    ``train.checkpoint_every`` steps; ``resume`` (``polyjepa pretrain --resume RUN_DIR``, ``out`` the run
    directory) continues from the newest checkpoint to the weights and metrics of a run that never stopped.
    """
    from safetensors.torch import save_file

    from ..config import TrainConfig, dataclass_from, part_kwargs
    from ..registry import build_part
    from ..runner import write_run_files
    from ..train.checkpoint import atomic_write_text
    from .data import load_audio

    t0 = time.time()
    data_opts = part_kwargs(cfg, "data")
    source = data_opts.pop("source", None) or cfg.data.get("source")
    if not source:
        from ..config import missing_data_message

        raise UserError(missing_data_message(cfg))
    opts = {k: v for k, v in data_opts.items() if k in ("label", "sample_rate", "frames", "crop", *MEL_KEYS)}
    tc = dataclass_from(cfg, "train", TrainConfig)
    if tc.threads:
        torch.set_num_threads(tc.threads)
    loaded = load_audio(str(source), **opts)
    if loaded.x_test is None or loaded.y is None:
        raise UserError("the codec's evaluation needs labelled clips with a test split (an FSDD-layout .npz with "
                        "'take' and 'digit'): pass such data")
    xtr, vtr = clips_from(loaded.x)
    xte, vte = clips_from(loaded.x_test)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        codec = build_part("method", cfg, part_kwargs(cfg, "method"), n_mels=xtr.shape[1])
    dec = build_part("decoder_training", cfg, part_kwargs(cfg, "decoder_training")) \
        if cfg.get("decoder_training") is not None else DecoderTraining()
    run_dir, ckpts = open_stage_run(cfg, out=out, name=str(cfg.get("name", "codec")), seed=seed, resume=resume,
                                    echo=echo, info={"data": str(source)})
    rows: list[dict] = []
    log = lambda row: echo(f"  {row['stage']} step {row['step']}: loss {row['loss']:.4f}")  # noqa: E731
    epochs = tc.max_epochs if tc.max_steps is None else max(1, tc.max_steps * tc.batch_size // len(xtr))
    train_codec(codec, xtr, vtr, jepa_epochs=epochs, decoder_epochs=dec.epochs, batch_size=tc.batch_size,
                lr=tc.lr, decoder_lr=dec.lr, seed=seed, log=log, ckpts=ckpts, history=rows)
    train_s = time.time() - t0
    meta = {"sample_rate": loaded.meta["sample_rate"], "mean": loaded.meta["mean"], "std": loaded.meta["std"],
            "mel": {k: opts.get(k, d) for k, d in (("n_mels", 40), ("win_ms", 25.0), ("hop_ms", 10.0), ("n_fft", None),
                                                   ("f_min", 20.0), ("f_max", None), ("window", "povey"))}}
    frame_rate = 1000.0 / float(meta["mel"]["hop_ms"])
    quality = evaluate_codec(codec, meta, (xtr, vtr, loaded.y), (xte, vte, loaded.y_test), seed=seed)
    summary = {"schema": "polyjepa-codec/1", "recipe": cfg.get("name"), "data": str(source), "seed": seed,
               "n_train": len(xtr), "n_test": len(xte), "levels": list(codec.fsq.levels), "stride": codec.stride,
               "tokens_per_second": frame_rate / codec.stride, "bits_per_token": codec.fsq.bits,
               "bits_per_second": codec.bits_per_second(frame_rate), "jepa_epochs": epochs,
               "decoder_epochs": dec.epochs, "train_seconds": train_s, **quality, "seconds": time.time() - t0}
    save_file({k: v.contiguous() for k, v in codec.state_dict().items()}, run_dir / ".codec.tmp")
    (run_dir / ".codec.tmp").replace(run_dir / "codec.safetensors")
    codec_info = {"meta": meta, "method": part_kwargs(cfg, "method"), "n_mels": codec.n_mels,
                  "sha256": _sha256(run_dir / "codec.safetensors")}
    atomic_write_text(run_dir / "codec.json", json.dumps(codec_info, indent=1))
    table = io.StringIO()
    keys = sorted({k for r in rows for k in r}, key=lambda k: (k not in ("stage", "step"), k))
    w = csv.DictWriter(table, fieldnames=keys)
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(run_dir / "metrics.csv", table.getvalue())
    report = format_codec_summary(summary)
    summary["run_dir"] = str(run_dir)
    write_run_files(run_dir, summary, {}, report + "\n")
    echo(report)
    return summary


run_codec.resumable = True   # polyjepa pretrain --resume hands its run directories back to this runner


def format_codec_summary(s: dict) -> str:
    return "\n".join([
        f"codec {s['recipe']}: levels {s['levels']} ({s['bits_per_token']:.2f} bits/token), "
        f"{s['tokens_per_second']:g} tokens/s = {s['bits_per_second']:.0f} bits/s",
        "| | mel distance (dB) | digit accuracy |", "|---|---:|---:|",
        f"| original | 0 | {s['accuracy_original']:.4f} |",
        f"| decoded log-mel | {s['mel_db']:.2f} | {s['accuracy_decoded_mel']:.4f} |",
        f"| decoded waveform (Griffin-Lim), re-analysed | {s['mel_db_waveform']:.2f} | {s['accuracy_decoded_waveform']:.4f} |",
        f"| Griffin-Lim of the original log-mel (no codec) | {s['mel_db_griffin_lim_only']:.2f} | "
        f"{s['accuracy_griffin_lim_only']:.4f} |"])


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_codec(run_dir: str | Path) -> tuple[JEPACodec, dict]:
    """(codec with the run's weights, codec.json) of a codec run directory."""
    from safetensors.torch import load_file

    run_dir = Path(run_dir)
    info_path, weights = run_dir / "codec.json", run_dir / "codec.safetensors"
    if not info_path.is_file() or not weights.is_file():
        raise UserError(f"{run_dir} is not a codec run (no codec.json / codec.safetensors): train one with "
                        f"polyjepa pretrain codec-fsdd --data FSDD.npz")
    info = json.loads(info_path.read_text())
    codec = JEPACodec(n_mels=int(info["n_mels"]), **info["method"])
    codec.load_state_dict(load_file(str(weights)))
    return codec.eval(), info


def encode_wav(run_dir: str | Path, wav: str | Path, out: str | Path) -> dict:
    """Encode a WAV/FLAC file to tokens (.npz): resampled to the codec's rate, channels averaged."""
    from .io import read_audio
    from .melspec import log_mel
    from .resample import resample

    codec, info = load_codec(run_dir)
    meta = info["meta"]
    rate = int(meta["sample_rate"])
    wave, r = read_audio(wav)
    if not np.isfinite(wave).all():
        raise UserError(f"{wav} contains NaN or inf samples: repair or re-encode the file")
    if np.abs(wave).max() == 0:
        raise UserError(f"{wav} is silent (every sample is 0): nothing to encode")
    n_samples = int(math.ceil(len(wave) * rate / r)) if r != rate else len(wave)
    w = resample(torch.from_numpy(wave), r, rate) if r != rate else torch.from_numpy(wave)
    mel = {k: v for k, v in meta["mel"].items() if v is not None}
    try:
        spec = log_mel(w, rate, **mel)                                # (n_mels, F)
    except ValueError as e:
        raise UserError(f"{wav}: {e}: the clip is too short to encode") from None
    frames = spec.shape[-1]
    x = (spec - float(meta["mean"])) / float(meta["std"])
    pad = (-frames) % codec.stride
    if pad:
        x = torch.nn.functional.pad(x[None], (0, pad), mode="replicate")[0]
    tokens = codec.encode(x[None])[0]
    dtype = np.uint16 if codec.fsq.n_codes <= 2 ** 16 else np.int64
    np.savez(out, format=np.array(TOKENS_FORMAT), tokens=tokens.numpy().astype(dtype), frames=np.int64(frames),
             n_samples=np.int64(n_samples), sample_rate=np.int64(rate), original_rate=np.int64(r),
             levels=np.array(codec.fsq.levels, dtype=np.int64), stride=np.int64(codec.stride),
             codec_sha256=np.array(info["sha256"]))
    return {"tokens": int(len(tokens)), "frames": frames, "sample_rate": rate, "original_rate": r,
            "bits": float(len(tokens) * codec.fsq.bits), "seconds": n_samples / rate}


def decode_tokens(run_dir: str | Path, tokens_file: str | Path, out: str | Path, *, iters: int = 64) -> dict:
    """Decode a tokens .npz (from ``encode_wav``) to a 16-bit WAV at the codec's sample rate."""
    import soundfile as sf

    from .griffinlim import mel_to_wave

    codec, info = load_codec(run_dir)
    path = Path(tokens_file)
    if not path.is_file():
        raise UserError(f"tokens file {path} does not exist: make one with polyjepa codec encode")
    import zipfile

    if not zipfile.is_zipfile(path):
        raise UserError(f"{path} is not a tokens file (.npz): pass the file written by polyjepa codec encode")
    try:
        with np.load(path, allow_pickle=False) as z:
            t = {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read tokens file {path} ({e}): pass a .npz written by polyjepa codec encode") from None
    need = {"format", "tokens", "frames", "n_samples", "sample_rate", "levels", "stride", "codec_sha256"}
    if not need <= set(t) or str(t["format"]) != TOKENS_FORMAT:
        raise UserError(f"{path} is not a tokens file of this codec format ({TOKENS_FORMAT}): "
                        f"make one with polyjepa codec encode")
    if str(t["codec_sha256"]) != info["sha256"] or list(t["levels"]) != list(codec.fsq.levels):
        raise UserError(f"{path} was encoded by another codec than {run_dir}: decode it with the run that encoded it")
    tokens = torch.from_numpy(t["tokens"].astype(np.int64))
    if tokens.ndim != 1 or len(tokens) == 0 or tokens.min() < 0 or tokens.max() >= codec.fsq.n_codes:
        raise UserError(f"{path} holds tokens outside [0, {codec.fsq.n_codes}) or none: the file is damaged")
    meta = info["meta"]
    rate, frames, n_samples = int(meta["sample_rate"]), int(t["frames"]), int(t["n_samples"])
    with torch.no_grad():
        x = codec.decode(tokens[None])[0, :, :frames]
    mel = {k: v for k, v in meta["mel"].items() if v is not None and k not in ("n_mels", "window")}
    wave = mel_to_wave(x * float(meta["std"]) + float(meta["mean"]), rate, iters=iters, **mel).numpy()
    wave = np.pad(wave, (0, max(0, n_samples - len(wave))))[:n_samples]
    peak = float(np.abs(wave).max())
    if peak > 0.999:
        wave = wave * (0.999 / peak)                                  # no clipping in 16 bits
    sf.write(str(out), wave, rate, subtype="PCM_16")
    return {"samples": len(wave), "sample_rate": rate, "seconds": len(wave) / rate}
