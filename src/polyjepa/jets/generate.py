"""Generate a top-tagging jet set with Pythia 8 and FastJet (the optional ``jets`` extra).

Signal: hadronic top-quark pairs; background: QCD dijets; 14 TeV proton-proton collisions without multiple
parton interactions or pile-up, visible final-state particles (neutrinos dropped) clustered into anti-kT
R = 0.8 jets, kept in the pT window [550, 650] GeV with |eta| < 2, and top jets required to lie within
Delta R = 0.8 of a top quark and of all three of its decay quarks. These are the selections of the top
tagging reference data set (Kasieczka et al., 2019), without its detector simulation.

    python -m polyjepa.jets.generate --n 10000 --seed 0 --out jets.npz
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np

from ..errors import UserError, require
from .data import pad_jets, save_jets

NEUTRINOS = {12, 14, 16}


def _pythia(process: str, seed: int, pthat: tuple[float, float]):
    pythia8 = require("pythia8mc", "jets", "generating jets")
    py = pythia8.Pythia("", False)
    settings = ["Print:quiet = on", "Beams:eCM = 14000.", "PartonLevel:MPI = off", "Next:numberCount = 0", "Random:setSeed = on",
                f"Random:seed = {seed % 900_000_000 + 1}", f"PhaseSpace:pTHatMin = {pthat[0]}",
                f"PhaseSpace:pTHatMax = {pthat[1]}"]
    if process == "top":
        settings += ["Top:gg2ttbar = on", "Top:qqbar2ttbar = on", "24:onMode = off", "24:onIfAny = 1 2 3 4 5"]
    else:
        settings += ["HardQCD:all = on"]
    for s in settings:
        if not py.readString(s):
            raise RuntimeError(f"Pythia rejected the setting {s!r}")
    if not py.init():
        raise RuntimeError("Pythia failed to initialise")
    return py


def _delta_r(eta1, phi1, eta2, phi2) -> float:
    dphi = (phi1 - phi2 + math.pi) % (2 * math.pi) - math.pi
    return math.hypot(eta1 - eta2, dphi)


def _top_partons(event) -> list[list[tuple[float, float]]]:
    """(eta, phi) of each top quark (its last copy) and of its b and W-daughter quarks."""
    tops = []
    for i in range(event.size()):
        p = event[i]
        if abs(p.id()) != 6 or p.iBotCopyId() != i:
            continue
        quarks = []
        for d in p.daughterList():
            dp = event[d]
            if abs(dp.id()) == 5:
                quarks.append(event[dp.iBotCopyId()])
            elif abs(dp.id()) == 24:
                w = event[dp.iBotCopyId()]
                quarks += [event[k] for k in w.daughterList() if abs(event[k].id()) <= 5]
        tops.append([(p.eta(), p.phi())] + [(q.eta(), q.phi()) for q in quarks])
    return tops


def generate_process(process: str, n_jets: int, *, seed: int, r: float = 0.8, pt_range=(550.0, 650.0),
                     max_eta: float = 2.0, pthat=(500.0, 700.0), max_events: int | None = None) -> list[np.ndarray]:
    """``n_jets`` selected jets of ``process`` ('top' or 'qcd') as (p, 4) arrays of pT, eta, phi, E."""
    fastjet = require("fastjet", "jets", "generating jets")
    py = _pythia(process, seed, pthat)
    jet_def = fastjet.JetDefinition(fastjet.antikt_algorithm, r)
    jets, events = [], 0
    limit = max_events or 200 * n_jets
    while len(jets) < n_jets and events < limit:
        events += 1
        if not py.next():
            continue
        ev = py.event
        inputs = [fastjet.PseudoJet(p.px(), p.py(), p.pz(), p.e()) for p in (ev[i] for i in range(ev.size()))
                  if p.isFinal() and abs(p.id()) not in NEUTRINOS]
        cs = fastjet.ClusterSequence(inputs, jet_def)
        tops = _top_partons(ev) if process == "top" else None
        for j in cs.inclusive_jets(pt_range[0]):
            if not (j.pt() < pt_range[1] and abs(j.eta()) < max_eta):
                continue
            if tops is not None and not any(all(_delta_r(j.eta(), j.phi_std(), e, f) < r for e, f in t) and len(t) == 4
                                            for t in tops):
                continue
            jets.append(np.array([[c.pt(), c.eta(), c.phi_std(), c.E()] for c in j.constituents()]))
            if len(jets) == n_jets:
                break
    if len(jets) < n_jets:
        raise UserError(f"only {len(jets)} {process} jets passed the selection in {events} events: raise max_events")
    return jets


def generate(n: int, *, seed: int = 0, max_particles: int = 128, out: str | Path | None = None,
             echo=print) -> dict[str, np.ndarray]:
    """``n`` jets, half top (label 1) and half QCD (label 0), shuffled by ``seed``; saved to ``out`` if given."""
    if n < 2:
        raise UserError(f"--n must be >= 2 (half top, half QCD jets), got {n}")
    t0 = time.perf_counter()
    n_top = n // 2
    top = generate_process("top", n_top, seed=2 * seed)
    echo(f"{len(top)} top jets in {time.perf_counter() - t0:.0f} s")
    qcd = generate_process("qcd", n - n_top, seed=2 * seed + 1)
    echo(f"{len(qcd)} QCD jets in {time.perf_counter() - t0:.0f} s")
    particles, mask = pad_jets(top + qcd, max_particles)
    labels = np.r_[np.ones(len(top), np.int64), np.zeros(len(qcd), np.int64)]
    order = np.random.default_rng(seed).permutation(n)
    d = {"particles": particles[order], "mask": mask[order], "labels": labels[order],
         "n_constituents": np.array([len(j) for j in top + qcd], np.int64)[order]}
    if out is not None:
        out = save_jets(out, **d)
        echo(f"wrote {out}: {n} jets, {max_particles} particles max, {time.perf_counter() - t0:.0f} s")
    return d


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m polyjepa.jets.generate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=10000, help="jets in all (half top, half QCD)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-particles", type=int, default=128, help="leading constituents kept per jet")
    ap.add_argument("--out", default="jets.npz")
    a = ap.parse_args(argv)
    try:
        generate(a.n, seed=a.seed, max_particles=a.max_particles, out=a.out)
    except UserError as e:
        raise SystemExit(f"polyjepa: error: {e}") from None


if __name__ == "__main__":
    main()
