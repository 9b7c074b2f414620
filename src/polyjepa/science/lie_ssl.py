"""Self-supervised learning on PDE solutions with Lie-symmetry views, and the coefficient-regression protocol.

``polyjepa pretrain lie-burgers`` (and ``lie-heat``, ``lie-kdv``) solves a seeded data set, trains VICReg between
two symmetry views of each trajectory, and regresses the equation's coefficient (or the initial condition's
amplitudes) from the frozen embedding with ridge regression, next to the same network trained supervised on
the targets, a random-init network, and ridge on raw values and on Fourier magnitudes. Metric: NMSE on the
held-out trajectories (mean squared error over the targets' variance; 1.0 is predicting the mean).
(Mialon et al., "Self-supervised learning with Lie symmetries for partial differential equations", NeurIPS 2023.)
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from ..errors import UserError
from ..train.schedules import set_lr, warmup_cosine_factor
from ..train.stages import StageCheckpoints, open_stage_run
from ..objectives.vicreg import vicreg_loss
from .lie_augment import LieAugment
from .pde_data import PDEData, generate
from .pde_encoder import FieldEncoder, field_channels
from .symmetries import Field


@dataclass
class LieVICReg:
    """The network and the objective (the recipe's ``method`` section): encoder width and embedding ``dim``,
    a ``projector``-wide two-layer expander, VICReg weights."""

    width: int = 16
    dim: int = 128
    blocks: int = 4
    projector: int = 512
    sim_weight: float = 25.0
    var_weight: float = 25.0
    cov_weight: float = 1.0
    ablation: bool = False      # also train VICReg on crops and space shifts alone (no boost, no scaling)

    def __post_init__(self):
        for key in ("width", "dim", "blocks", "projector"):
            v = getattr(self, key)
            if not (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
                raise UserError(f"method.{key}={v!r} must be a whole number >= 1")

    def encoder(self) -> FieldEncoder:
        return FieldEncoder(width=self.width, dim=self.dim, blocks=self.blocks)

    def expander(self) -> nn.Module:
        return nn.Sequential(nn.Linear(self.dim, self.projector), nn.BatchNorm1d(self.projector), nn.ReLU(),
                             nn.Linear(self.projector, self.projector))


class _Inputs:
    """Stored trajectories as fields, and the fixed scales that turn a field into encoder input."""

    def __init__(self, u: np.ndarray, spec: PDEData, u_scale: float):
        self.u = torch.as_tensor(u)
        self.spec, self.u_scale = spec, u_scale

    def field(self, idx) -> Field:
        u = self.u[idx]
        b = u.shape[0]
        return Field(u=u, length=torch.full((b,), self.spec.length), dt=torch.full((b,), self.spec.dt),
                     t0=torch.zeros(b))

    def channels(self, field: Field) -> torch.Tensor:
        return field_channels(field, u_scale=self.u_scale, length=self.spec.length,
                              duration=self.spec.dt * self.spec.steps).float()


def train_vicreg(inputs: _Inputs, method: LieVICReg, augment: LieAugment, *, steps: int, batch_size: int,
                 lr: float, seed: int, warmup: float = 0.1, log=None, ckpts: StageCheckpoints | None = None,
                 stage: str = "vicreg") -> FieldEncoder:
    """VICReg between two independent symmetry views of each trajectory; returns the trained encoder.

    With ``ckpts`` the training is stage ``stage`` of the run's checkpoints (modules ``<stage>_encoder`` and
    ``<stage>_expander``): finished before a stop, it is loaded; stopped midway, it continues from its checkpoint."""
    torch.manual_seed(seed)
    encoder, expander = method.encoder(), method.expander()
    ckpts = ckpts or StageCheckpoints(None)
    modules = {f"{stage}_encoder": encoder, f"{stage}_expander": expander}
    if ckpts.skip(stage, modules) is not None:
        return encoder.eval()
    params = list(encoder.parameters()) + list(expander.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(seed)
    n, eq = len(inputs.u), inputs.spec.equation
    pos = ckpts.begin(stage, modules, opt, generators={"views": gen})
    for step in range(pos.step, steps):
        set_lr(opt, lr * warmup_cosine_factor(step, steps, int(warmup * steps)))
        idx = torch.randint(0, n, (batch_size,), generator=gen)
        field = inputs.field(idx)
        views = [inputs.channels(augment(field, eq, gen)) for _ in range(2)]
        z = expander(encoder(torch.cat(views)))
        out = vicreg_loss(z[:batch_size], z[batch_size:], sim_weight=method.sim_weight,
                          var_weight=method.var_weight, cov_weight=method.cov_weight)
        if not torch.isfinite(out["loss"]):
            raise UserError(f"VICReg loss is {out['loss'].item()} at step {step}: lower train.lr")
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if log is not None and (step % 200 == 0 or step == steps - 1):
            log(f"vicreg step {step}: loss {out['loss'].item():.3f} (inv {out['invariance'].item():.3f}, "
                f"var {out['variance'].item():.3f}, cov {out['covariance'].item():.3f})")
        pos.advance()
    pos.finish()
    return encoder.eval()


def train_supervised(inputs: _Inputs, y: np.ndarray, method: LieVICReg, *, crop: int, steps: int,
                     batch_size: int, lr: float, seed: int, warmup: float = 0.1, ckpts: StageCheckpoints | None = None,
                     stage: str = "supervised") -> tuple[FieldEncoder, nn.Linear]:
    """The same encoder with a linear head, trained with MSE on standardised targets from random windows and
    space shifts (the views that leave every target unchanged). ``ckpts``, ``stage``: as for :func:`train_vicreg`
    (modules ``<stage>_encoder``, ``<stage>_head``)."""
    torch.manual_seed(seed)
    encoder, head = method.encoder(), nn.Linear(method.dim, y.shape[1])
    ckpts = ckpts or StageCheckpoints(None)
    modules = {f"{stage}_encoder": encoder, f"{stage}_head": head}
    if ckpts.skip(stage, modules) is not None:
        return encoder.eval(), head.eval()
    params = list(encoder.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(seed)
    yt = torch.as_tensor(y, dtype=torch.float32)
    view = LieAugment(crop=crop, space_shift=True, galilean=0.0, scale=0.0)
    pos = ckpts.begin(stage, modules, opt, generators={"views": gen})
    for step in range(pos.step, steps):
        set_lr(opt, lr * warmup_cosine_factor(step, steps, int(warmup * steps)))
        idx = torch.randint(0, len(yt), (batch_size,), generator=gen)
        x = inputs.channels(view(inputs.field(idx), inputs.spec.equation, gen))
        loss = nn.functional.mse_loss(head(encoder(x)), yt[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        pos.advance()
    pos.finish()
    return encoder.eval(), head.eval()


@torch.no_grad()
def window_features(encoder: nn.Module, inputs: _Inputs, crop: int, batch: int = 256) -> np.ndarray:
    """Embeddings (n, dim) of each trajectory's first ``crop`` rows."""
    out = []
    for s in range(0, len(inputs.u), batch):
        idx = torch.arange(s, min(s + batch, len(inputs.u)))
        field = inputs.field(idx).crop(torch.zeros(len(idx), dtype=torch.long), crop)
        out.append(encoder(inputs.channels(field)).numpy())
    return np.concatenate(out)


