"""Checkpoints for a runner's own training loop: several stages trained one after the other in one
step-numbered sequence, each resumable from its last checkpoint.

A method that trains with its own loop (a codec's two stages, a benchmark's SSL and supervised networks, a
control recipe's policy per training seed) keeps its run in ``run_dir/checkpoints/step-*`` in the library's
safetensors + JSON format (:mod:`polyjepa.train.checkpoint`; nothing is unpickled). A checkpoint holds the
weights of every module trained so far (``<module>.<name>``), the optimizer of the stage in training and,
in its JSON state, the finished stages' records and the position of the current one: its step, the state
of its random generators and of torch's global generator, and what the loop keeps besides (the epoch's
data order, the losses logged so far). A resumed run therefore takes the same steps as one that never
stopped::

    ckpts = StageCheckpoints(run_dir, every=200, keep=2)     # run_dir None: no files, same training
    ckpts.load()                                             # on a resume: the newest intact checkpoint
    for stage in ("pretrain", "finetune"):
        modules = build(stage)                               # same seeds as the run that stopped
        if ckpts.skip(stage, modules):                       # finished before the stop: weights loaded
            continue
        opt = make_optimizer(modules)
        pos = ckpts.begin(stage, modules, opt, generators={"data": g})
        for step in range(pos.step, total):
            ...                                              # one step
            pos.advance(losses=...)                          # checkpoint every ``every`` steps
        pos.finish()
"""
from __future__ import annotations

import base64
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import UserError


def generator_state(g: torch.Generator | None = None) -> str:
    """The state of ``g`` (torch's global CPU generator when None) as base64 text for a JSON file."""
    state = torch.get_rng_state() if g is None else g.get_state()
    return base64.b64encode(state.numpy().tobytes()).decode("ascii")


def set_generator_state(g: torch.Generator | None, text: str) -> None:
    """Set ``g`` (torch's global CPU generator when None) to a state from :func:`generator_state`."""
    state = torch.from_numpy(np.frombuffer(base64.b64decode(text), dtype=np.uint8).copy())
    torch.set_rng_state(state) if g is None else g.set_state(state)


class StagePosition:
    """Where one stage stands: ``step`` steps done, ``state`` what its loop keeps (JSON), and the checkpoint
    it writes every ``every`` steps. ``resumed`` says the stage continues a checkpoint."""

    def __init__(self, owner: "StageCheckpoints", stage: str, module_names: list[str],
                 optimizer: torch.optim.Optimizer | None, generators: dict[str, torch.Generator], step: int,
                 state: dict, seconds: float, resumed: bool):
        self.owner, self.stage, self.optimizer, self.generators = owner, stage, optimizer, generators
        self.module_names = module_names
        self.step, self.state, self.resumed = step, state, resumed
        self._seconds_before, self._t0 = seconds, time.time()

    @property
    def seconds(self) -> float:
        """Training time of this stage, over every resume."""
        return self._seconds_before + time.time() - self._t0

    def progress(self) -> dict:
        """The JSON a checkpoint keeps of this stage: its step, generators, global generator, time and state."""
        return {**self.state, "steps": self.step, "seconds": self.seconds, "torch_rng": generator_state(),
                "generators": {k: generator_state(g) for k, g in self.generators.items()}}

    def advance(self, **state) -> None:
        """One step done: update the loop's ``state`` and write a checkpoint when one is due."""
        self.step += 1
        self.state.update(state)
        every = self.owner.every
        if every > 0 and self.step % every == 0:
            self.owner.save(dict(self.owner.modules), self.optimizer, self.progress(), self.stage)

    def finish(self, *, keep: bool = True, **record) -> dict:
        """The stage is trained: record it (steps, seconds, ``record``, the global generator's state now) and
        write a checkpoint that holds its final weights. Returns the record.

        ``keep`` False: the stage's modules are not needed again (what the run wants of them goes into the
        record), so they leave the checkpoints, and no checkpoint is written now: the next one records the
        stage, with whatever the caller adds to its record (``owner.finished[stage]``) before then. A run
        stopped before that trains the stage again from its last checkpoint."""
        done = {"steps": self.step, "seconds": self.seconds, **record, "torch_rng": generator_state()}
        self.owner.finished[self.stage] = done
        self.owner.current, self.owner.resume = None, None
        if keep:
            self.owner.save(dict(self.owner.modules), None, None, None)
        else:
            for name in self.module_names:
                self.owner.modules.pop(name, None)
            self.owner.pending = True
        return done


