"""Runs of two-tower recommendation: prepare the interactions (leave-one-out split, text features, feature
groups), train the towers, rank every item for each test query, and compare with popularity, ALS matrix
factorisation and TF-IDF similarity, overall and by how often the held-out item was seen in training."""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import UserError
from ..train.stages import StageCheckpoints, generator_state, open_stage_run, set_generator_state
from .data import Interactions, Split, leave_one_out, load_interactions, text_features
from .masking import binary_mutual_information, group_by_mutual_information, group_mutual_information
from .method import TwoTowerRec
from .metrics import heldout_ranks, hit_rate, ndcg

SCHEMA = "polyjepa-recommend-summary/1"
BUCKETS = (("cold (0 train)", 0, 0), ("tail (1-2)", 1, 2), ("head (3+)", 3, None))


@dataclass
class RecData:
    """Interactions with their split and features; ``item_x`` / ``query_x`` are (n, V) float32 TF-IDF rows."""

    inter: Interactions
    split: Split
    item_x: np.ndarray | None
    query_x: np.ndarray | None
    item_group: np.ndarray | None
    query_group: np.ndarray | None
    group_mi: np.ndarray | None
    item_sparse: object = None
    query_sparse: object = None

    @property
    def train_queries(self) -> np.ndarray:
        return self.inter.queries[self.split.train]

    @property
    def train_items(self) -> np.ndarray:
        return self.inter.items[self.split.train]


def prepare_interactions(source: str, *, min_rating: float = 0.0, vocab_size: int = 3000, groups: int = 16,
                         min_count: int = 2, split_seed: int = 0) -> RecData:
    """Read interactions (see :func:`~polyjepa.recommend.data.load_interactions`), hold out one item per query
    with at least ``min_count`` items, cut the item texts into TF-IDF terms and group the terms into ``groups``
    fields by their mutual information."""
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise UserError(f"data.groups={groups!r} must be a whole number of feature fields >= 1 (the recipe uses 16)")
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 1:
        raise UserError(f"data.vocab_size={vocab_size!r} must be a whole number of terms >= 1 (the recipe uses 3000)")
    inter = load_interactions(source, min_rating=min_rating)
    split = leave_one_out(inter, seed=split_seed, min_count=min_count)
    item_x = query_x = item_group = query_group = gmi = item_sp = query_sp = None
    if inter.item_texts is not None:
        item_sp, _ = text_features(inter.item_texts, vocab_size=vocab_size)
        mi = binary_mutual_information(item_sp)
        g = min(groups, item_sp.shape[1])
        item_group = group_by_mutual_information(mi, g)
        gmi = group_mutual_information(mi, item_group)
        item_x = item_sp.toarray()
    if inter.same_space and item_x is not None:
        query_x, query_group, query_sp = item_x, item_group, item_sp
    elif inter.query_texts is not None:
        query_sp, _ = text_features(inter.query_texts, vocab_size=vocab_size)
        query_group = group_by_mutual_information(binary_mutual_information(query_sp), min(groups, query_sp.shape[1]))
        query_x = query_sp.toarray()
    return RecData(inter=inter, split=split, item_x=item_x, query_x=query_x, item_group=item_group,
                   query_group=query_group, group_mi=gmi, item_sparse=item_sp, query_sparse=query_sp)


prepare_interactions.recommend = True


