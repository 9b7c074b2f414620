"""Runs: pretrain a recipe into a run directory, evaluate it, reload it to probe or embed."""
from __future__ import annotations

import functools
import json
import os
import time
from datetime import datetime
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from .config import (DataConfig, EvalConfig, TrainConfig, apply_overrides, dataclass_from, load_recipe,
                     missing_data_message, part_kwargs, read_config, to_yaml, validate)
from .errors import UserError, warn
from .train.checkpoint import atomic_write_text

SUMMARY_SCHEMA = "polyjepa-summary/1"
# What ``--resume`` may change: settings of the optimisation's course, not of the model, the data or the
# randomness, so the resumed run stays one run (its checkpoint's weights and optimizer state still fit).
RESUME_OVERRIDES = ("train.lr", "train.start_lr", "train.final_lr", "train.warmup", "train.grad_clip",
                    "train.max_minutes", "train.max_epochs", "train.max_steps")
DIVERGED = "diverged.json"   # written into a run directory whose training stopped on a NaN/inf loss


def _build_method(cfg_dict: dict, input_shape: tuple, seed: int, meta: dict | None = None):
    from .build import build_method

    return build_method(OmegaConf.create(cfg_dict), input_shape, seed, meta)


def _has_checkpoint(run_dir: Path) -> bool:
    from .train.checkpoint import checkpoints_newest_first

    return bool(checkpoints_newest_first(run_dir / "checkpoints"))


def check_new_run_dir(out: str | None, name: str) -> Path:
    """The folder a new run will write (checked, not created): refused when it is a file, an existing run
    with a checkpoint, or a non-empty folder that is not a run."""
    run_dir = Path(out) if out else Path("runs") / f"{name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"--out {run_dir} is a file: name a folder for the run")
    if (run_dir / "config.yaml").exists():
        if _has_checkpoint(run_dir):
            raise UserError(f"{run_dir} already holds a run: continue it with --resume {run_dir}, or choose another --out")
    elif run_dir.is_dir() and any(run_dir.iterdir()):
        raise UserError(f"--out {run_dir} is a folder that is not empty and holds no polyjepa run: name a new or "
                        f"empty folder, so that nothing in it is overwritten")
    return run_dir


def new_run_dir(out: str | None, name: str) -> Path:
    """Create the folder of a new run. A run stopped before its first checkpoint is started over in place."""
    run_dir = check_new_run_dir(out, name)
    if (run_dir / "config.yaml").exists():  # checked above: a run with no checkpoint yet
        warn(f"{run_dir} holds a run stopped before its first checkpoint: starting it over in place")
        _clear_run(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def write_run(out: str | None, name: str, cfg, summary: dict, models: dict, report: str | None = None) -> Path:
    """Keep a run that trains in one go (the recipes with their own runner): a new run directory with
    config.yaml, summary.json (with its creation time), ``<key>.safetensors`` per model and report.md;
    every file is written to a temporary name and renamed."""
    run_dir = new_run_dir(out, name)
    atomic_write_text(run_dir / "config.yaml", to_yaml(cfg))
    write_run_files(run_dir, summary, models, report)
    return run_dir


def write_run_files(run_dir: Path, summary: dict, models: dict, report: str | None = None) -> None:
    """A finished run's results in ``run_dir``: summary.json (with its creation time), ``<key>.safetensors`` per
    model and report.md, each written to a temporary name and renamed."""
    from safetensors.torch import save_file

    for key, model in models.items():
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, run_dir / f".{key}.tmp")
        (run_dir / f".{key}.tmp").replace(run_dir / f"{key}.safetensors")
    atomic_write_text(run_dir / "summary.json", json.dumps(
        {**summary, "created": datetime.now().isoformat(timespec="seconds")}, indent=1))
    if report is not None:
        atomic_write_text(run_dir / "report.md", report)


def record_resume(run_dir: Path, cfg, info: dict, changes: list[str], **extra) -> None:
    """Write a resume's overrides into the run (the new config.yaml, and the change listed in run.json); nothing
    when it changes nothing."""
    if not changes:
        return
    info.setdefault("resumes", []).append({"time": datetime.now().isoformat(timespec="seconds"),
                                           "overrides": changes, **extra})
    atomic_write_text(run_dir / "config.yaml", to_yaml(cfg))
    atomic_write_text(run_dir / "run.json", json.dumps(info, indent=1))


def _clear_run(run_dir: Path) -> None:
    """Remove what a run writes (a run directory with no checkpoint has nothing else worth keeping)."""
    import shutil

    for p in run_dir.iterdir():
        shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()