class StageCheckpoints:
    """The checkpoints of a run trained in stages (``run_dir/checkpoints``); ``run_dir`` None keeps none and
    trains the same way.

    Args:
        run_dir: the run directory, or None for a run that writes nothing.
        every: steps of a stage between checkpoints (0: only at the end of each stage).
        keep: checkpoints kept (the newest ones).
        label: the key of the stage in training in a checkpoint's state.json.
    """

    def __init__(self, run_dir: Path | None, *, every: int = 0, keep: int = 2, label: str = "stage"):
        self.dir = None if run_dir is None else Path(run_dir) / "checkpoints"
        self.every = int(every) if run_dir is not None else 0
        self.keep, self.label = int(keep), label
        self.finished: dict[str, dict] = {}
        self.weights: dict[str, dict[str, torch.Tensor]] = {}
        self.modules: dict[str, nn.Module] = {}
        self.current: str | None = None
        self.resume: dict | None = None
        self.path: Path | None = None
        self.pending = False    # a stage finished without a checkpoint of its own (see StagePosition.finish)

    def load(self) -> bool:
        """Read the newest intact checkpoint (a corrupt newer one is skipped with a warning); False when there
        is none."""
        from .checkpoint import load_latest_checkpoint

        if self.dir is None:
            return False
        found = load_latest_checkpoint(self.dir)
        if found is None:
            return False
        self.path, state, optim, meta = found
        for key, value in state.items():
            module, name = key.split(".", 1)
            self.weights.setdefault(module, {})[name] = value
        self.finished = dict(meta.get("finished") or {})
        self.current = meta.get(self.label)
        if self.current is not None:
            if not isinstance(meta.get("progress"), dict):
                raise UserError(f"checkpoint {self.path} lacks the position of stage {self.current!r}: delete it "
                                f"to fall back to an older one, or start the run again")
            self.resume = {"optimizer": optim, "progress": meta["progress"], "path": self.path}
        return True

    def save(self, modules: dict[str, nn.Module], optimizer: torch.optim.Optimizer | None, progress: dict | None,
             stage: str | None) -> None:
        """Write a checkpoint of ``modules`` (every module trained so far), the optimizer and position of
        ``stage`` (None: between stages) and the finished stages' records; nothing when the run writes nothing."""
        from .checkpoint import save_checkpoint

        if self.dir is None:
            return
        self.pending = False
        state = {f"{name}.{k}": v for name, m in modules.items() for k, v in m.state_dict().items()}
        step = sum(int(r["steps"]) for r in self.finished.values()) + (int(progress["steps"]) if progress else 0)
        extra = {self.label: stage, "progress": progress, "finished": self.finished}
        save_checkpoint(self.dir, step, state, None if optimizer is None else optimizer.state_dict(), extra,
                        keep=self.keep)

    def flush(self) -> None:
        """Write a checkpoint between stages if a finished stage's record is not in one yet (call when the
        training is over, so that the newest checkpoint records every stage)."""
        if self.pending:
            self.save(dict(self.modules), None, None, None)

    def _load_weights(self, modules: dict[str, nn.Module]) -> None:
        from .checkpoint import load_model_state

        for name, module in modules.items():
            if "." in name:
                raise ValueError(f"module name {name!r} holds a '.': name checkpointed modules without dots")
            if name in self.weights:    # once: from then on the module holds the newer state
                load_model_state(module, self.weights.pop(name), self.path)
            self.modules[name] = module

    def skip(self, stage: str, modules: dict[str, nn.Module]) -> dict | None:
        """For a stage the stopped run finished: load its weights into ``modules``, set torch's global generator
        to its state at the stage's end, and return the stage's record; None when the stage is still to train."""
        if stage not in self.finished:
            return None
        self._load_weights(modules)
        record = self.finished[stage]
        if "torch_rng" in record:
            set_generator_state(None, record["torch_rng"])
        return record

    def begin(self, stage: str, modules: dict[str, nn.Module], optimizer: torch.optim.Optimizer | None = None, *,
              generators: dict[str, torch.Generator] | None = None, state: dict | None = None) -> StagePosition:
        """Start ``stage`` (its modules built, its optimizer and generators made as in a fresh run), or continue
        it from the checkpoint: weights, optimizer state, generators, torch's global generator and the loop's
        ``state`` (default ``state``) as they were. The optimizer keeps its own learning rate and weight decay,
        so a resume's new ``train.lr`` takes effect."""
        generators = dict(generators or {})
        if self.current != stage or self.resume is None:
            self._load_weights(modules)   # modules of earlier stages: as the newest checkpoint holds them
            return StagePosition(self, stage, list(modules), optimizer, generators, 0, dict(state or {}), 0.0, False)
        self._load_weights(modules)
        progress = self.resume["progress"]
        if optimizer is not None:
            if self.resume["optimizer"] is None:
                raise UserError(f"checkpoint {self.resume['path']} holds no optimizer state for stage {stage!r}: "
                                f"delete it to fall back to an older one, or start the run again")
            groups = [(g["lr"], g.get("weight_decay")) for g in optimizer.param_groups]
            optimizer.load_state_dict(self.resume["optimizer"])
            for g, (lr, wd) in zip(optimizer.param_groups, groups):
                g["lr"] = lr
                if wd is not None:
                    g["weight_decay"] = wd
        saved = progress.get("generators", {})
        missing = sorted(set(generators) - set(saved))
        if missing:
            raise UserError(f"checkpoint {self.resume['path']} lacks the state of generator(s) {missing}: it comes "
                            f"from another version of this run; start the run again")
        for name, g in generators.items():
            set_generator_state(g, saved[name])
        if "torch_rng" in progress:
            set_generator_state(None, progress["torch_rng"])
        keep = {k: v for k, v in progress.items() if k not in ("steps", "seconds", "torch_rng", "generators")}
        pos = StagePosition(self, stage, list(modules), optimizer, generators, int(progress["steps"]),
                            {**(state or {}), **keep},
                            float(progress.get("seconds", 0.0)), True)
        self.current, self.resume = None, None
        return pos


