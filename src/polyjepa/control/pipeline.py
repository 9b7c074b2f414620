"""The control recipes end to end: record, train, run in the simulator, print and save the comparison.

``polyjepa pretrain actjepa-cartpole`` trains ACT-JEPA and behaviour cloning (the same network and
budget, no JEPA term) on the same seeded expert demonstrations, over several training seeds, and
runs every policy for the same seeded episodes; ``polyjepa pretrain planner-cartpole`` trains a
latent world model on logged transitions and balances with CEM in its embedding.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
import torch

from ..errors import UserError


@dataclass
class Demos:
    """Expert demonstrations: ``episodes`` seeded episodes from seed ``seed`` on (the recipe's ``demos``)."""

    episodes: int = 3
    seed: int = 1000
    epsilon: float = 0.0      # fraction of the expert's steps replaced by a random command


@dataclass
class Rollouts:
    """How policies are judged (the recipe's ``rollouts``): ``episodes`` seeded episodes from seed
    ``seed`` on, for each of ``train_seeds`` training seeds."""

    episodes: int = 20
    seed: int = 0
    train_seeds: int = 3
    ensemble: float = 0.0     # ACT temporal-ensembling rate m (0: execute the first command of each chunk)


@dataclass
class Transitions:
    """Logged transitions for a world model (the recipe's ``transitions``): random-command episodes and
    expert episodes with ``epsilon`` of their commands random."""

    random_episodes: int = 100
    noisy_episodes: int = 20
    epsilon: float = 0.3
    seed: int = 2000
    rollout: int = 16         # consecutive steps the world model predicts from one embedding


def _positive(section: str, **values) -> None:
    for key, v in values.items():
        if not (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
            raise UserError(f"{section}.{key}={v!r} must be a whole number >= 1")


def _section(cfg, name: str, cls):
    from ..config import part_kwargs

    obj = cls(**part_kwargs(cfg, name))
    return obj


def _env_factory(cfg):
    from ..config import part_kwargs
    from .envs import ControlEnv, task_spec

    kwargs = part_kwargs(cfg, "env")
    name = (cfg.get("env") or {}).get("name", "cartpole")
    task_spec(name)
    ControlEnv(name, **kwargs).close()  # fails now on a missing gymnasium or a bad option

    def make():
        return ControlEnv(name, **kwargs)
    return make, name


def _train_settings(cfg) -> dict:
    from ..config import TrainConfig, dataclass_from

    t = dataclass_from(cfg, "train", TrainConfig)
    steps = t.max_steps if t.max_steps is not None else 2000
    return {"steps": int(steps), "batch_size": t.batch_size, "lr": t.lr}


def _stats(episodes) -> tuple[np.ndarray, np.ndarray]:
    obs = np.concatenate([e.obs for e in episodes])
    return obs.mean(0), obs.std(0) + 1e-6


def _finish(run_dir, summary: dict, models: dict[str, torch.nn.Module], echo, table: str | None = None) -> dict:
    """Print the run's table (``table``, or one row per controller) and, with a ``run_dir`` (made by
    :func:`_open_run`), keep the run's results there: summary, weights and report.md; returns the summary (with
    ``run_dir`` when written)."""
    table = format_control_table(summary) if table is None else table
    if run_dir is not None:
        from ..runner import write_run_files

        summary["run_dir"] = str(run_dir)
        write_run_files(run_dir, summary, models, table + "\n")
    echo(table)
    return summary


def _open_run(cfg, out, name: str, seed: int, resume: bool, write: bool, echo):
    """(run directory or None, checkpoints) of a control run: see :func:`polyjepa.train.stages.open_stage_run`."""
    from ..train.stages import open_stage_run

    return open_stage_run(cfg, out=out, name=name, seed=seed, resume=resume, write=write, echo=echo)


def format_control_table(summary: dict) -> str:
    """The comparison as a Markdown table: one row per controller."""
    lines = [f"\n{summary['title']}", "", "| controller | mean return | std over training seeds | per training seed | "
             "full-length episodes |", "|---|---|---|---|---|"]
    for row in summary["rows"]:
        per = ", ".join(f"{v:.1f}" for v in row["per_seed"]) if row["per_seed"] else "-"
        std = f"{row['std']:.1f}" if row["std"] is not None else "-"
        lines.append(f"| {row['controller']} | {row['mean']:.1f} | {std} | {per} | {row['success']:.2f} |")
    return "\n".join(lines)


def _row(name: str, stats_list, full: int) -> dict:
    means = [s.mean for s in stats_list]
    return {"controller": name, "mean": float(np.mean(means)), "std": float(np.std(means)) if len(means) > 1 else None,
            "per_seed": means if len(means) > 1 else [], "success": float(np.mean([s.success(full) for s in stats_list]))}


def run_actjepa(cfg, *, out: str | None = None, seed: int = 0, echo=print, write: bool = True,
                resume: bool = False) -> dict:
    """ACT-JEPA vs behaviour cloning vs the expert, on the recipe's task; returns the summary.

    With ``write`` the run directory is made before training and each policy's training is checkpointed (a
    stage per policy and training seed); ``resume`` continues a stopped run (``out``) from its newest checkpoint:
    trained policies are loaded and judged again, the one in training continues from its step."""
    from ..config import part_kwargs
    from .actjepa import ACTJEPA, ChunkController, chunk_dataset, train_policy
    from .rollout import ExpertController, record_demonstrations, run_episodes

    t0 = time.time()
    make, task = _env_factory(cfg)
    demos, judge = _section(cfg, "demos", Demos), _section(cfg, "rollouts", Rollouts)
    _positive("demos", episodes=demos.episodes)
    _positive("rollouts", episodes=judge.episodes, train_seeds=judge.train_seeds)
    train = _train_settings(cfg)
    env = make()
    spec = env.spec
    method_kwargs = part_kwargs(cfg, "method")
    weight = float(method_kwargs.pop("jepa_weight", 1.0))
    if weight <= 0:
        raise UserError("method.jepa_weight must be > 0 for ACT-JEPA (behaviour cloning, weight 0, is trained "
                        "beside it anyway)")
    demo_stats, episodes = record_demonstrations(make, list(range(demos.seed, demos.seed + demos.episodes)),
                                                 epsilon=demos.epsilon, seed=demos.seed)
    mean, std = _stats(episodes)
    eval_seeds = list(range(judge.seed, judge.seed + judge.episodes))
    expert = run_episodes(make, ExpertController(env), eval_seeds)
    env.close()
    run_dir, ckpts = _open_run(cfg, out, str(cfg.get("name", "actjepa")), seed, resume, write, echo)
    results, models, built = {"ACT-JEPA": [], "BC": []}, {}, {}
    for k in range(judge.train_seeds):
        for label, w in (("ACT-JEPA", weight), ("BC", 0.0)):
            torch.manual_seed(seed + k)
            model = ACTJEPA(obs_dim=spec.obs_dim, action_dim=spec.action_dim, jepa_weight=w, **method_kwargs)
            data = chunk_dataset(episodes, history=model.history, chunk=model.chunk, mean=mean, std=std)
            key = f"{'actjepa' if w > 0 else 'bc'}_seed{seed + k}"
            train_policy(model, data, seed=seed + k, ckpts=ckpts, stage=key, **train)
            stats = run_episodes(make, ChunkController(model, mean, std, ensemble=judge.ensemble), eval_seeds)
            results[label].append(stats)
            models[key] = model
            built[label] = {"history": model.history, "chunk": model.chunk, "latent": model.latent,
                            "jepa_weight": model.jepa_weight, "parameters": sum(p.numel() for p in model.parameters()
                                                                                if p.requires_grad)}
            echo(f"polyjepa: {label} training seed {seed + k}: mean return {stats.mean:.1f}")
    full = spec.max_steps
    rows = [_row("expert (" + ("LQR" if task == "cartpole" else "energy shaping + LQR") + ")", [expert], full),
            _row(f"ACT-JEPA (jepa_weight {weight:g})", results["ACT-JEPA"], full), _row("BC (no JEPA term)", results["BC"], full)]
    n_obs = sum(len(e.commands) for e in episodes)
    title = (f"{cfg.get('name', 'actjepa')}: {task}, obs_noise {make().obs_noise:g}, {demos.episodes} demonstration(s) "
             f"({n_obs} steps, expert return {demo_stats.mean:.1f}), {judge.train_seeds} training seeds x "
             f"{judge.episodes} episodes, {train['steps']} steps each")
    summary = {"schema": "polyjepa-control/1", "recipe": cfg.get("name"), "task": task, "title": title, "rows": rows,
               "built": built, "demonstration_steps": n_obs, "train": train, "demos": asdict(demos),
               "rollouts": asdict(judge), "seconds": time.time() - t0}
    return _finish(run_dir, summary, models, echo)


def collect_transitions(make, spec: Transitions, action_dim: int):
    """Random-command episodes and epsilon-noisy expert episodes, recorded with noise-free observations."""
    from .rollout import RandomController, record_demonstrations, run_episodes

    _, rnd = run_episodes(make, RandomController(action_dim, seed=spec.seed), list(range(spec.seed, spec.seed +
                          spec.random_episodes)), record=True)
    start = spec.seed + spec.random_episodes
    _, noisy = record_demonstrations(make, list(range(start, start + spec.noisy_episodes)), epsilon=spec.epsilon,
                                     seed=start)
    return rnd + noisy


def run_planner(cfg, *, out: str | None = None, seed: int = 0, echo=print, write: bool = True,
                resume: bool = False) -> dict:
    """Train the latent world model on logged transitions and control with CEM toward the goal embedding.

    Checkpoints and ``resume``: as :func:`run_actjepa` (a stage per training seed's world model)."""
    from ..config import part_kwargs
    from .planner import CEMPlanner
    from .rollout import ExpertController, run_episodes
    from .worldmodel import LatentDynamics, PlanningController, train_world_model, transition_dataset

    t0 = time.time()
    make, task = _env_factory(cfg)
    logged, judge = _section(cfg, "transitions", Transitions), _section(cfg, "rollouts", Rollouts)
    _positive("rollouts", episodes=judge.episodes, train_seeds=judge.train_seeds)
    train = _train_settings(cfg)
    env = make()
    spec = env.spec
    method_kwargs = part_kwargs(cfg, "method")
    rollout = logged.rollout
    _positive("transitions", rollout=rollout, random_episodes=logged.random_episodes)
    planner_kwargs = part_kwargs(cfg, "planner")
    episodes = collect_transitions(make, logged, spec.action_dim)
    mean, std = _stats(episodes)
    data = transition_dataset(episodes, rollout=rollout, mean=mean, std=std)
    eval_seeds = list(range(judge.seed, judge.seed + judge.episodes))
    expert = run_episodes(make, ExpertController(env), eval_seeds)
    goal = np.zeros(spec.obs_dim, dtype=np.float32) if task == "cartpole" else np.array([1.0, 0.0, 0.0], np.float32)
    env.close()
    run_dir, ckpts = _open_run(cfg, out, str(cfg.get("name", "planner")), seed, resume, write, echo)
    runs, models, built = [], {}, {}
    for k in range(judge.train_seeds):
        torch.manual_seed(seed + k)
        model = LatentDynamics(obs_dim=spec.obs_dim, action_dim=spec.action_dim, **method_kwargs)
        train_world_model(model, data, seed=seed + k, ckpts=ckpts, stage=f"world_model_seed{seed + k}", **train)
        planner = CEMPlanner(action_dim=spec.action_dim, seed=seed + k, **planner_kwargs)
        stats = run_episodes(make, PlanningController(model, planner, goal, mean, std, discrete=spec.discrete), eval_seeds)
        runs.append(stats)
        models[f"world_model_seed{seed + k}"] = model
        built = {"latent": model.latent, "rollout": rollout, "planner": {"horizon": planner.horizon, "samples":
                 planner.samples, "iterations": planner.iterations, "elites": planner.elites},
                 "parameters": sum(p.numel() for p in model.parameters() if p.requires_grad)}
        echo(f"polyjepa: CEM on the world model, training seed {seed + k}: mean return {stats.mean:.1f}, "
             f"full-length {stats.success(spec.max_steps):.2f}")
    full = spec.max_steps
    rows = [_row("expert (" + ("LQR" if task == "cartpole" else "energy shaping + LQR") + ")", [expert], full),
            _row("CEM in the learned latent model", runs, full)]
    n = len(data["obs"])
    title = (f"{cfg.get('name', 'planner')}: {task}, world model on {sum(len(e.commands) for e in episodes)} logged "
             f"steps ({logged.random_episodes} random + {logged.noisy_episodes} noisy-expert episodes, {n} stretches of "
             f"{rollout}), {judge.train_seeds} training seeds x {judge.episodes} episodes")
    summary = {"schema": "polyjepa-control/1", "recipe": cfg.get("name"), "task": task, "title": title, "rows": rows,
               "built": built, "train": train, "transitions": asdict(logged), "rollouts": asdict(judge),
               "seconds": time.time() - t0}
    return _finish(run_dir, summary, models, echo)


run_actjepa.resumable = True   # polyjepa pretrain --resume hands their run directories back to these runners
run_planner.resumable = True
