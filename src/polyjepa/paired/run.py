"""Runs of the paired family: load the pairs, build the two towers, train on the library's loop, evaluate
retrieval and probes against random-init towers and raw features + CCA, write the run directory."""
from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from ..config import DataConfig, EvalConfig, TrainConfig, dataclass_from, part_kwargs, to_yaml
from ..errors import UserError
from .data import Pairs
from .method import TwoTower

SCHEMA = "polyjepa-paired-summary/1"


def load_run_pairs(cfg: DictConfig, fitted: dict | None = None) -> Pairs:
    """The recipe's paired data (split and tokenised; with ``fitted``, the run's tokenizer); with
    ``data.stream=true``, side a is a lazy source (the .npz memory-mapped, or av_clips' cache of decoded clips)."""
    import inspect

    from ..data.prepare import _what
    from ..registry import check_option_types, part_builder

    data_cfg = dataclass_from(cfg, "data", DataConfig)
    loader, _ = part_builder("data", cfg)
    options = part_kwargs(cfg, "data")
    check_option_types("data", loader, options)
    if data_cfg.source is None:
        raise UserError(f"no data given for data.loader={data_cfg.loader}: pass --data PATH")
    if data_cfg.stream:
        if "stream" not in inspect.signature(loader).parameters:
            raise UserError(f"data.loader={data_cfg.loader} reads its pairs into memory; data.stream=true works with "
                            f"data.loader=paired (an .npz of images or feature vectors with their texts) and "
                            f"data.loader=av_clips (a folder of videos with sound): drop data.stream")
        options["stream"] = True
    try:
        return loader(data_cfg.source, **options, test_size=data_cfg.test_size, split_seed=data_cfg.split_seed,
                      fitted=fitted)
    except UserError as e:
        raise UserError(f"cannot load {_what(data_cfg.source)} with data.loader={data_cfg.loader}: {e}") from None


def facts_of(pairs: Pairs, need_graph_sim: bool) -> dict:
    """What the assembler injects into the towers and the method."""
    facts = {"input_shape": tuple(pairs.a.shape[1:]), "input_shape_b": tuple(pairs.b.shape[2:]),
             "vocab_size": pairs.meta.get("vocab_size"), "max_len": pairs.meta.get("max_len"), "graph": pairs.graph,
             "graph_sim": None, "labelled": pairs.y is not None, "side_b": pairs.side_b}
    if need_graph_sim and pairs.graph is not None:
        from .objectives import mutual_similarity

        facts["graph_sim"] = torch.from_numpy(mutual_similarity(pairs.graph["edge_index"], pairs.graph["n_nodes"]))
    return facts


def assemble(cfg: dict, facts: dict) -> TwoTower:
    """Towers (sections tower_a, tower_b), objective and method from a recipe dict and the data's facts."""
    from ..build import inject
    from ..registry import build_part

    cfg = OmegaConf.create(cfg)
    for side in ("tower_a", "tower_b"):
        if cfg.get(side) is None:
            raise UserError(f"a two_tower recipe names both towers: add a {side} section (e.g. {side}.name=vit, "
                            f"text_transformer, gcn or mlp)")
    towers = {}
    side_b = facts.get("side_b", "text")
    for side in ("tower_a", "tower_b"):
        name = cfg[side].get("name")
        if side == "tower_b" and side_b == "text" and name != "text_transformer":
            raise UserError(f"side b of paired data is text: set tower_b.name=text_transformer, not {name!r}")
        if side == "tower_b" and side_b == "audio" and name not in ("audio_vit", "mlp"):
            raise UserError(f"side b of these pairs is audio (log-mel spectrograms): set tower_b.name=audio_vit "
                            f"(or mlp), not {name!r}")
        if side == "tower_a" and name == "text_transformer":
            raise UserError("side a of paired data is images, clips, vectors or graph nodes: choose tower_a.name=vit, "
                            "video_vit, mlp or gcn")
        if side == "tower_a" and (name == "gcn") != (facts["graph"] is not None):
            raise UserError("tower_a.name=gcn reads graph nodes: use it exactly when the paired data have a graph "
                            "(edge_index); choose vit for images, mlp for vectors" if facts["graph"] is None else
                            "the paired data are a graph's nodes: set tower_a.name=gcn")
        side_facts = dict(facts, input_shape=facts["input_shape_b"]) if side == "tower_b" and "input_shape_b" in facts \
            else facts
        towers[side] = build_part(side, cfg, part_kwargs(cfg, side), **inject(side, cfg, side_facts))
    criterion = build_part("objective", cfg, part_kwargs(cfg, "objective"))
    if criterion is None or not hasattr(criterion, "uses_graph"):
        raise UserError("a two_tower recipe needs objective.name=clip, congrat, sinkhorn or semisup")
    if getattr(criterion, "uses_labels", False) and not facts.get("labelled", True):
        raise UserError("objective semisup needs labelled pairs: add labels (labels/y) to the data, or use "
                        "objective.name=clip")
    if criterion.uses_graph and facts["graph"] is None:
        raise UserError("objective congrat (alpha > 0) needs paired data with a graph (edge_index): use "
                        "objective.name=clip for these pairs")
    return build_part("method", cfg, part_kwargs(cfg, "method"), tower_a=towers["tower_a"],
                      tower_b=towers["tower_b"], criterion=criterion, graph_sim=facts["graph_sim"])