def open_stage_run(cfg, *, out: str | None, name: str, seed: int, resume: bool, write: bool = True, echo=print,
                   info: dict | None = None, label: str = "stage") -> tuple[Path | None, StageCheckpoints]:
    """The run directory and checkpoints of a runner that trains in stages.

    A new run (``write``) gets its directory now, with config.yaml and run.json (``info`` added), so that a
    killed run can be resumed; ``resume`` reopens ``out`` and reads its newest checkpoint, and a run stopped
    before its first checkpoint is started over with a message. ``write`` False: no directory, no checkpoints.
    ``label``: see :class:`StageCheckpoints`.
    """
    import json
    from datetime import datetime

    from ..config import TrainConfig, dataclass_from, to_yaml
    from .checkpoint import atomic_write_text

    t = dataclass_from(cfg, "train", TrainConfig)
    if not write:
        return None, StageCheckpoints(None)
    if resume:
        run_dir = Path(out)
        ckpts = StageCheckpoints(run_dir, every=t.checkpoint_every, keep=t.keep_checkpoints, label=label)
        if ckpts.load():
            echo(f"polyjepa: {run_dir} continues from {ckpts.path.name}" +
                 (f" (stage {ckpts.current}, step {ckpts.resume['progress']['steps']})" if ckpts.current else ""))
        else:
            echo(f"polyjepa: {run_dir} was stopped before its first checkpoint: starting it over")
        return run_dir, ckpts
    from ..runner import new_run_dir

    run_dir = new_run_dir(out, name)
    record = {"recipe": name, "seed": seed, "input_shape": [], **(info or {}),
              "created": datetime.now().isoformat(timespec="seconds")}
    atomic_write_text(run_dir / "config.yaml", to_yaml(cfg))
    atomic_write_text(run_dir / "run.json", json.dumps(record, indent=1))
    return run_dir, StageCheckpoints(run_dir, every=t.checkpoint_every, keep=t.keep_checkpoints, label=label)
