"""Control in gymnasium's CartPole: the LQR expert, ACT-JEPA, behaviour cloning, and CEM in a learned latent model.

    python benchmarks/control_classic.py [--seed 0] [--actjepa key=value ...] [--planner key=value ...]

Runs the bundled recipes ``actjepa-cartpole`` (ACT-JEPA and behaviour cloning, the same network and
steps, on the same seeded demonstrations seen through noisy observations, over several training seeds,
each policy judged on the same 20 seeded episodes) and ``planner-cartpole`` (an encoder and MLP
dynamics trained JEPA-style on random and noisy-expert transitions; CEM toward the upright state's
embedding). Then ACT-JEPA against behaviour cloning in other regimes (fewer or more demonstrations,
more noise, a smaller JEPA weight), 3 training seeds each. Prints the tables and the configuration built,
and saves results/control_classic.json. One thread.
"""
from __future__ import annotations

import argparse
import json
import time


REGIMES = [["demos.episodes=1", "env.obs_noise=0.0"], ["demos.episodes=2", "env.obs_noise=0.0"],
           ["demos.episodes=10", "env.obs_noise=0.2"], ["method.jepa_weight=0.1"]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--actjepa", nargs="*", default=[], metavar="key=value", help="overrides of actjepa-cartpole")
    ap.add_argument("--planner", nargs="*", default=[], metavar="key=value", help="overrides of planner-cartpole")
    ap.add_argument("--no-regimes", action="store_true", help="skip the other regimes of ACT-JEPA vs BC")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    from polyjepa.config import load_recipe
    from polyjepa.control.pipeline import run_actjepa, run_planner
    from polyjepa.results import save_result

    t0 = time.time()
    act = run_actjepa(load_recipe("actjepa-cartpole", args.actjepa), seed=args.seed, write=False)
    print("built:", json.dumps(act["built"]))
    plan = run_planner(load_recipe("planner-cartpole", args.planner), seed=args.seed, write=False)
    print("built:", json.dumps(plan["built"]))
    columns = ["experiment", "controller", "mean return", "std over training seeds", "per training seed",
               "full-length episodes"]
    rows = []
    for name, summary in (("ACT-JEPA vs BC", act), ("latent planning", plan)):
        for r in summary["rows"]:
            rows.append([name, r["controller"], round(r["mean"], 1), None if r["std"] is None else round(r["std"], 1),
                         ", ".join(f"{v:.1f}" for v in r["per_seed"]) or "-", round(r["success"], 2)])
    regimes = []
    if not args.no_regimes:
        print("\nACT-JEPA vs BC in other regimes (mean return over 20 episodes, per training seed):")
        for overrides in REGIMES:
            s = run_actjepa(load_recipe("actjepa-cartpole", args.actjepa + overrides), seed=args.seed, write=False,
                            echo=lambda *a: None)
            r = {row["controller"].split(" ")[0]: row for row in s["rows"]}
            regimes.append({"overrides": overrides, "ACT-JEPA": r["ACT-JEPA"], "BC": r["BC"]})
            print(f"  {' '.join(overrides)}: ACT-JEPA {r['ACT-JEPA']['mean']:.1f} {r['ACT-JEPA']['per_seed']} | "
                  f"BC {r['BC']['mean']:.1f} {r['BC']['per_seed']}")
            rows.append(["ACT-JEPA vs BC, " + " ".join(overrides), "ACT-JEPA / BC",
                         f"{r['ACT-JEPA']['mean']:.1f} / {r['BC']['mean']:.1f}",
                         f"{r['ACT-JEPA']['std']:.1f} / {r['BC']['std']:.1f}",
                         " / ".join(", ".join(f"{v:.0f}" for v in r[k]["per_seed"]) for k in ("ACT-JEPA", "BC")),
                         f"{r['ACT-JEPA']['success']:.2f} / {r['BC']['success']:.2f}"])
    a = {r["controller"].split(" ")[0]: r for r in act["rows"]}
    diff, spread = a["ACT-JEPA"]["mean"] - a["BC"]["mean"], max(a["ACT-JEPA"]["std"], a["BC"]["std"])
    notes = [act["title"], plan["title"],
             f"ACT-JEPA {a['ACT-JEPA']['mean']:.1f} vs BC {a['BC']['mean']:.1f} mean return: a difference of "
             f"{diff:+.1f}, {'within' if abs(diff) < spread else 'beyond'} the spread over training seeds "
             f"(std up to {spread:.1f})"]
    save_result("control_classic", columns=columns, rows=rows, title="Control in gymnasium's CartPole-v1 (return: "
                "steps balanced, at most 500)", seconds=time.time() - t0, notes=notes,
                extra={"actjepa": act, "planner": plan, "regimes": regimes})


if __name__ == "__main__":
    main()