def open_run(run_dir: str | Path) -> tuple[Path, DictConfig, dict]:
    """(path, validated config, run.json) of an existing run directory."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").exists() or not (run_dir / "run.json").exists():
        raise UserError(f"{run_dir} is not a polyjepa run directory (no config.yaml/run.json): "
                        f"pass the --out folder of a 'polyjepa pretrain' run")
    cfg = read_config(run_dir / "config.yaml", "the run's config")
    try:
        cfg = validate(cfg)
    except UserError as e:
        raise UserError(f"the run's config {run_dir / 'config.yaml'} is not valid: {e}") from None
    try:
        info = json.loads((run_dir / "run.json").read_text())
    except (ValueError, OSError) as e:
        raise UserError(f"cannot read {run_dir / 'run.json'} ({e}): the run's record is damaged; restore it, "
                        f"or train the run again") from None
    missing = [k for k in ("seed", "input_shape") if not isinstance(info, dict) or k not in info]
    if missing:
        raise UserError(f"{run_dir / 'run.json'} lacks {missing}: the run's record is damaged; restore it, "
                        f"or train the run again")
    return run_dir, cfg, info


FRAME_SOURCE = "dataframe"  # data.source of a DataFrame until the run directory holds its copy


def _as_frame(data):
    """The DataFrame passed as ``data`` (anything else that is not a path is a user error)."""
    try:
        import pandas as pd
    except ImportError:
        pd = None
    if pd is None or not isinstance(data, pd.DataFrame):
        raise UserError(f"data must be a path, a data set name or a pandas DataFrame, got {type(data).__name__}")
    return data


def save_frame(frame, run_dir: Path) -> str:
    """Write a DataFrame passed as data into the run directory (atomically); returns its path."""
    from importlib.util import find_spec

    if find_spec("pyarrow") is not None:
        path, write = run_dir / "data.parquet", lambda p: frame.to_parquet(p, index=False)
    else:
        path, write = run_dir / "data.csv.gz", lambda p: frame.to_csv(p, index=False, compression="gzip")
    tmp = path.with_name(".tmp-" + path.name)
    write(tmp)
    tmp.replace(path)
    return str(path)


def pretrain(recipe: str | None = None, *, data: str | None = None, out: str | None = None,
             max_epochs: int | None = None, max_minutes: float | None = None, seed: int | None = None,
             overrides: list[str] | tuple = (), resume: str | None = None, progress: bool = True,
             echo=print) -> dict:
    """Pretrain a recipe, evaluate it against baselines and write a run directory; returns summary.json's dict.

    Args:
        recipe: bundled recipe name or YAML path (optional with ``resume``).
        data: data source replacing the recipe's (``digits``, .npz/.npy, folder of images, a table file), or
            a pandas DataFrame for the table recipes: it is saved in the run directory (``data.parquet``,
            or ``data.csv.gz`` without pyarrow) and the run's ``data.source`` points there, so that
            ``probe`` and ``--resume`` read the same rows.
        out: run directory (default ``runs/<recipe>-<time>``).
        max_epochs, max_minutes: training length; with max_minutes the schedule fits the budget.
        seed: of a new run (default 0); a resumed run keeps its own.
        overrides: ``section.key=value`` strings, e.g. ``train.lr=5e-4``.
        resume: a run directory to continue from its last checkpoint (config comes from the run). A
            resume may change only ``RESUME_OVERRIDES`` (learning rate, warm-up, clipping, length: e.g.
            ``train.lr=1e-4`` after a divergence), recorded in the run's config.yaml and run.json; a run
            with no checkpoint yet is started over.
    """
    from .data.prepare import prepare

    t_start = time.time()
    frame = None
    if max_epochs is not None and max_epochs < 1:
        raise UserError(f"--max-epochs must be at least 1, got {max_epochs}")
    if max_minutes is not None and not max_minutes > 0:
        raise UserError(f"--max-minutes must be a positive number of minutes, got {max_minutes}")
    if seed is not None and not 0 <= seed < 2**32:
        raise UserError(f"--seed must be an integer in [0, 2**32), got {seed}")
    replan = False
    if resume:
        if data is not None or out is not None:
            raise UserError("--resume continues a run in its own directory on its own data: drop --data/--out, "
                            "or start a new run to change them")
        unsafe = [o.split("=", 1)[0].strip() for o in overrides if o.split("=", 1)[0].strip() not in RESUME_OVERRIDES]
        if unsafe:
            raise UserError(f"--resume cannot change {', '.join(unsafe)}: a resumed run may change only "
                            f"{', '.join(RESUME_OVERRIDES)}; start a new run to change the rest")
        from .registry import method_runner

        if (Path(resume) / "config.yaml").exists() and not (Path(resume) / "run.json").exists() \
                and method_runner(read_config(Path(resume) / "config.yaml", "the run's config")) is not None:
            raise UserError(f"{resume} is a run of a method that trains in one go and keeps no checkpoint to resume: "
                            f"start it again with polyjepa pretrain RECIPE")
        run_dir, cfg, info = open_run(resume)
        if recipe is not None and recipe != cfg.name and Path(recipe).stem != cfg.name:
            raise UserError(f"{run_dir} is a run of recipe {cfg.name!r}, not {recipe!r}: drop the recipe or fix it")
        if seed is not None and seed != info["seed"]:
            raise UserError(f"{run_dir} was trained with seed {info['seed']}, not {seed}: drop --seed to resume it")
        seed = info["seed"]
        changes = list(overrides)
        if max_epochs is not None:
            changes.append(f"train.max_epochs={max_epochs}")
        if max_minutes is not None:
            changes.append(f"train.max_minutes={max_minutes}")
        keys = [c.split("=", 1)[0].strip() for c in changes]
        if "train.max_epochs" in keys and "train.max_steps" not in keys:
            changes.append("train.max_steps=null")  # as for a new run: epochs replace a step count
        replan = "train.max_epochs" in keys or "train.max_steps" in keys
        if changes:
            cfg = validate(apply_overrides(cfg, changes))
        run = method_runner(cfg)
        if run is not None:  # a method with its own runner that keeps checkpoints (e.g. two-tower recommendation)
            if not getattr(run, "resumable", False):
                raise UserError(f"{run_dir} is a run of a method that trains in one go and keeps no checkpoint to "
                                f"resume: start it again with polyjepa pretrain RECIPE")
            record_resume(run_dir, cfg, info, changes)
            return run(cfg, out=str(run_dir), seed=seed, echo=echo, resume=True)
        if _is_paired(cfg):  # two towers: their own data and evaluation, the library's training loop
            from .paired.run import pretrain_paired

            record_resume(run_dir, cfg, info, changes)
            return pretrain_paired(cfg, seed=seed, progress=progress, echo=echo, resume=run_dir, replan=replan)
        stats = run_stats(info)
    else:
        if recipe is None:
            raise UserError("name a recipe (see 'polyjepa recipes') or pass --resume RUN_DIR")
        extra = list(overrides)
        if data is not None and not isinstance(data, (str, os.PathLike)):
            frame, data = _as_frame(data), FRAME_SOURCE
        if data is not None:
            extra.append(f"data.source={data}")
        if max_epochs is not None:
            extra += [f"train.max_epochs={max_epochs}", "train.max_steps=null"]
        if max_minutes is not None:
            extra.append(f"train.max_minutes={max_minutes}")
        cfg = load_recipe(recipe, extra)
        seed = cfg.seed = 0 if seed is None else seed
        from .registry import method_runner

        run = method_runner(cfg)
        if run is not None:  # a method with its own training and evaluation (e.g. a policy run in a simulator)
            # a runner reads --data only if its recipe has a data section of its own (more than the --data source)
            if data is not None and set(cfg.get("data") or {}) <= {"source"}:
                raise UserError(f"recipe {cfg.name!r} makes its own data (method {cfg.method.name!r}): drop --data")
            return run(cfg, out=out, seed=seed, echo=echo)
        if _is_paired(cfg):  # two towers on aligned pairs: their own data, evaluation and table
            from .paired.run import pretrain_paired

            return pretrain_paired(cfg, out=out, seed=seed, progress=progress, echo=echo)
        run_dir, stats, info = None, None, {}

    from .train.loop import check_launch

    check_launch(dataclass_from(cfg, "train", TrainConfig))
    if launch_rank() is not None and out is None and not resume:
        raise UserError("a multi-process launch (torchrun, srun) needs --out: every process must find the one run directory")
    data_cfg: DataConfig = dataclass_from(cfg, "data", DataConfig)
    train_cfg: TrainConfig = torchrun_train_config(dataclass_from(cfg, "train", TrainConfig))
    eval_cfg: EvalConfig = dataclass_from(cfg, "eval", EvalConfig)
    if frame is not None:
        data_cfg.source = frame
    if data_cfg.source is None:  # a recipe whose data the user brings, run without --data
        from .registry import check_option_types, part_builder

        check_option_types("data", part_builder("data", {"data": {"loader": data_cfg.loader}})[0],
                           part_kwargs(cfg, "data"))
        raise UserError(missing_data_message(cfg))
    prepared = prepare(data_cfg, stats, part_kwargs(cfg, "data"))
    from .data.prepare import evaluation_sample, first_rows

    # what the probes, baselines and monitor see: all the data, or a bounded stratified sample of large or streamed
    # data; only the process that evaluates (rank 0) decodes it
    rank0 = (launch_rank() or 0) == 0
    ev, sampled = evaluation_sample(prepared, eval_cfg.max_samples, seed=data_cfg.split_seed,
                                    max_bytes=eval_cfg.max_bytes) if rank0 else (None, None)
    input_shape = tuple(prepared.x_train.shape[1:])
    cfg_dict = OmegaConf.to_container(cfg, resolve=True)
    build = functools.partial(_build_method, cfg_dict, input_shape, seed, prepared.meta)
    # fail on a bad recipe/data combination, read-out, batch size or mask before creating anything
    method = build()
    _check_readout(method.encoder(), first_rows(prepared.x_train, 2), eval_cfg)
    from .build import build_augment

    _check_batches(method, prepared.x_train, train_cfg, build_augment(cfg), seed)
    from .train.precision import transformer_width

    width = transformer_width(method)
    del method
    from .train.tensorboard import check_logger

    check_logger(train_cfg.logger)

    if run_dir is not None:  # a resume
        from .train.checkpoint import checkpoints_newest_first

        ckpts = checkpoints_newest_first(run_dir / "checkpoints")
        if replan and ckpts:
            total = train_cfg.max_steps if train_cfg.max_steps is not None else \
                train_cfg.max_epochs * (len(prepared.x_train) // train_cfg.batch_size)
            done = json.loads((ckpts[0] / "state.json").read_text()).get("step", 0) if ckpts else 0
            if total <= done:
                raise UserError(f"{run_dir} has already trained {done} steps and the new length is {total}: raise "
                                f"train.max_steps / --max-epochs above {done}")
        if not ckpts:
            echo(f"polyjepa: {run_dir} was stopped before its first checkpoint: starting it over")
            resume = None
        if rank0:
            record_resume(run_dir, cfg, info, changes, from_checkpoint=ckpts[0].name if ckpts else None)
    elif rank0:
        run_dir = new_run_dir(out, cfg.name)
        if frame is not None:
            data_cfg.source = cfg.data.source = save_frame(frame, run_dir)
        info = {"recipe": cfg.name, "seed": seed, "data": data_cfg.source, "input_shape": list(input_shape),
                "mean": prepared.mean, "std": prepared.std, "meta": prepared.meta, "created": datetime.now().isoformat(timespec="seconds")}
        launch = launch_id()
        if launch is not None:
            info["launch"] = launch
        atomic_write_text(run_dir / "config.yaml", to_yaml(cfg))
        atomic_write_text(run_dir / "run.json", json.dumps(info, indent=1))
    else:  # another process of a torchrun launch: rank 0 writes the run directory
        run_dir, cfg, info = wait_for_run_dir(out, t_start)
        data_cfg.source = cfg.data.source
    if not rank0:
        echo = _silent
    echo(f"polyjepa: {cfg.name} on {prepared.name} ({len(prepared.x_train)} train / {len(prepared.x_test)} test, "
         f"input {input_shape}) -> {run_dir}")

    from .data.skiplog import SKIP_LOG, attach_skip_log, merge_skip_log, skip_summary

    # files skipped while streaming, by this process, its DataLoader workers and the other ranks, in one log
    attach_skip_log((prepared.x_train, prepared.x_test), run_dir / SKIP_LOG)
    from .eval.evaluate import Monitor
    from .train.loop import TrainJob, fit

    monitor = Monitor(ev.x_train, ev.y_train, samples=eval_cfg.monitor_samples, pool=eval_cfg.pool,
                      layers=eval_cfg.layers, k=eval_cfg.knn_k) if rank0 else None
    job = TrainJob(build=build, x_train=prepared.x_train, train=train_cfg, run_dir=str(run_dir),
                   seed=seed, augment=build_augment(cfg), monitor=monitor, resume=bool(resume), progress=progress,
                   replan=replan and bool(resume), model_width=width)
    from .train.loop import TrainingDiverged

    t_train = time.time()
    try:
        record = fit(job)
    except TrainingDiverged as e:
        if rank0:
            atomic_write_text(run_dir / DIVERGED, json.dumps({"step": e.step, "message": str(e)}, indent=1))
        raise
    except UserError as e:  # raised in a DataLoader worker, it comes back wrapped in the worker's traceback
        raise UserError(str(e).rpartition("UserError: ")[2] or str(e)) from None
    if not rank0:
        return {}
    (run_dir / DIVERGED).unlink(missing_ok=True)

    method = load_run_method(run_dir, cfg, info)[0]
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in method.encoder().state_dict().items()}, run_dir / ".encoder.tmp")
    (run_dir / ".encoder.tmp").replace(run_dir / "encoder.safetensors")

    from .eval.evaluate import evaluate

    t_eval = time.time()
    results = evaluate(method.encoder(), ev, eval_cfg, random_encoder=build().encoder(), seed=seed)
    t_eval = time.time() - t_eval
    summary = {
        "schema": SUMMARY_SCHEMA, "recipe": cfg.name, "data": data_cfg.source, "seed": seed,
        "n_train": len(prepared.x_train), "n_test": len(prepared.x_test),
        # a resumed run counts the training its killed command did before this one (restored from the checkpoint)
        "seconds": time.time() - t_start + record["train_seconds_before"], "train_seconds": record["train_seconds"],
        "steps": record["steps"], "total_steps": record["total_steps"], "samples_seen": record["samples"],
        "samples_per_second": record["samples_per_second"], "stop_reason": record["stop_reason"],
        "world_size": record["world_size"], "precision": record.get("precision"), "final_loss": _last_metric(run_dir, "loss"),
        "embedding": {"pool": eval_cfg.pool, "layers": eval_cfg.layers, "dim": results["embedding_dim"],
                      # the method's own setting (a method without one, e.g. VJ-VCR, has a single online encoder)
                      "encoder": getattr(method, "embed_from", "online")},
        **{k: results[k] for k in ("rankme", "probe", "baselines")},
        # wall seconds of this command's phases; evaluation per representation (a cached baseline reads back)
        "phase_seconds": {"before_training": t_train - t_start, "training": record["train_seconds"],
                          "evaluation": t_eval, **{f"evaluation_{k}": v for k, v in results["seconds"].items()}},
        "baselines_cached": results["cached"],
    }
    if sampled:
        summary["eval_sample"] = sampled
    if hasattr(prepared.x_train, "skipped"):
        merge_skip_log(run_dir / SKIP_LOG)   # every process has stopped reading: one file for the user
        summary["skipped_files"] = skip_summary(run_dir / SKIP_LOG) or {"count": 0, "first": []}
    atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=1))
    from .report import write_report

    figures = []
    if hasattr(method, "report_figures"):  # a method with pictures of its own, e.g. a generative one's samples
        (run_dir / "plots").mkdir(exist_ok=True)
        figures = method.report_figures(run_dir / "plots", mean=prepared.mean, std=prepared.std, seed=seed)
    write_report(run_dir, summary, figures=figures)
    echo(format_table(summary))
    return summary


def _is_paired(cfg) -> bool:
    """Whether the recipe's data loader yields aligned pairs (the paired family's runs)."""
    from .registry import part_builder

    return bool(getattr(part_builder("data", cfg)[0], "paired", False))


def _silent(*_args, **_kwargs) -> None:
    pass


def _slurm_tasks() -> tuple[int, int, int] | None:
    """(rank, tasks, nodes) of a process that ``srun`` started as one task of several (the job step's
    ``SLURM_STEP_NUM_TASKS``, which a batch script's own shell does not have); None otherwise. An interactive
    allocation (job name ``bash`` or ``interactive``) is left to the other launchers, as Fabric does."""
    env = os.environ
    if "SLURM_PROCID" not in env or env.get("SLURM_JOB_NAME") in ("bash", "interactive"):
        return None
    tasks = int(env.get("SLURM_STEP_NUM_TASKS", "1") or 1)
    if tasks <= 1:
        return None
    return int(env["SLURM_PROCID"]), tasks, int(env.get("SLURM_STEP_NUM_NODES", "1") or 1)


def launch_rank() -> int | None:
    """This process's rank in a launch that started the command once per process (torchrun, SLURM's ``srun``,
    or Lightning's subprocess launcher re-running it), from the environment they set; None for a plain command."""
    env = os.environ
    if int(env.get("WORLD_SIZE", "1") or 1) > 1 and ("RANK" in env or "LOCAL_RANK" in env):
        return int(env["RANK"]) if "RANK" in env else int(env["LOCAL_RANK"])
    slurm = _slurm_tasks()
    return None if slurm is None else slurm[0]


def launch_id() -> str | None:
    """The identity of this launch, the same in all its processes (rank 0 records it in run.json so that the
    others know the run directory is theirs); None outside torchrun and srun."""
    env = os.environ
    if "TORCHELASTIC_RUN_ID" in env:
        return env["TORCHELASTIC_RUN_ID"]
    if _slurm_tasks() is not None:
        return f"slurm-{env.get('SLURM_JOB_ID', '')}.{env.get('SLURM_STEP_ID', '0')}"
    return None


def torchrun_train_config(train: TrainConfig) -> TrainConfig:
    """Under torchrun or srun, train with one process per launched process (DDP over the launch), not spawn
    more: ``train.devices`` becomes the processes per machine, ``train.num_nodes`` the machines."""
    import dataclasses

    env = os.environ
    slurm = _slurm_tasks()
    if launch_rank() is not None and "TORCHELASTIC_RUN_ID" in env:
        launcher, world = "fabric run" if fabric_cli_used() else "torchrun", int(env["WORLD_SIZE"])
        local = int(env.get("LOCAL_WORLD_SIZE", world))
        if world % local:
            raise UserError(f"torchrun started {world} processes in all but {local} on this machine, which does not "
                            f"divide them: launch the same --nproc_per_node on every node")
    elif slurm is not None and not ("RANK" in env or "LOCAL_RANK" in env):
        launcher, (_, world, nodes) = "srun", slurm
        if world % nodes:
            raise UserError(f"srun started {world} tasks on {nodes} nodes, which does not divide them: ask for the same "
                            f"--ntasks-per-node on every node")
        local = world // nodes
    else:   # one process, or none launched: `fabric run --devices 1` still names the run's settings
        return fabric_cli_train_config(train) if fabric_cli_used() else train
    if train.devices not in (1, local):
        raise UserError(f"train.devices={train.devices} but {launcher} started {local} processes per machine: drop "
                        f"train.devices or set it to {local}")
    nodes = world // local
    if train.num_nodes not in (1, nodes):
        raise UserError(f"train.num_nodes={train.num_nodes} but {launcher} launched {nodes} node(s): drop "
                        f"train.num_nodes or set it to {nodes}")
    strategy = "ddp" if train.strategy in ("auto", "ddp_spawn") else train.strategy
    train = dataclasses.replace(train, devices=local, num_nodes=nodes, strategy=strategy)
    return fabric_cli_train_config(train) if fabric_cli_used() else train


def fabric_cli_used() -> bool:
    """Whether Lightning's ``fabric run`` started this process (it launches through torchrun and passes its
    options in ``LT_*`` variables)."""
    return os.environ.get("LT_CLI_USED", "0") == "1"


# fabric run --precision names -> the train.precision they mean
_CLI_PRECISION = {"32": "32-true", "16": "16-mixed", "bf16": "bf16-mixed", "64": "64-true"}


def fabric_cli_train_config(train: TrainConfig) -> TrainConfig:
    """``fabric run``'s --accelerator, --precision and --strategy as the run's ``train.*`` settings (a recipe or
    override that names another value is one clear line). Its --strategy may be ``ddp`` or ``fsdp``
    (polyjepa's per-block FSDP2, as ``train.strategy=fsdp``)."""
    import dataclasses

    env, changes = os.environ, {}

    def take(key: str, value: str, current: str, free: tuple[str, ...]) -> None:
        if current not in (*free, value):
            raise UserError(f"fabric run --{key} {env['LT_' + key.upper()]} but train.{key}={current}: drop one of "
                            f"them (fabric run's option is taken when train.{key} is left at auto)")
        changes[key] = value

    if "LT_ACCELERATOR" in env:
        take("accelerator", env["LT_ACCELERATOR"], train.accelerator, ("auto",))
    if "LT_PRECISION" in env:
        take("precision", _CLI_PRECISION.get(env["LT_PRECISION"], env["LT_PRECISION"]), train.precision, ("auto",))
    if "LT_STRATEGY" in env:
        strategy = env["LT_STRATEGY"]
        if strategy not in ("ddp", "fsdp"):
            raise UserError(f"fabric run --strategy {strategy}: polyjepa trains with ddp or fsdp (its per-block "
                            f"FSDP2); pass one of those, or drop --strategy")
        take("strategy", strategy, train.strategy, ("auto", "ddp") if strategy == "fsdp" else ("auto",))
    return dataclasses.replace(train, **changes)


def wait_for_run_dir(out: str, since: float, timeout: float = 600.0):
    """(run_dir, config, run.json) once rank 0 of this launch has written the run directory ``out``."""
    run_dir, launch = Path(out), launch_id()
    deadline = time.time() + timeout
    while time.time() < deadline:
        record = run_dir / "run.json"
        try:
            fresh = record.stat().st_mtime >= since - 30 and json.loads(record.read_text()).get("launch") == launch
        except (OSError, ValueError):
            fresh = False
        if fresh and (run_dir / "config.yaml").exists():
            return open_run(run_dir)
        time.sleep(0.2)
    raise UserError(f"rank 0 did not write the run directory {run_dir} within {timeout:.0f} s: see its error")


class _Same:
    """A picklable 'build' that hands back the given module (trained in place when single-process)."""

    shares_module = True   # the training loop copies it before sharding it

    def __init__(self, module):
        self.module = module

    def __call__(self):
        return self.module


def train_method(method, x: np.ndarray, *, train: TrainConfig | None = None, run_dir: str | Path | None = None,
                 augment=None, seed: int = 0, monitor=None, progress: bool = True) -> dict:
    """Train a method built from parts (e.g. ``build_method`` or your own ``JEPA(...)``) on arrays.

    Args:
        method: a module with ``loss(batch)``/``forward``, ``masker``, ``trainable_modules()``,
            ``update_target(step, total)`` (returns the EMA momentum, or None without a teacher).
        x: (n, ...) float32 training inputs, already normalised, or a lazy source (``data.stream.ImageFolderStream``).
        train: optimisation settings (default ``TrainConfig()``).
        run_dir: where checkpoints and metrics.csv go (default: a new temporary folder).
    Returns the training record; ``method`` holds the trained weights afterwards.
    """
    import tempfile

    from .train.checkpoint import load_latest_checkpoint
    from .train.loop import TrainJob, fit

    if not hasattr(x, "sample_shape"):  # an array (a lazy source such as ImageFolderStream is taken as it is)
        x = np.ascontiguousarray(x, dtype=np.float32)
    run_dir = Path(run_dir) if run_dir is not None else Path(tempfile.mkdtemp(prefix="polyjepa-"))
    run_dir.mkdir(parents=True, exist_ok=True)
    train = train or TrainConfig()
    record = fit(TrainJob(build=_Same(method), x_train=x, train=train, run_dir=str(run_dir), seed=seed,
                          augment=augment, monitor=monitor, progress=progress))
    if record["world_size"] > 1:  # other processes (or a sharded copy) trained: take the final weights
        method.load_state_dict(load_latest_checkpoint(run_dir / "checkpoints")[1])
    return record


def _last_metric(run_dir: Path, name: str) -> float | None:
    import csv

    with open(run_dir / "metrics.csv", newline="") as f:
        vals = [float(r[name]) for r in csv.DictReader(f) if r.get(name) not in (None, "")]
    return vals[-1] if vals else None


def load_run_method(run_dir: Path, cfg: DictConfig | None = None, info: dict | None = None):
    """(method with the run's last weights, config, run.json) of a run directory."""
    from .build import build_method
    from .train.checkpoint import load_latest_checkpoint, load_model_state

    if cfg is None or info is None:
        run_dir, cfg, info = open_run(run_dir)
    method = build_method(cfg, tuple(info["input_shape"]), info["seed"], info.get("meta"))
    found = load_latest_checkpoint(Path(run_dir) / "checkpoints")
    if found is None:
        raise UserError(f"{run_dir} has no checkpoint yet: train it first (or resume it with --resume)")
    path, model_state, _, _ = found
    load_model_state(method, model_state, path)
    warn_if_diverged(Path(run_dir), path)
    return method.eval(), cfg, info


def warn_if_diverged(run_dir: Path, checkpoint: Path | None = None) -> None:
    """Warn that a run's training stopped on a NaN/inf loss, so its weights are those of an earlier step."""
    marker = run_dir / DIVERGED
    if not marker.exists():
        return
    try:
        step = json.loads(marker.read_text()).get("step")
    except (OSError, ValueError):
        step = None
    at = f" at step {step}" if step is not None else ""
    using = f"; these are the weights of its last good checkpoint {checkpoint.name}" if checkpoint is not None else ""
    warn(f"the run {run_dir} diverged{at} (the loss became NaN/inf){using}: resume it with a lower learning "
         f"rate, e.g. polyjepa pretrain --resume {run_dir} train.lr=1e-4")


def probe_run(run_dir: str, data: str | None = None, echo=print) -> dict:
    """Re-evaluate a run's encoder (on its own data split, or on ``data``) with baselines; prints the table."""
    from .eval.evaluate import evaluate

    run_dir, cfg, info = open_run(run_dir)
    method, cfg, info = load_run_method(run_dir, cfg, info)
    prepared = prepare_run_data(cfg, info, data)
    source = data if data is not None else cfg.data.source
    _check_shape(prepared.x_train.shape[1:], info)
    if prepared.y_train is None:
        raise UserError(f"{source} has no labels: probing needs labelled data: pass a labelled "
                        f"set with --data (a label array or class sub-folders, as the docs page of its modality says)")
    eval_cfg = dataclass_from(cfg, "eval", EvalConfig)
    random_encoder = build_random(cfg, info)
    from .data.prepare import evaluation_sample

    split_seed = dataclass_from(cfg, "data", DataConfig).split_seed
    ev, sampled = evaluation_sample(prepared, eval_cfg.max_samples, seed=split_seed, max_bytes=eval_cfg.max_bytes)
    results = evaluate(method.encoder(), ev, eval_cfg, random_encoder=random_encoder, seed=info["seed"])
    summary = {"recipe": cfg.name, "data": source, "n_train": len(prepared.x_train),
               "n_test": len(prepared.x_test), **{k: results[k] for k in ("rankme", "probe", "baselines")}}
    if sampled:
        summary["eval_sample"] = sampled
    echo(format_table(summary))
    return summary


def prepare_run_data(cfg, info: dict, data: str | None = None):
    """The run's split of ``data`` (default: the run's own data), normalised with the run's statistics."""
    from .data.prepare import prepare

    data_cfg = dataclass_from(cfg, "data", DataConfig)
    if data is not None:
        data_cfg.source = data
    else:
        check_run_data(data_cfg.source)
    return prepare(data_cfg, run_stats(info), part_kwargs(cfg, "data"))


def check_run_data(source) -> None:
    """UserError naming the fix when a run's own data path (kept as given, often relative) is not found here."""
    src = str(source)
    if not Path(src).exists() and (Path(src).suffix or "/" in src or os.sep in src):
        raise UserError(f"the run's data {src!r} is not found from {os.getcwd()} (a relative path is kept as it was "
                        f"given): run from the folder it was trained in, or pass --data PATH")


def _check_batches(method, x, train_cfg, augment, seed: int) -> None:
    """Build the training batches as training will (``MaskedBatches`` checks the batch size against the data
    and processes) and draw the first one and one at the end of a curriculum (the draws depend only on seed
    and step), so a bad batch size or masks that cannot fit the token grid fail now, not in the loop."""
    from .data.batches import MaskedBatches, check_accumulate, split_batch

    check_accumulate(method, train_cfg.accumulate)
    make_batch = getattr(method, "make_batch", None)
    from .data.stream import as_source

    batches = MaskedBatches(as_source(x), batch_size=train_cfg.batch_size, masker=None if make_batch else
                            method.masker, make_batch=make_batch, augment=augment, seed=seed,
                            world_size=max(1, int(train_cfg.devices or 1)) * max(1, int(train_cfg.num_nodes or 1)),
                            total_steps=1)
    try:
        first, _ = batches[0], batches[1]  # progress 0 and 1
    except ValueError as e:
        raise UserError(f"cannot draw a training batch: {e}") from None
    split_batch(first, train_cfg.accumulate)


def _check_readout(encoder, x, eval_cfg) -> None:
    """Embed two samples with the run's eval.pool/eval.layers, so a read-out the encoder lacks fails now,
    not at the first monitor step."""
    from .eval.embed import embed_array

    if eval_cfg.layers < 1:
        raise UserError(f"eval.layers={eval_cfg.layers}: read out at least 1 layer (the last), e.g. eval.layers=1")
    try:
        embed_array(encoder, x, pool=eval_cfg.pool, layers=eval_cfg.layers)
    except ValueError as e:
        raise UserError(f"eval.pool={eval_cfg.pool!r}, eval.layers={eval_cfg.layers}: {e}") from None


def build_random(cfg, info):
    from .build import build_method

    return build_method(cfg, tuple(info["input_shape"]), info["seed"], info.get("meta")).encoder()


def run_stats(info: dict) -> dict:
    """The normalisation statistics and data facts a run was trained with (from run.json)."""
    return {"mean": info.get("mean"), "std": info.get("std"), "meta": info.get("meta", {})}


def _check_shape(shape, info):
    if tuple(shape) != tuple(info["input_shape"]):
        raise UserError(f"the data have per-sample shape {tuple(shape)} but the run was trained on "
                        f"{tuple(info['input_shape'])}: use data of the training shape")


def embed_run(run_dir: str, data: str, out: str | None = None, *, stream: bool | None = None,
              batch_size: int = 256) -> np.ndarray:
    """Embed every sample of ``data`` (in file order; an official test part follows the training part),
    normalised as in training; with ``out``, written to that .npy file (atomically) and returned memory-mapped.

    ``stream`` (None: follow the run's ``data.stream``) reads the data lazily, ``batch_size`` samples at a time,
    and writes each batch's rows into ``out`` through a memory map, so memory holds one batch
    (:meth:`polyjepa.export.pretrained.PretrainedEncoder.embed`)."""
    from .export.pretrained import PretrainedEncoder, check_out_path

    if out is not None:
        check_out_path(out)  # before the run is loaded
    # the run's loader, fitted facts and statistics
    return PretrainedEncoder.from_run(run_dir).embed(data, out=out, stream=stream, batch_size=batch_size)


def _bytes(n: int) -> str:
    """A byte count for people: 1.0 GiB, 12.5 MiB, 640 B."""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def format_table(summary: dict) -> str:
    """The final comparison as a plain-text table."""
    rows = [("pretrained encoder", summary.get("probe", {}), summary.get("rankme"))]
    b = summary.get("baselines", {})
    if "random_init" in b:
        rows.append(("random-init encoder", b["random_init"], b["random_init"].get("rankme")))
    if "raw" in b:
        rows.append(("raw input", b["raw"], b["raw"].get("rankme")))

    from .eval.probes import probe_metric, probe_score

    def acc(p, k):
        return f"{probe_score(p[k]):.4f}" if k in p else "  -   "

    lines = [f"\n{summary['recipe']} on {summary['data']}: {summary['n_train']} train / {summary['n_test']} test"]
    sample = summary.get("eval_sample")
    if sample and (sample["train"] < sample["of_train"] or sample["test"] < sample["of_test"]):
        why = "streamed data" if sample.get("streamed") else "eval.max_samples"
        if sample.get("max_bytes"):
            per = max(sample["sample_bytes"], 1)
            why += (f"; fewer, as eval.max_bytes={_bytes(sample['max_bytes'])} holds {sample['max_bytes'] // per} "
                    f"samples of {_bytes(per)}")
        lines.append(f"probes on a stratified sample of {sample['train']} train / {sample['test']} test ({why})")
    skipped = summary.get("skipped_files")
    if skipped and skipped["count"]:
        lines.append(f"skipped {skipped['count']} unreadable file(s) while streaming, first {skipped['first'][0]} "
                     f"(all in skipped.tsv in the run directory)")
    if "steps" in summary:
        lines.append(f"trained {summary['steps']} steps in {summary['train_seconds'] / 60:.1f} min "
                     f"({summary['samples_per_second']:.0f} samples/s); whole run {summary['seconds'] / 60:.1f} min")
    phases = summary.get("phase_seconds")
    if phases and "evaluation" in phases:
        cached = summary.get("baselines_cached") or []
        lines.append(f"evaluation {phases['evaluation'] / 60:.1f} min"
                     + (f" ({' and '.join(c.replace('_', '-') for c in cached)} baseline read from the cache)"
                        if cached else ""))
    lines.append(f"{'representation':<22} {'linear':>7} {'kNN':>7} {'RankMe':>7}")
    for name, p, rk in rows:
        lines.append(f"{name:<22} {acc(p, 'linear'):>7} {acc(p, 'knn'):>7} {rk if rk is None else f'{rk:7.1f}'}")
    metric = probe_metric(summary.get("probe", {}).get("linear", {}))
    if metric == "R^2":
        lines.append("(a continuous target: R^2 of ridge regression and of a kNN mean; RMSE in summary.json)")
    elif metric == "accuracy":
        k = summary.get("probe", {}).get("knn", {}).get("k", "k")
        lines.append(f"(test-split accuracy of logistic regression (linear) and {k}-nearest neighbours (kNN) on frozen "
                     f"features; pretraining pays where its row beats the untrained encoder and the raw input)")
        unseen = summary.get("probe", {}).get("linear", {}).get("unseen_test_fraction")
        if unseen:
            lines.append(f"warning: {unseen:.0%} of the test samples have a class that no training sample has, so no "
                         f"probe can get them right: hold out fewer groups (data.test_groups) or use data with "
                         f"every class on both sides")
    verdict = _verdict(summary)
    if verdict:
        lines.append(verdict)
    return "\n".join(lines)


def _verdict(summary: dict) -> str | None:
    """One line: the pretrained encoder's linear-probe margin over each baseline, in points."""
    from .eval.probes import probe_metric, probe_score

    ours = summary.get("probe", {}).get("linear")
    if not ours or probe_metric(ours) != "accuracy":
        return None
    names = {"random_init": "the random-init encoder", "raw": "the raw input"}
    parts = []
    for key, name in names.items():
        base = summary.get("baselines", {}).get(key, {}).get("linear")
        if base and probe_metric(base) == "accuracy":
            diff = 100 * (probe_score(ours) - probe_score(base))
            parts.append(f"{diff:+.1f} points {'over' if diff >= 0 else 'under'} {name}")
    return f"linear probe: pretrained encoder {', '.join(parts)}" if parts else None
