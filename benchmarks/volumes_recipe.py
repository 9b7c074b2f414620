"""The clustering-modelnet10 recipe through ``polyjepa pretrain`` with overrides: clustering ACC / NMI / ARI of the
trained network on the official test split against k-means on raw voxels and on random-init features.

    OMP_NUM_THREADS=1 python benchmarks/volumes_recipe.py ../shared/data/modelnet10_vox32.npz --tag rot15-1000 \\
        augment.rotate=15 train.max_steps=1000
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _runs import print_table  # noqa: E402

from polyjepa.results import save_result  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="?", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data"
                                                    / "modelnet10_vox32.npz"))
    ap.add_argument("--recipe", default="clustering-modelnet10")
    ap.add_argument("--tag", required=True, help="names the result file volumes-recipe-<tag>")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("overrides", nargs="*", default=[])
    args = ap.parse_intermixed_args()
    from polyjepa.config import load_recipe
    from polyjepa.runner import pretrain

    t0 = time.time()
    cfg = load_recipe(args.recipe, args.overrides)
    summary = pretrain(args.recipe, data=args.data, out=tempfile.mkdtemp(prefix="volumes-recipe-"), seed=args.seed,
                       overrides=args.overrides, echo=lambda *a, **k: None)
    print(f"built: {args.recipe} with {' '.join(args.overrides) or 'no overrides'}: method {dict(cfg.method)}, augment "
          f"{dict(cfg.augment)}; {summary['n_train']} train / {summary['n_test']} test volumes, {summary['clusters']} "
          f"clusters, {summary['steps']} steps of batch {cfg.train.batch_size}, {summary['train_seconds'] / 60:.1f} min")
    columns = ["method", "ACC", "NMI", "ARI", "clusters used"]
    rows = [[r["method"], round(r["acc"], 4), round(r["nmi"], 4), round(r["ari"], 4), r["clusters_used"]]
            for r in summary["scores"]]
    title = (f"Contrastive clustering recipe {args.recipe} ({' '.join(args.overrides)}), official test split of "
             f"{Path(args.data).name}, {summary['clusters']} clusters")
    print_table(title, columns, rows)
    save_result(f"volumes-recipe-{args.tag}", columns=columns, rows=rows, title=title, seconds=time.time() - t0,
                notes=[f"{summary['steps']} steps, seed {args.seed}; training took {summary['train_seconds'] / 60:.1f} "
                       f"min at 1 thread on a shared machine"])


if __name__ == "__main__":
    main()
