"""Lie-symmetry SSL for PDEs: regress the equation's coefficient (heat, Burgers: log nu) or the initial
condition's amplitudes (KdV) from a frozen VICReg embedding trained on symmetry views, against raw values,
Fourier magnitudes, a random-init network and the same network trained supervised (NMSE, lower is better).

    OMP_NUM_THREADS=1 python benchmarks/science_pde.py --equation burgers [--steps 600] [key=value ...]
"""
from __future__ import annotations

import argparse
import time

import torch

from polyjepa.config import load_recipe
from polyjepa.results import save_result
from polyjepa.science.lie_ssl import run_lie_ssl


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--equation", choices=["burgers", "heat", "kdv", "all"], default="burgers")
    ap.add_argument("--steps", type=int, default=600, help="training steps of each network")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("overrides", nargs="*", help="recipe overrides, e.g. pde.n_train=512")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    for eq in (["burgers", "heat", "kdv"] if args.equation == "all" else [args.equation]):
        t0 = time.time()
        cfg = load_recipe(f"lie-{eq}", [f"train.max_steps={args.steps}", *args.overrides])
        summary = run_lie_ssl(cfg, seed=args.seed, echo=print, write=False)
        b, spec, aug = summary["built"], summary["spec"], summary["augment"]
        print(f"\nbuilt: {eq}, {spec['n_train']} train / {spec['n_test']} test trajectories, input {b['input']} "
              f"(u, x, t channels x time x space), encoder {b['encoder_parameters']} parameters, embedding "
              f"{b['embedding_dim']}, targets {b['targets']}; views: crop {aug['crop']}, boost {aug['galilean']}, "
              f"scale {aug['scale']}, amplitude {aug['amplitude']}; {summary['train']['steps']} steps of batch "
              f"{summary['train']['batch_size']}")
        rows = [[r["representation"], r["nmse"], r["nmse_few"], r["dim"], round(r["train_seconds"])]
                for r in summary["rows"]]
        by = {r["representation"]: r for r in summary["rows"]}
        ssl = by["VICReg + Lie symmetries (ridge)"]
        sup = by["supervised, same network (its own head)"]
        notes = [f"VICReg + Lie symmetries {ssl['nmse']:.4f} vs supervised {sup['nmse']:.4f} with "
                 f"{spec['n_train']} labels, {ssl['nmse_few']:.4f} vs {sup['nmse_few']:.4f} with "
                 f"{spec['few_labels']}; random init {by['random-init encoder (ridge)']['nmse']:.4f}."]
        save_result(f"science-pde-{eq}", columns=["representation", f"NMSE, {spec['n_train']} labels",
                                                  f"NMSE, {spec['few_labels']} labels", "features", "training s"],
                    rows=rows, title=f"Lie-symmetry SSL, {eq}: regress {', '.join(b['targets'])} (NMSE, lower is "
                    f"better)", seconds=time.time() - t0, notes=notes,
                    command=f"OMP_NUM_THREADS=1 python benchmarks/science_pde.py --equation {eq} --steps {args.steps}",
                    extra={"built": b, "spec": spec, "augment": aug, "method": summary["method"],
                           "train": summary["train"]})


if __name__ == "__main__":
    main()
