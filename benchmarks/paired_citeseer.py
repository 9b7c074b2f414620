"""ConGraT on CiteSeer: node <-> text retrieval on held-out papers, each side's class probe, against plain
InfoNCE (CLIP loss, same towers), random-init towers and TF-IDF + CCA.

    python benchmarks/paired_citeseer.py [DATA.npz] [--epochs 6] [--seeds 0] [--max-len 64] [KEY=VALUE ...]

Both objectives train the recipe congrat-citeseer's towers (a GCN over the whole citation graph, which
sees structure only; a small transformer over each paper's title + abstract, cut to --max-len tokens)
on the same stratified 80/20 node split, with the same steps and seed; plain InfoNCE is objective.alpha=0.
The random-init towers and the CCA baseline (adjacency rows and TF-IDF, each reduced by truncated SVD
to 128 dimensions, 32 canonical components) are scored on the same test pairs. One thread.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _args  # noqa: E402

DEFAULT_DATA = "../shared/data/citeseer_tag.npz"
# alpha = 0 is plain symmetric InfoNCE exactly (tests/test_paired_objectives.py checks it)
VARIANTS = {"ConGraT (graph-softened targets)": [], "plain InfoNCE (CLIP loss)": ["objective.alpha=0.0"]}
COLS = ["a2b_r1", "a2b_r5", "a2b_r10", "a2b_medr", "b2a_r1", "b2a_r5", "b2a_r10", "b2a_medr", "probe_a", "probe_b"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="?", default=DEFAULT_DATA)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--max-len", type=int, default=64)
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    _args.data_file(args, DEFAULT_DATA, "CiteSeer file", "../shared/data/citeseer_tag.npz")
    import torch

    torch.set_num_threads(1)
    from polyjepa.runner import pretrain
    from polyjepa.results import save_result

    seeds = [int(s) for s in args.seeds.split(",")]
    t0 = time.time()
    found: dict[str, list[dict]] = {}
    built = ""
    for seed in seeds:
        for i, (name, over) in enumerate(VARIANTS.items()):
            with tempfile.TemporaryDirectory() as tmp:
                extra = list(over)
                s = pretrain("congrat-citeseer", data=args.data, out=str(Path(tmp) / "run"), seed=seed,
                             overrides=[f"train.max_epochs={args.epochs}", f"data.max_len={args.max_len}",
                                        "train.threads=1", *extra, *args.overrides],
                             progress=False, echo=lambda *a, **k: None)
                if not built:
                    from polyjepa.paired.run import load_paired_run

                    method, pairs = load_paired_run(Path(tmp) / "run")
                    built = (f"tower a: GCN {len(method.tower_a.convs)} layers x {method.tower_a.dim} over "
                             f"{method.tower_a.n_nodes} nodes; tower b: text transformer {len(method.tower_b.blocks)} "
                             f"blocks x {method.tower_b.dim}, vocabulary {method.tower_b.vocab_size}, max_len "
                             f"{method.tower_b.max_len}; shared space {method.proj_dim}; "
                             f"{s['n_train']} train / {s['n_test']} test nodes; {s['steps']} steps")
                    print(built)
            found.setdefault(name, []).append({**s["results"]["trained"], "scale": s["scale"]})
            if i == 0:
                found.setdefault("random-init towers", []).append(s["results"]["random_init"])
                found.setdefault("TF-IDF + adjacency, CCA", []).append(s["results"]["raw_cca"])
            print(f"  seed {seed} {name}: a2b r@10 {s['results']['trained']['a2b_r10']:.3f}, b2a r@10 "
                  f"{s['results']['trained']['b2a_r10']:.3f} ({s['seconds'] / 60:.1f} min)", flush=True)
    order = [*VARIANTS, "random-init towers", "TF-IDF + adjacency, CCA"]
    rows = []
    for name, runs in sorted(found.items(), key=lambda kv: order.index(kv[0])):
        rows.append([name] + [float(np.mean([r[c] for r in runs])) for c in COLS])
    header = ["representation", "node->text R@1", "R@5", "R@10", "medR", "text->node R@1", "R@5", "R@10", "medR",
              "probe graph", "probe text"]
    print(f"\nCiteSeer node <-> text retrieval on held-out papers (mean over seeds {args.seeds})\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in rows:
        print("| " + " | ".join([r[0]] + [f"{v:.1f}" if "medr" in c else f"{v:.3f}" for v, c in zip(r[1:], COLS)])
              + " |")
    congrat, plain = found[list(VARIANTS)[0]], found[list(VARIANTS)[1]]
    diff = [c["a2b_r10"] + c["b2a_r10"] - p["a2b_r10"] - p["b2a_r10"] for c, p in zip(congrat, plain)]
    verdict = (f"ConGraT minus plain InfoNCE, R@10 summed over both directions, per seed: "
               f"{', '.join(f'{d:+.3f}' for d in diff)}")
    print("\n" + verdict)
    save_result("paired_citeseer", columns=header, rows=rows, seconds=time.time() - t0,
                title="CiteSeer: ConGraT vs plain InfoNCE vs random-init towers vs TF-IDF + CCA (node <-> text)",
                notes=[built, verdict, f"seeds {args.seeds}, {args.epochs} epochs, max_len {args.max_len}, one thread"],
                extra={"per_seed": found})


if __name__ == "__main__":
    main()