class PairedBuild:
    """A picklable ``build()`` for the trainer: the same initial weights (from ``seed``) on every process,
    with the training pairs attached."""

    def __init__(self, cfg: dict, facts: dict, seed: int, train: tuple | None = None):
        self.cfg, self.facts, self.seed, self.train = cfg, facts, seed, train

    def __call__(self) -> TwoTower:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            method = assemble(self.cfg, self.facts)
        if self.train is not None:
            method.attach(*self.train)
        return method


def train_arrays(pairs: Pairs) -> tuple:
    """(a, b, ids, y) of the training pairs; ids are row numbers, which are the node ids of a graph's pairs;
    y the labels or None."""
    train = ~pairs.test
    rows = np.flatnonzero(train)
    a = pairs.a[train] if isinstance(pairs.a, np.ndarray) else pairs.a.subset(rows)  # a lazy side a stays lazy
    return a, pairs.b[train], rows, None if pairs.y is None else pairs.y[train]


def evaluation_rows(pairs: Pairs, max_samples: int | None, max_bytes: int | None,
                    seed: int = 0) -> tuple[np.ndarray | None, dict | None]:
    """The pairs the evaluation reads when side a is lazy (``data.stream=true``): the rows of a stratified sample
    of at most ``max_samples`` (``eval.max_samples``; 10,000 when None) training and as many test pairs, whose
    side a decoded as float32 holds at most ``max_bytes`` (``eval.max_bytes``) together, as for the normal
    runner's streamed data (:func:`polyjepa.data.prepare.evaluation_sample`); and what was sampled. (None, None)
    for pairs in memory, which are evaluated whole."""
    from ..data.prepare import STREAM_EVAL_SAMPLES, _byte_bounded, sample_indices

    if isinstance(pairs.a, np.ndarray):
        return None, None
    limit = STREAM_EVAL_SAMPLES if max_samples is None else max_samples
    if limit < 1:
        raise UserError(f"eval.max_samples={limit} must be at least 1 (or null for the default)")
    train, test = np.flatnonzero(~pairs.test), np.flatnonzero(pairs.test)
    n_train, n_test = min(len(train), limit), min(len(test), limit)
    per_sample = 4 * int(np.prod(pairs.a.shape[1:], dtype=np.int64))
    bounded = False
    if max_bytes is not None:
        n_train, n_test, bounded = _byte_bounded(n_train, n_test, per_sample, max_bytes, pairs.a.shape[1:])
    y = pairs.y
    rows = np.concatenate([train[sample_indices(len(train), None if y is None else y[train], n_train, seed)],
                           test[sample_indices(len(test), None if y is None else y[test], n_test, seed)]])
    note = {"train": n_train, "test": n_test, "of_train": len(train), "of_test": len(test), "streamed": True}
    if bounded:
        note.update(max_bytes=int(max_bytes), sample_bytes=per_sample)
    return np.sort(rows), note