def nmse(pred: np.ndarray, y: np.ndarray) -> float:
    """Mean over targets of MSE / variance of the true values (1.0: no better than the mean)."""
    return float(np.mean(np.mean((pred - y) ** 2, axis=0) / np.var(y, axis=0)))


def ridge_nmse(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray) -> float:
    """NMSE of ridge regression on standardised features, alpha by leave-one-out on the train set."""
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 4, 8))).fit(train_x, train_y)
    return nmse(model.predict(test_x).reshape(test_y.shape), test_y)


def fourier_magnitudes(u: np.ndarray) -> np.ndarray:
    """|rfft| along x of every row, flattened: (n, T * (N//2+1)), invariant to space shifts."""
    return np.abs(np.fft.rfft(u, axis=-1)).reshape(len(u), -1)


def lie_ssl_benchmark(spec: PDEData, method: LieVICReg, augment: LieAugment, *, steps: int, batch_size: int,
                      lr: float, seed: int = 0, ablation: bool = False, log=None,
                      ckpts: StageCheckpoints | None = None) -> dict:
    """Everything the comparison needs: data, the four representations, the supervised network; returns rows.

    With ``ckpts`` the networks are trained as the stages ``vicreg``, ``vicreg_shifts`` (the ablation),
    ``supervised`` and ``supervised_few`` of the run's checkpoints, so a stopped run continues where it stopped."""
    t0 = time.time()
    ckpts = ckpts or StageCheckpoints(None)
    augment.check(spec.equation, spec.steps)
    data = generate(spec)
    u_scale = float(data["u_train"].std())
    tr, te = _Inputs(data["u_train"], spec, u_scale), _Inputs(data["u_test"], spec, u_scale)
    y_mean, y_std = data["y_train"].mean(0), data["y_train"].std(0) + 1e-8
    ytr, yte = (data["y_train"] - y_mean) / y_std, (data["y_test"] - y_mean) / y_std
    crop = augment.crop
    few = spec.few_labels
    rows = []

    def probe(name: str, ftr: np.ndarray, fte: np.ndarray, trained: float = 0.0) -> None:
        rows.append({"representation": name, "nmse": ridge_nmse(ftr, ytr, fte, yte),
                     "nmse_few": ridge_nmse(ftr[:few], ytr[:few], fte, yte), "dim": ftr.shape[1],
                     "train_seconds": trained})
        if log:
            log(f"{name}: NMSE {rows[-1]['nmse']:.4f} ({spec.n_train} labels), {rows[-1]['nmse_few']:.4f} ({few})")

    raw_tr, raw_te = data["u_train"][:, :crop], data["u_test"][:, :crop]
    probe("raw values (ridge)", raw_tr.reshape(len(raw_tr), -1), raw_te.reshape(len(raw_te), -1))
    probe("Fourier magnitudes (ridge)", fourier_magnitudes(raw_tr), fourier_magnitudes(raw_te))
    torch.manual_seed(seed)
    rand = method.encoder().eval()
    probe("random-init encoder (ridge)", window_features(rand, tr, crop), window_features(rand, te, crop))
    variants = [("VICReg + Lie symmetries (ridge)", augment, "vicreg")]
    if ablation:
        variants.append(("VICReg, crops + shifts only (ridge)", LieAugment(crop=crop, space_shift=True,
                                                                          galilean=0.0, scale=0.0), "vicreg_shifts"))
    encoders = {}
    for name, aug, stage in variants:
        enc = train_vicreg(tr, method, aug, steps=steps, batch_size=batch_size, lr=lr, seed=seed, log=log,
                           ckpts=ckpts, stage=stage)
        probe(name, window_features(enc, tr, crop), window_features(enc, te, crop), ckpts.finished[stage]["seconds"])
        encoders[name] = enc
    sup = {"representation": "supervised, same network (its own head)", "dim": method.dim}
    for key, n_lab, stage in (("nmse", spec.n_train, "supervised"), ("nmse_few", few, "supervised_few")):
        lab = _Inputs(data["u_train"][:n_lab], spec, u_scale)
        enc, head = train_supervised(lab, ytr[:n_lab], method, crop=crop, steps=steps, batch_size=batch_size,
                                     lr=lr, seed=seed, ckpts=ckpts, stage=stage)
        with torch.no_grad():
            sup[key] = nmse(head(torch.as_tensor(window_features(enc, te, crop))).numpy(), yte)
        sup["train_seconds"] = sup.get("train_seconds", 0.0) + ckpts.finished[stage]["seconds"]
    rows.append(sup)
    if log:
        log(f"supervised: NMSE {sup['nmse']:.4f} ({spec.n_train} labels), {sup['nmse_few']:.4f} ({few})")
    built = {"encoder_parameters": sum(p.numel() for p in rand.parameters()), "embedding_dim": rand.dim,
             "input": [3, crop, spec.grid], "targets": list(spec.targets), "u_scale": u_scale}
    return {"rows": rows, "built": built, "seconds": time.time() - t0, "encoders": encoders,
            "spec": asdict(spec), "augment": asdict(augment), "method": asdict(method),
            "train": {"steps": steps, "batch_size": batch_size, "lr": lr, "seed": seed}}