def build_model(data: RecData, seed: int, **options) -> TwoTowerRec:
    """A two-tower model over the data's features, with initial weights from ``seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        t = (lambda a: None if a is None else torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)))
        try:
            return TwoTowerRec(item_x=t(data.item_x), query_x=t(data.query_x), item_group=data.item_group,
                               query_group=data.query_group, group_mi=data.group_mi, n_items=data.inter.n_items,
                               n_queries=data.inter.n_queries, **options)
        except ValueError as e:
            raise UserError(f"cannot build the two-tower model: {e}") from None


def train_model(model: TwoTowerRec, data: RecData, *, epochs: int = 40, batch_size: int = 256, lr: float = 2e-3,
                weight_decay: float = 1e-5, seed: int = 0, max_steps: int | None = None, echo=None,
                ckpts: StageCheckpoints | None = None, stage: str = "two_tower") -> dict:
    """Adam over shuffled training pairs; each step also draws ``batch_size`` distinct items uniformly from
    the corpus for the SSL term. Returns {"steps", "seconds", "last": the last step's losses}.

    With ``ckpts`` the model is trained as stage ``stage`` of the run's checkpoints (a module of that name):
    every ``ckpts.every`` steps a checkpoint keeps the epoch, the next batch's offset, the random generator's
    state at the epoch's start and now, and the last losses; a run stopped midway continues from there
    exactly (the epoch's permutation is drawn again from its saved state, then the generator is set to where
    the checkpoint left it), so it takes the same steps as one that never stopped.
    """
    g = torch.Generator().manual_seed(seed)
    q_all = torch.as_tensor(data.train_queries)
    i_all = torch.as_tensor(data.train_items)
    n = len(q_all)
    if n < 2:
        raise UserError("fewer than 2 training interactions: nothing to train on")
    batch_size = min(batch_size, n)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    model.train()
    pos = (ckpts or StageCheckpoints(None)).begin(stage, {stage: model}, opt, generators={"generator": g},
                                                  state={"epoch": 0, "next": 0, "last": {}})
    if pos.resumed and echo is not None:
        echo(f"polyjepa: {stage} continues from step {pos.step}")
    steps, last, start_epoch = pos.step, dict(pos.state["last"]), int(pos.state["epoch"])
    if max_steps is not None:           # max_steps overrides the epochs, as in every other run
        epochs = -(-max_steps // max(1, n // batch_size))
    for epoch in range(start_epoch, epochs):
        if max_steps is not None and steps >= max_steps:
            break
        first, now = 0, None
        if pos.resumed and epoch == start_epoch:
            now = generator_state(g)
            set_generator_state(g, pos.state["generator_epoch"])
        epoch_state = generator_state(g)
        perm = torch.randperm(n, generator=g)
        if now is not None:
            set_generator_state(g, now)
            first = int(pos.state["next"])
        for k in range(first, n - batch_size + 1, batch_size):
            idx = perm[k:k + batch_size]
            ssl_ids = torch.randperm(data.inter.n_items, generator=g)[:batch_size] if model.ssl_weight > 0 else None
            out = model.loss(q_all[idx], i_all[idx], ssl_ids, g)
            opt.zero_grad(set_to_none=True)
            out["loss"].backward()
            opt.step()
            steps += 1
            last = {k2: float(v.detach()) for k2, v in out.items()}
            pos.advance(epoch=epoch, next=k + batch_size, generator_epoch=epoch_state, last=last)
            if max_steps is not None and steps >= max_steps:
                break
        if echo is not None and (epoch + 1) % 10 == 0:
            echo(f"  epoch {epoch + 1}: " + ", ".join(f"{k2} {v:.3f}" for k2, v in last.items()))
        if max_steps is not None and steps >= max_steps:
            break
    model.eval()
    done = pos.finish(last=last)
    return {"steps": done["steps"], "seconds": done["seconds"], "last": last}


def exclusions(data: RecData) -> list[np.ndarray]:
    """Per test query, the items that are not candidates: its training items, and itself when queries are items."""
    q, i = data.train_queries, data.train_items
    order = np.argsort(q, kind="stable")
    starts = np.searchsorted(q[order], data.split.test_queries, side="left")
    ends = np.searchsorted(q[order], data.split.test_queries, side="right")
    out = []
    for tq, s, e in zip(data.split.test_queries, starts, ends):
        ex = i[order[s:e]]
        out.append(np.append(ex, tq) if data.inter.same_space else ex)
    return out


SCORE_BLOCK_BYTES = 1 << 26   # the test queries are scored and ranked this many bytes of float64 scores at a time


def model_scores(model: TwoTowerRec, data: RecData):
    """Cosine scores of every item for the test queries ``a:b``, as a function ``scores(a, b) -> (b - a, n_items)``
    (the whole (Q, n_items) matrix need never exist: :func:`evaluate_scores` asks for it a block at a time)."""
    items = model.embed_items()
    queries = model.embed_queries(torch.as_tensor(data.split.test_queries))
    return lambda a, b: (queries[a:b] @ items.T).numpy()


def baseline_scores(data: RecData, *, seed: int = 0, als: dict | None = None, package_als: bool = False) -> dict:
    """{name: scores(a, b) -> (b - a, n_items)} for the test queries ``a:b``: popularity, ALS (numpy; and the
    ``implicit`` package's when asked and installed) and, with texts, TF-IDF cosine between the query's and the
    item's text. Each is a function of a block of test queries, as :func:`model_scores`."""
    from .baselines import implicit_als, implicit_package_als, interaction_matrix, popularity_scores

    tq = data.split.test_queries
    popular = popularity_scores(data.train_items, data.inter.n_items)
    out = {"popularity": lambda a, b: np.broadcast_to(popular, (len(tq[a:b]), data.inter.n_items))}
    r = interaction_matrix(data.train_queries, data.train_items, data.inter.n_queries, data.inter.n_items)
    als = {"factors": 64, "reg": 0.1, "alpha": 20.0, "iterations": 15, **(als or {})}
    x, y = implicit_als(r, seed=seed, **als)
    out["als"] = lambda a, b: x[tq[a:b]] @ y.T
    if package_als:
        fitted = implicit_package_als(r, seed=seed, **als)
        if fitted is not None:
            out["als_implicit"] = lambda a, b: fitted[0][tq[a:b]] @ fitted[1].T
    if data.query_sparse is not None and data.item_sparse is not None and data.inter.same_space:
        out["tfidf"] = lambda a, b: (data.query_sparse[tq[a:b]] @ data.item_sparse.T).toarray()
    return out


def blocked_ranks(scores, target: np.ndarray, excluded: list[np.ndarray], n_items: int,
                  block_bytes: int = SCORE_BLOCK_BYTES) -> np.ndarray:
    """:func:`heldout_ranks` of every test query, scored and ranked a block of queries at a time (at most
    ``block_bytes`` of float64 scores, at least one query). ``scores`` is a (Q, n_items) array or a function
    ``scores(a, b)`` of the queries ``a:b``; the ranks equal those of the whole matrix at once."""
    if not callable(scores):
        whole = scores
        scores = lambda a, b: whole[a:b]  # noqa: E731
    block = max(1, int(block_bytes) // (8 * max(int(n_items), 1)))
    out = []
    for a in range(0, len(target), block):
        b = min(a + block, len(target))
        out.append(heldout_ranks(scores(a, b), target[a:b], excluded[a:b]))
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def evaluate_scores(scores, data: RecData, excluded: list[np.ndarray] | None = None, k: int = 10,
                    block_bytes: int = SCORE_BLOCK_BYTES) -> dict:
    """HitRate@k and NDCG@k overall and per bucket of the held-out item's training count (cold / tail / head).
    ``scores``: a (Q, n_items) array, or a function ``scores(a, b)`` of a block of test queries (what
    :func:`model_scores` and :func:`baseline_scores` give), ranked ``block_bytes`` of scores at a time."""
    excluded = exclusions(data) if excluded is None else excluded
    ranks = blocked_ranks(scores, data.split.test_items, excluded, data.inter.n_items, block_bytes)
    counts = np.bincount(data.train_items, minlength=data.inter.n_items)[data.split.test_items]
    row = {"hr": hit_rate(ranks, k), "ndcg": ndcg(ranks, k), "n": len(ranks)}
    for name, lo, hi in BUCKETS:
        sel = (counts >= lo) & (counts <= (hi if hi is not None else np.inf))
        key = name.split()[0]
        row[f"hr_{key}"], row[f"ndcg_{key}"] = hit_rate(ranks[sel], k), ndcg(ranks[sel], k)
        row[f"n_{key}"] = int(sel.sum())
    return row


ROW_NAMES = {"two_tower_ssl": "two towers + SSL (CFM)", "two_tower": "two towers, no SSL",
             "popularity": "popularity", "als": "ALS matrix factorisation", "als_implicit": "ALS (implicit package)",
             "tfidf": "TF-IDF similarity"}


def format_table(rows: dict, k: int = 10) -> str:
    """Rows of :func:`evaluate_scores` as a plain-text table."""
    first = next(iter(rows.values()))
    cols = [("hr", f"HR@{k}"), ("ndcg", f"NDCG@{k}")] + [(f"{m}_{b.split()[0]}", f"{m.upper()} {b.split()[0]}")
                                                         for b, _, _ in BUCKETS for m in ("hr", "ndcg")]
    lines = [f"{'method':<26} " + " ".join(f"{c[1]:>11}" for c in cols)]
    for key, r in rows.items():
        lines.append(f"{ROW_NAMES.get(key, key):<26} " + " ".join(f"{r[c[0]]:>11.4f}" for c in cols))
    sizes = ", ".join(f"{b}: {first['n_' + b.split()[0]]}" for b, _, _ in BUCKETS)
    lines.append(f"({first['n']} test queries, one held-out item each, ranked among all items; held-out items by "
                 f"training count: {sizes})")
    return "\n".join(lines)


METHOD_KEYS = ("use_ids", "field_dim", "hidden", "dim", "temperature", "ssl_temperature", "ssl_weight", "masking",
               "feature_dropout")


def two_tower_rec(*, use_ids: bool = True, field_dim: int = 32, hidden: int = 256, dim: int = 64,
                  temperature: float = 0.05, ssl_temperature: float = 0.1, ssl_weight: float = 0.3,
                  masking: str = "cfm", feature_dropout: float = 0.1, ablation: bool = True) -> dict:
    """The recipe's ``method`` section (two-tower recommendation) as keyword options; ``ablation`` also trains
    the same towers without the SSL term."""
    if masking not in ("cfm", "rfm"):
        raise UserError(f"method.masking must be 'cfm' or 'rfm', got {masking!r}")
    return dict(use_ids=use_ids, field_dim=field_dim, hidden=hidden, dim=dim, temperature=temperature,
                ssl_temperature=ssl_temperature, ssl_weight=ssl_weight, masking=masking,
                feature_dropout=feature_dropout, ablation=ablation)


def run_recommend(cfg, *, out: str | None = None, seed: int = 0, echo=print, write: bool = True,
                  resume: bool = False) -> dict:
    """``polyjepa pretrain`` for a two-tower recommendation recipe: split, train, rank, compare; returns the summary.

    With ``write`` the run directory is made first (config.yaml, run.json) and training is checkpointed every
    ``train.checkpoint_every`` steps; ``resume`` (``polyjepa pretrain --resume RUN_DIR``, with ``out`` the run
    directory) continues from its newest checkpoint: finished variants are loaded, the one in training
    continues from its step, and the run ends with the weights and metrics of a run that never stopped.
    """
    from ..config import DataConfig, EvalConfig, TrainConfig, dataclass_from, part_kwargs

    t_start = time.time()
    data_cfg = dataclass_from(cfg, "data", DataConfig)
    if data_cfg.source is None:
        raise UserError("no interactions given: pass --data PATH (a citation-graph .npz or a MovieLens ratings file)")
    options = part_kwargs(cfg, "method")
    method_opts = two_tower_rec(**options)
    ablation = method_opts.pop("ablation")
    t = dataclass_from(cfg, "train", TrainConfig)
    if t.threads:
        torch.set_num_threads(int(t.threads))
    data = prepare_interactions(data_cfg.source, split_seed=data_cfg.split_seed, **part_kwargs(cfg, "data"))
    name = str(cfg.get("name", "two-tower-rec"))
    run_dir, ckpts = open_stage_run(cfg, out=out, name=name, seed=seed, resume=resume, write=write, echo=echo,
                                    info={"data": str(data_cfg.source), "recommend": True}, label="variant")
    echo(f"polyjepa: {cfg.get('name', 'two-tower')} on {data.inter.name}: {data.inter.n_queries} queries, "
         f"{data.inter.n_items} items, {int(data.split.train.sum())} training interactions, "
         f"{len(data.split.test_queries)} held out" + (f" -> {run_dir}" if run_dir is not None else ""))
    train_opts = dict(epochs=int(t.max_epochs), batch_size=int(t.batch_size), lr=float(t.lr),
                      weight_decay=float(t.weight_decay[0]), seed=seed, max_steps=t.max_steps)
    variants = {"two_tower_ssl" if method_opts["ssl_weight"] > 0 else "two_tower": method_opts}
    if ablation and method_opts["ssl_weight"] > 0:
        variants["two_tower"] = {**method_opts, "ssl_weight": 0.0}
    excluded = exclusions(data)
    results, models, record = {}, {}, {}
    for key, opts in variants.items():
        model = build_model(data, seed, **opts)
        done = ckpts.skip(key, {key: model})
        if done is not None:                      # trained before the stop
            record[key] = {"steps": done["steps"], "seconds": done["seconds"], "last": done["last"]}
            model.eval()
        else:
            record[key] = train_model(model, data, echo=echo, **train_opts, ckpts=ckpts, stage=key)
        models[key] = model
        results[key] = evaluate_scores(model_scores(model, data), data, excluded)
    if dataclass_from(cfg, "eval", EvalConfig).baselines:
        for key, s in baseline_scores(data, seed=seed).items():
            results[key] = evaluate_scores(s, data, excluded)
    summary = {"schema": SCHEMA, "recipe": str(cfg.get("name", "")), "data": str(data_cfg.source), "seed": seed,
               "n_queries": data.inter.n_queries, "n_items": data.inter.n_items,
               "n_train": int(data.split.train.sum()), "n_test": len(data.split.test_queries),
               "steps": {k: v["steps"] for k, v in record.items()}, "seconds": time.time() - t_start,
               "results": results}
    table = format_table(results)
    if run_dir is not None:
        from ..runner import write_run_files

        summary["run_dir"] = str(run_dir)
        write_run_files(run_dir, summary, {"model": next(iter(models.values()))},
                        f"# {name}\n\n```\n{table}\n```\n")
    echo(table)
    return summary


run_recommend.resumable = True   # polyjepa pretrain --resume hands its run directories back to this runner
