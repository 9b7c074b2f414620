"""TensorBoard event files beside metrics.csv (``train.logger=tensorboard``), through Fabric's logger."""
from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

from ..errors import UserError

LOGGERS = ("csv", "tensorboard")
FOLDER = "tensorboard"


def check_logger(name: str) -> None:
    """A clear error for an unknown ``train.logger`` or a missing TensorBoard writer, before a run starts."""
    if name not in LOGGERS:
        raise UserError(f"config key 'train.logger' must be one of {', '.join(LOGGERS)}, got {name!r}")
    if name == "tensorboard" and find_spec("tensorboard") is None and find_spec("tensorboardX") is None:
        raise UserError("train.logger=tensorboard needs tensorboard (or tensorboardX): "
                        "pip install 'polyjepa[tensorboard]'")


class TensorBoardWriter:
    """Writes each metrics row's numbers as scalars under ``run_dir/tensorboard`` (flushed per row, so a
    killed run keeps them); a resumed run drops the events after its checkpoint's step, as metrics.csv does."""

    def __init__(self, run_dir: Path, resume_step: int | None = None):
        check_logger("tensorboard")
        from lightning_fabric.loggers import TensorBoardLogger

        extra = {} if resume_step is None else {"purge_step": resume_step + 1}
        self.logger = TensorBoardLogger(root_dir=str(run_dir), name=FOLDER, version="", default_hp_metric=False,
                                        **extra)

    def log(self, step: int, metrics: dict) -> None:
        scalars = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        self.logger.log_metrics(scalars, step=step)
        self.logger.experiment.flush()

    def close(self) -> None:
        self.logger.finalize("success")
