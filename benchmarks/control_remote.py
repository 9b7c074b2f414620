"""TS-JEPA remote control in gymnasium's CartPole: control return against bits per message.

    python benchmarks/control_remote.py [--seed 0] [--dims 1 2 4] [--regimes key=value ...] [key=value ...]

Runs the bundled recipe ``tsjepa-remote-cartpole``: a sensor sends, every step, a message of a fixed
number of bits over a bit-flip channel, and a controller cloned from the LQR expert on received
messages acts on it. Four sensors at the same budgets, same channel, same controller network and
training: the TS-JEPA embedding of the last observations (window JEPA trained on logged episodes,
no labels), a random-init encoder of the same shape, PCA of the same window, and the quantised raw observation. Each cell is
the mean return over the same seeded episodes for several training seeds. Then the TS-JEPA sensor
alone at other embedding widths (``--dims``), and the TS-JEPA sensor against the raw state in other
regimes (``--regimes``; by default without observation noise), both on a perfect channel. Prints the tables and the configuration built, and saves
results/control_remote.json. One thread.
"""
from __future__ import annotations

import argparse
import json
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dims", type=int, nargs="*", default=[1, 2, 4],
                    help="other embedding widths of the TS-JEPA sensor (run on a perfect channel)")
    ap.add_argument("--regimes", nargs="*", default=["env.obs_noise=0.0"],
                    help="other settings (one override each) where the TS-JEPA sensor meets the raw state")
    ap.add_argument("overrides", nargs="*", metavar="key=value", help="overrides of tsjepa-remote-cartpole")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    from polyjepa.config import load_recipe
    from polyjepa.control.remote_run import SENSORS, run_remote
    from polyjepa.results import save_result

    t0 = time.time()
    main_run = run_remote(load_recipe("tsjepa-remote-cartpole", args.overrides), seed=args.seed, write=False)
    print("built:", json.dumps(main_run["built"]["sensor"]))
    runs = [("recipe", main_run)]
    for d in args.dims:
        s = run_remote(load_recipe("tsjepa-remote-cartpole", args.overrides + [f"method.dims={d}", "channel.ber=[0.0]"]), seed=args.seed,
                       write=False, sensors=(SENSORS[0],))
        print("built:", json.dumps(s["built"]["sensor"]))
        runs.append((f"method.dims={d}", s))
    for regime in args.regimes:  # the TS-JEPA sensor against the raw state elsewhere, on a perfect channel
        s = run_remote(load_recipe("tsjepa-remote-cartpole", args.overrides + [regime, "channel.ber=[0.0]"]),
                       seed=args.seed, write=False, sensors=(SENSORS[0], SENSORS[3]))
        runs.append((regime, s))
    bers = main_run["ber"]
    columns = ["run", "sensor", "bits per message", "dims x bits", *[f"return, BER {b:g}" for b in bers],
               *[f"per training seed, BER {b:g}" for b in bers]]
    rows = [["recipe", "expert (LQR, reads the true state)", "-", "-", *[round(main_run["expert"], 1)] * len(bers),
             *["-"] * len(bers)]]
    for label, s in runs:
        for r in s["rows"]:
            cells = (r["cells"] + [None] * len(bers))[:len(bers)]
            rows.append([label, r["sensor"], r["budget"], r["layout"],
                         *[None if c is None else f"{c['mean']:.1f} ± {c['std']:.1f}" for c in cells],
                         *["-" if c is None else ", ".join(f"{v:.0f}" for v in c["per_seed"]) for c in cells]])
    notes = [main_run["title"], "return: steps balanced, at most 500; ± is the std over training seeds; a sensor of "
             "D dims sends floor(budget / D) bits per dimension, so 'dims x bits' is what was really sent",
             "unquantised: the floats over a perfect link (the reference of unlimited bits)"]
    save_result("control_remote", columns=columns, rows=rows, title="TS-JEPA remote control in CartPole-v1: "
                "mean return against bits per message", seconds=time.time() - t0, notes=notes,
                extra={name: s for name, s in runs})


if __name__ == "__main__":
    main()