def pairs_subset(pairs: Pairs, rows: np.ndarray) -> Pairs:
    """The pairs at ``rows`` (sorted) with side a read into memory (float32, a bounded chunk at a time)."""
    from dataclasses import replace

    from ..data.prepare import decode_rows

    return replace(pairs, a=decode_rows(pairs.a, rows), b=pairs.b[rows],
                   texts=None if pairs.texts is None else pairs.texts[rows],
                   y=None if pairs.y is None else pairs.y[rows], test=pairs.test[rows])


@torch.no_grad()
def embed_side(method: TwoTower, x: np.ndarray, side: str, space: str = "shared", batch: int = 256,
               alpha: float = 0.0) -> np.ndarray:
    """(n, ...) inputs of one side -> (n, F) embeddings, in batches, in eval mode (``alpha``: see TwoTower.embed)."""
    method.eval()
    parts = [method.embed(torch.as_tensor(x[i:i + batch]), side=side, space=space, alpha=alpha)
             for i in range(0, len(x), batch)]
    return torch.cat(parts).float().numpy()


def evaluate_pairs(method: TwoTower, random_method: TwoTower, pairs: Pairs, *, baselines: bool = True,
                   seed: int = 0) -> dict:
    """Test-split retrieval (both directions, every text of an item) and, with labels, each side's linear
    probe on tower features, for the trained towers, random-init towers and raw features (+ CCA)."""
    from ..eval.probes import linear_probe
    from .baselines import cca_embeddings, raw_features
    from .retrieval import retrieval_metrics

    train, test = ~pairs.test, pairs.test
    n_te, k = pairs.b[test].shape[:2]
    item_b = pairs.b.shape[2:]                                     # one text's tokens, or one spectrogram
    owner = np.repeat(np.arange(n_te), k)
    rows = {}
    models = {"trained": method, "random_init": random_method} if baselines else {"trained": method}
    for name, m in models.items():
        za = embed_side(m, pairs.a[test], "a")
        zb = embed_side(m, pairs.b[test].reshape(-1, *item_b), "b")
        row = retrieval_metrics(za @ zb.T, owner)
        if pairs.class_names is not None and pairs.side_b == "text":
            row["zero_shot"] = zero_shot_accuracy(m, pairs)
        if pairs.y is not None:
            for side, x in (("a", pairs.a), ("b", pairs.b[:, 0])):
                f_tr, f_te = embed_side(m, x[train], side, "tower"), embed_side(m, x[test], side, "tower")
                row[f"probe_{side}"] = linear_probe(f_tr, pairs.y[train], f_te, pairs.y[test], seed=seed)["accuracy"]
        rows[name] = row
    if baselines:
        raw = raw_features(pairs, seed=seed)
        a_c, b_c = cca_embeddings(raw)
        from .retrieval import cosine_similarity

        row = retrieval_metrics(cosine_similarity(a_c, b_c.reshape(-1, b_c.shape[-1])), owner)
        if pairs.y is not None:
            row["probe_a"] = linear_probe(raw.a_train, pairs.y[train], raw.a_test, pairs.y[test], seed=seed)["accuracy"]
            row["probe_b"] = linear_probe(raw.b_train[:, 0], pairs.y[train], raw.b_test[:, 0], pairs.y[test],
                                          seed=seed)["accuracy"]
        rows["raw_cca"] = row
    return rows


def zero_shot_accuracy(method: TwoTower, pairs: Pairs) -> float:
    """Test accuracy of labelling each side-a item with the class whose prompt text (``meta["prompt"]`` filled
    with the class name, cut by the run's tokenizer) lies nearest in the shared space."""
    from .text import encode_texts

    prompts = [pairs.meta["prompt"].format(c) for c in pairs.class_names]
    ids = encode_texts(prompts, pairs.meta["tokenizer"], max_len=pairs.meta["max_len"])
    z_a = embed_side(method, pairs.a[pairs.test], "a")
    z_p = embed_side(method, ids, "b")
    return float(((z_a @ z_p.T).argmax(1) == pairs.y[pairs.test]).mean())


