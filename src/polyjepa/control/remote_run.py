"""The remote-control recipe end to end: log episodes, train the sensor JEPA, clone the expert on received
messages at each bit budget and bit-error rate, run every loop in the simulator, print and save the table.

``polyjepa pretrain tsjepa-remote-cartpole`` compares four sensors that send the same number of bits per
message over the same channel to the same controller network trained the same way: the TS-JEPA window
embedding, a random-init encoder of the same shape (what training the encoder adds), the top principal
components of the same window (the classical linear transform code of the same width), and the quantised
raw observation (the paper's baseline: sending the state itself).
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
import torch

from ..errors import UserError
from .channel import UniformQuantizer, check_ber, check_bits


@dataclass
class ChannelSpec:
    """The recipe's ``channel``: message budgets (bits per message), bit-error rates, and the share of
    training values left outside the quantiser's range at each end. A sensor of D dims sends
    floor(budget / D) bits per dimension; a budget below D bits is skipped for it."""

    bits: tuple = (4, 8, 12, 16, 24, 32)
    ber: tuple = (0.0, 0.01)
    clip: float = 0.005

    def __post_init__(self):
        bits = self.bits if isinstance(self.bits, (tuple, list)) else (self.bits,)
        ber = self.ber if isinstance(self.ber, (tuple, list)) else (self.ber,)
        if not bits or not ber:
            raise UserError("channel.bits and channel.ber need at least one value each (e.g. bits: [8, 16], ber: [0.0])")
        self.bits = tuple(check_bits(b, "channel.bits") for b in bits)
        self.ber = tuple(check_ber(b, "channel.ber") for b in ber)
        if not 0.0 <= self.clip < 0.5:
            raise UserError(f"channel.clip={self.clip!r} must be in [0, 0.5): the share of training values outside "
                            f"the quantiser's range at each end")


@dataclass
class ControllerSpec:
    """The recipe's ``controller``: the MLP reading the last ``history`` messages, and its cloning budget."""

    history: int = 1
    hidden: int = 128
    steps: int = 1500
    batch_size: int = 128
    lr: float = 1e-3


SENSORS = ("TS-JEPA embedding", "random-init encoder", "PCA of the window", "raw observation")