def format_table(summary: dict) -> str:
    """The comparison as a Markdown table (NMSE with all train labels and with the few-label subset)."""
    spec = summary["spec"]
    lines = [f"| representation | NMSE, {spec['n_train']} labels | NMSE, {spec['few_labels']} labels | features "
             f"| training s |", "|---|---:|---:|---:|---:|"]
    for r in summary["rows"]:
        lines.append(f"| {r['representation']} | {r['nmse']:.4f} | {r['nmse_few']:.4f} | {r['dim']} | "
                     f"{r['train_seconds']:.0f} |")
    return "\n".join(lines)


def run_lie_ssl(cfg, *, out: str | None = None, seed: int = 0, echo=print, write: bool = True,
                resume: bool = False) -> dict:
    """``polyjepa pretrain`` for a Lie-symmetry recipe: solve, pretrain, regress, compare; returns the summary.

    With ``write`` the run directory is made before training (config.yaml, run.json) and every network's
    training is checkpointed every ``train.checkpoint_every`` steps; ``resume`` (``polyjepa pretrain --resume
    RUN_DIR``, ``out`` the run directory) continues from the newest checkpoint to the weights and table of a
    run that never stopped."""
    from ..config import TrainConfig, dataclass_from, part_kwargs

    spec = PDEData(**part_kwargs(cfg, "pde"))
    augment = LieAugment(**part_kwargs(cfg, "symmetries"))
    method = LieVICReg(**part_kwargs(cfg, "method"))
    augment.check(spec.equation, spec.steps)
    t = dataclass_from(cfg, "train", TrainConfig)
    steps = int(t.max_steps) if t.max_steps is not None else 1000
    if t.threads:
        torch.set_num_threads(int(t.threads))
    name = str(cfg.get("name", "lie-ssl"))
    run_dir, ckpts = open_stage_run(cfg, out=out, name=name, seed=seed, resume=resume, write=write, echo=echo)
    summary = lie_ssl_benchmark(spec, method, augment, steps=steps, batch_size=t.batch_size, lr=t.lr, seed=seed,
                                ablation=method.ablation, log=echo, ckpts=ckpts)
    encoders = summary.pop("encoders")
    table = format_table(summary)
    if run_dir is not None:
        from ..runner import write_run_files

        summary["run_dir"] = str(run_dir)
        write_run_files(run_dir, summary, {"encoder": next(iter(encoders.values()))}, f"# {name}\n\n{table}\n")
    echo(table)
    return summary


run_lie_ssl.resumable = True   # polyjepa pretrain --resume hands its run directories back to this runner