ROW_NAMES = {"trained": "two towers (trained)", "random_init": "random-init towers", "raw_cca": "raw features + CCA"}
RET_COLS = ("a2b_r1", "a2b_r5", "a2b_r10", "a2b_medr", "b2a_r1", "b2a_r5", "b2a_r10", "b2a_medr")


def format_paired_table(summary: dict) -> str:
    """The retrieval / probe comparison as a plain-text table."""
    rows = summary["results"]
    probes = any("probe_a" in r for r in rows.values())
    zero = any("zero_shot" in r for r in rows.values())
    head = f"{'representation':<22} " + " ".join(f"{c:>8}" for c in RET_COLS)
    if probes:
        head += f" {'probe_a':>8} {'probe_b':>8}"
    if zero:
        head += f" {'0-shot':>8}"
    lines = [f"\n{summary['recipe']} on {summary['data']}: {summary['n_train']} train / {summary['n_test']} test "
             f"pairs (side a: {summary['side_a']}, side b: {summary.get('side_b', 'text')})"]
    sample = summary.get("eval_sample")
    if sample and (sample["train"] < sample["of_train"] or sample["test"] < sample["of_test"]):
        why = "streamed side a"
        if sample.get("max_bytes"):
            from ..runner import _bytes

            per = max(sample["sample_bytes"], 1)
            why += (f"; fewer, as eval.max_bytes={_bytes(sample['max_bytes'])} holds {sample['max_bytes'] // per} "
                    f"items of {_bytes(per)}")
        lines.append(f"retrieval, probes and baselines on a stratified sample of {sample['train']} train / "
                     f"{sample['test']} test pairs ({why})")
    if "steps" in summary:
        lines.append(f"trained {summary['steps']} steps in {summary['train_seconds'] / 60:.1f} min; whole run "
                     f"{summary['seconds'] / 60:.1f} min")
    lines.append(head)
    for key, r in rows.items():
        cells = " ".join(f"{r[c]:>8.1f}" if c.endswith("medr") else f"{r[c]:>8.3f}" for c in RET_COLS)
        if probes:
            cells += f" {r.get('probe_a', float('nan')):>8.3f} {r.get('probe_b', float('nan')):>8.3f}"
        if zero:
            cells += f" {r['zero_shot']:>8.3f}" if "zero_shot" in r else f" {'-':>8}"
        lines.append(f"{ROW_NAMES.get(key, key):<22} {cells}")
    note = ("(test pairs: a2b = side a queries side b, b2a = side b queries side a; r@k = recall at k, medr = "
            "median rank; probe = test accuracy of logistic regression on each tower's features")
    lines.append(note + ("; 0-shot = accuracy of the nearest label prompt)" if zero else ")"))
    return "\n".join(lines)