def format_remote_table(summary: dict) -> str:
    """Mean return (std over training seeds) per sensor and budget, one column per bit-error rate."""
    bers = summary["ber"]
    head = "| sensor | bits per message | dims x bits | " + " | ".join(f"return, BER {b:g}" for b in bers) + " |"
    lines = [f"\n{summary['title']}", "", head, "|---|---|---|" + "---|" * len(bers)]
    lines.append("| expert (LQR, reads the true state) | - | - | " + " | ".join(
        f"{summary['expert']:.1f}" for _ in bers) + " |")
    for row in summary["rows"]:
        cells = [f"{c['mean']:.1f} ± {c['std']:.1f}" if c is not None else "-" for c in row["cells"]]
        lines.append(f"| {row['sensor']} | {row['budget']} | {row['layout']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run_remote(cfg, *, out: str | None = None, seed: int = 0, echo=print, write: bool = True,
               sensors: tuple[str, ...] = SENSORS, resume: bool = False) -> dict:
    """TS-JEPA sensor vs random-init encoder vs raw observation at equal bits per message; returns the summary.

    ``sensors`` picks some of :data:`SENSORS` (all by default). With ``write`` the run directory is made before
    training and every training (the sensor per training seed, each controller) is a checkpointed stage;
    ``resume`` continues a stopped run (``out``) from its newest checkpoint: trained sensors are loaded, judged
    controllers keep their recorded return, the one in training continues from its step."""
    from ..config import part_kwargs
    from .pipeline import (Demos, Rollouts, _env_factory, _finish, _open_run, _positive, _section, _stats,
                           _train_settings)
    from .remote import (Link, MessageController, PCAWindow, RemoteLoopController, Sensor, WindowJEPA,
                         train_controller, window_dataset)
    from .actjepa import train_minibatch
    from .experts import make_expert
    from .rollout import ExpertController, record_demonstrations, run_episodes

    t0 = time.time()
    unknown = [s for s in sensors if s not in SENSORS]
    if unknown or not sensors:
        raise UserError(f"unknown sensor(s) {unknown}: choose some of {', '.join(SENSORS)}")
    make, task = _env_factory(cfg)
    logs, judge = _section(cfg, "demos", Demos), _section(cfg, "rollouts", Rollouts)
    chan, ctrl = _section(cfg, "channel", ChannelSpec), _section(cfg, "controller", ControllerSpec)
    _positive("demos", episodes=logs.episodes)
    _positive("rollouts", episodes=judge.episodes, train_seeds=judge.train_seeds)
    _positive("controller", history=ctrl.history, hidden=ctrl.hidden, steps=ctrl.steps, batch_size=ctrl.batch_size)
    train = _train_settings(cfg)
    env = make()
    spec = env.spec
    sensor_kwargs = part_kwargs(cfg, "method")
    WindowJEPA(obs_dim=spec.obs_dim, action_dim=spec.action_dim, **sensor_kwargs)  # bad sizes fail before any work
    log_stats, episodes = record_demonstrations(make, list(range(logs.seed, logs.seed + logs.episodes)),
                                                epsilon=logs.epsilon, seed=logs.seed)
    expert_fn = make_expert(env)
    labels = np.concatenate([np.stack([expert_fn(s) for s in ep.states[:len(ep.commands)]]) for ep in episodes])
    mean, std = _stats(episodes)
    eval_seeds = list(range(judge.seed, judge.seed + judge.episodes))
    expert = run_episodes(make, ExpertController(env), eval_seeds)
    env.close()
    run_dir, ckpts = _open_run(cfg, out, str(cfg.get("name", "tsjepa-remote")), seed, resume, write, echo)

    budgets = [*chan.bits, None]  # None: unquantised floats over a perfect link (the reference)
    results: dict[tuple, list[float]] = {}
    built: dict = {}
    models: dict[str, torch.nn.Module] = {}
    for k in range(judge.train_seeds):
        torch.manual_seed(seed + k)
        jepa = WindowJEPA(obs_dim=spec.obs_dim, action_dim=spec.action_dim, **sensor_kwargs)
        torch.manual_seed(seed + k)
        untrained = WindowJEPA(obs_dim=spec.obs_dim, action_dim=spec.action_dim, **sensor_kwargs)
        data = window_dataset(episodes, window=jepa.window, horizon=jepa.horizon, mean=mean, std=std)
        built["sensor"] = {"window": jepa.window, "dims": jepa.dims, "horizon": jepa.horizon,
                           "condition": jepa.condition, "parameters": sum(p.numel() for p in jepa.encoder.parameters())}
        if SENSORS[0] in sensors:           # only a trained sensor is saved, with its losses
            losses = train_minibatch(jepa, data, seed=seed + k, ckpts=ckpts, stage=f"sensor_seed{seed + k}", **train)
            models[f"sensor_seed{seed + k}"] = jepa
            built["sensor"].update(first_loss=losses[0], last_loss=float(np.mean(losses[-50:])))
        jepa.eval()
        arms = {SENSORS[0]: Sensor(jepa, mean, std, window=jepa.window),
                SENSORS[1]: Sensor(untrained, mean, std, window=jepa.window),
                SENSORS[2]: Sensor(PCAWindow(window=jepa.window, obs_dim=spec.obs_dim, dims=jepa.dims).fit(
                    data["window"].numpy()), mean, std, window=jepa.window),
                SENSORS[3]: Sensor(None, mean, std, window=jepa.window)}
        for name in sensors:
            sensor = arms[name]
            feats, first = sensor.episode_features(episodes)
            for budget in budgets:
                per_dim = None if budget is None else budget // sensor.dims
                if per_dim == 0:
                    continue
                reference = UniformQuantizer(8, clip=chan.clip).fit(feats)
                quant = None if budget is None else UniformQuantizer(per_dim, clip=chan.clip).fit(feats)
                for b, ber in enumerate(chan.ber if budget is not None else (0.0,)):
                    stage = f"controller_seed{seed + k}_{SENSORS.index(name)}_{budget or 'float'}_{b}"
                    done = ckpts.skip(stage, {})        # judged before a stop: its return is recorded
                    if done is None:
                        torch.manual_seed(seed + k)
                        controller = MessageController(dims=sensor.dims, action_dim=spec.action_dim,
                                                       history=ctrl.history, hidden=ctrl.hidden)
                        train_controller(controller, feats, first, labels, Link(quant, ber, seed=seed + k,
                                         reference=reference), steps=ctrl.steps, batch_size=ctrl.batch_size,
                                         lr=ctrl.lr, seed=seed + k, ckpts=ckpts, stage=stage)
                        link = Link(quant, ber, seed=10_000 + seed + k, reference=reference)
                        stats = run_episodes(make, RemoteLoopController(sensor, link, controller), eval_seeds)
                        done = ckpts.finished[stage]
                        done["mean"] = stats.mean
                    results.setdefault((name, budget, ber), []).append(done["mean"])
                    built.setdefault("layouts", {})[f"{name} / {budget}"] = (
                        "float" if quant is None else f"{quant.dims} x {quant.bits} = {quant.message_bits()}")
            echo(f"polyjepa: training seed {seed + k}, {name}: " + ", ".join(
                f"{b if b is not None else 'float'} bits {np.mean(results[(name, b, chan.ber[0] if b else 0.0)][-1:]):.0f}"
                for b in budgets if (name, b, chan.ber[0] if b else 0.0) in results))
    ckpts.flush()       # the last controllers' records
    rows = []
    for name in sensors:
        for budget in budgets:
            key_ber = chan.ber if budget is not None else (0.0,)
            if (name, budget, key_ber[0]) not in results:
                continue
            cells = []
            for i, ber in enumerate(chan.ber):
                # the unquantised reference crosses no channel: one cell, in the first column
                v = results.get((name, budget, ber)) if budget is not None else (
                    results[(name, None, 0.0)] if i == 0 else None)
                cells.append(None if v is None else {"mean": float(np.mean(v)), "std": float(np.std(v)), "per_seed": v})
            rows.append({"sensor": name, "budget": "unquantised" if budget is None else budget,
                         "layout": built["layouts"][f"{name} / {budget}"], "cells": cells})
    n_steps = sum(len(e.commands) for e in episodes)
    title = (f"{cfg.get('name', 'tsjepa-remote')}: {task}, obs_noise {make().obs_noise:g}, sensor window "
             f"{built['sensor']['window']} steps -> {built['sensor']['dims']} dims; {logs.episodes} logged expert "
             f"episode(s) with {logs.epsilon:g} random commands ({n_steps} steps, return {log_stats.mean:.1f}); "
             f"mean return over {judge.episodes} episodes x {judge.train_seeds} training seeds (± std over seeds)")
    summary = {"schema": "polyjepa-control/1", "recipe": cfg.get("name"), "task": task, "title": title, "rows": rows,
               "ber": list(chan.ber), "expert": expert.mean, "built": built, "train": train, "demos": asdict(logs),
               "rollouts": asdict(judge), "channel": asdict(chan), "controller": asdict(ctrl),
               "seconds": time.time() - t0}
    return _finish(run_dir, summary, models, echo, table=format_remote_table(summary))


run_remote.resumable = True   # polyjepa pretrain --resume hands its run directories back to this runner