def pretrain_paired(cfg: DictConfig, *, out: str | None = None, seed: int = 0, progress: bool = True,
                    echo=print, resume: Path | None = None, replan: bool = False) -> dict:
    """Train a two_tower recipe on its paired data and evaluate it; writes a run directory; returns the summary.
    ``resume`` (a run directory, whose config ``cfg`` is) continues that run from its newest checkpoint;
    ``replan``: the resume changed the run's length."""
    from ..data.batches import check_batch
    from ..runner import launch_rank, new_run_dir, torchrun_train_config
    from ..train.checkpoint import atomic_write_text, load_latest_checkpoint, load_model_state
    from ..train.loop import TrainJob, fit

    t_start = time.time()
    if launch_rank() is not None:
        raise UserError("paired recipes train in one command: use train.devices=2 instead of torchrun")
    train_cfg: TrainConfig = torchrun_train_config(dataclass_from(cfg, "train", TrainConfig))
    eval_cfg: EvalConfig = dataclass_from(cfg, "eval", EvalConfig)
    pairs = load_run_pairs(cfg)
    cfg_dict = OmegaConf.to_container(cfg, resolve=True)
    from ..registry import build_part

    criterion = build_part("objective", cfg, part_kwargs(cfg, "objective"))
    need_sim = bool(getattr(criterion, "uses_graph", False))
    facts = facts_of(pairs, need_sim)
    build = PairedBuild(cfg_dict, facts, seed, train_arrays(pairs))
    method = build()  # a bad recipe fails before anything is written
    check_batch(pairs.n_train, train_cfg.batch_size, max(1, int(train_cfg.devices or 1)))
    del method
    # a lazy side a is evaluated on a bounded sample (sized now, so that a bad bound fails before training)
    eval_rows, sampled = evaluation_rows(pairs, eval_cfg.max_samples, eval_cfg.max_bytes,
                                         seed=dataclass_from(cfg, "data", DataConfig).split_seed)
    if resume is not None:
        from ..train.checkpoint import latest_checkpoint

        run_dir = Path(resume)
        if latest_checkpoint(run_dir / "checkpoints") is None:
            echo(f"polyjepa: {run_dir} was stopped before its first checkpoint: starting it over")
            resume = None
    else:
        run_dir = new_run_dir(out, cfg.name)
        info = {"recipe": cfg.name, "seed": seed, "data": str(cfg.data.source),
                "input_shape": list(pairs.a.shape[1:]), "meta": pairs.meta, "paired": True,
                "created": datetime.now().isoformat(timespec="seconds")}
        atomic_write_text(run_dir / "config.yaml", to_yaml(cfg))
        atomic_write_text(run_dir / "run.json", json.dumps(info, indent=1))
    side_b = (f"texts of {pairs.meta['max_len']} tokens, vocabulary {pairs.meta['vocab_size']}"
              if pairs.side_b == "text" else f"side b {pairs.side_b} {tuple(pairs.b.shape[2:])}")
    echo(f"polyjepa: {cfg.name} on {pairs.name} ({pairs.n_train} train / {int(pairs.test.sum())} test pairs, "
         f"side a {pairs.side_a} {tuple(pairs.a.shape[1:])}, {side_b}) -> {run_dir}")
    x_train = np.arange(pairs.n_train, dtype=np.float32)[:, None]  # row indices: the method holds the pairs
    record = fit(TrainJob(build=build, x_train=x_train, train=train_cfg, run_dir=str(run_dir), seed=seed,
                          progress=progress, resume=resume is not None, replan=replan and resume is not None))
    trained = PairedBuild(cfg_dict, facts, seed)()
    path, state, _, _ = load_latest_checkpoint(run_dir / "checkpoints")
    load_model_state(trained, state, path)
    eval_pairs = pairs if eval_rows is None else pairs_subset(pairs, eval_rows)
    results = evaluate_pairs(trained, PairedBuild(cfg_dict, facts, seed)(), eval_pairs,
                             baselines=eval_cfg.baselines, seed=seed)
    summary = {"schema": SCHEMA, "recipe": cfg.name, "data": str(cfg.data.source), "seed": seed,
               "side_a": pairs.side_a, "side_b": pairs.side_b, "n_train": pairs.n_train,
               "n_test": int(pairs.test.sum()),
               "seconds": time.time() - t_start, "train_seconds": record["train_seconds"], "steps": record["steps"],
               "samples_per_second": record["samples_per_second"], "stop_reason": record["stop_reason"],
               "world_size": record["world_size"], "scale": float(trained.criterion.log_scale.detach().exp()),
               "results": results}
    if sampled is not None:
        summary["eval_sample"] = sampled
    atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=1))
    echo(format_paired_table(summary))
    return summary


def load_paired_run(run_dir: str | Path) -> tuple[TwoTower, Pairs]:
    """(trained two-tower method, the run's pairs split and tokenised as in training) of a paired run."""
    from ..runner import open_run
    from ..train.checkpoint import load_latest_checkpoint, load_model_state

    run_dir, cfg, info = open_run(run_dir)
    pairs = load_run_pairs(cfg, fitted=info.get("meta"))
    cfg_dict = OmegaConf.to_container(cfg, resolve=True)
    method = PairedBuild(cfg_dict, facts_of(pairs, True), info["seed"])()
    found = load_latest_checkpoint(Path(run_dir) / "checkpoints")
    if found is None:
        raise UserError(f"{run_dir} has no checkpoint yet: train it first")
    load_model_state(method, found[1], found[0])
    return method.eval(), pairs
