"""Jet data sets as padded particle arrays: the .npz format, the CMS PFNano reader, toy showers, the loader.

The format (a plain .npz, no pickled objects):
    particles (n, P, 4) float32: pT [GeV], eta, phi, E [GeV] per particle, leading pT first, padded rows zero;
    mask (n, P) bool: True for real particles;
    labels (n,) int64 (optional): e.g. 1 = top, 0 = QCD;
    split (n,) str (optional): 'train' / 'test' rows of an official split.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.sources import Loaded, read_npz
from ..errors import UserError
from .kinematics import check_particles


def pad_jets(jets: list[np.ndarray], max_particles: int) -> tuple[np.ndarray, np.ndarray]:
    """List of (p_i, 4) pT, eta, phi, E arrays -> (n, max_particles, 4) sorted by decreasing pT (the
    leading ``max_particles`` kept) and the (n, max_particles) mask."""
    out = np.zeros((len(jets), max_particles, 4), np.float32)
    mask = np.zeros((len(jets), max_particles), bool)
    for k, j in enumerate(jets):
        j = np.asarray(j, np.float64).reshape(-1, 4)
        j = j[np.argsort(-j[:, 0], kind="stable")][:max_particles]
        out[k, :len(j)], mask[k, :len(j)] = j, True
    return out, mask


def save_jets(path: str | Path, particles: np.ndarray, mask: np.ndarray, labels: np.ndarray | None = None,
              **extra: np.ndarray) -> Path:
    """Write a jet set in the format above (compressed, no pickle) to ``path`` (``.npz`` appended when missing),
    through a temporary file, so an interrupted write leaves no partial set."""
    import os

    arrays = {"particles": np.asarray(particles, np.float32), "mask": np.asarray(mask, bool), **extra}
    if labels is not None:
        arrays["labels"] = np.asarray(labels, np.int64)
    path = Path(path)
    path = path if path.suffix == ".npz" else path.with_name(path.name + ".npz")
    tmp = path.with_name(f".{path.name}.tmp.npz")
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)
    return path


def read_cms_pfnano(path: str | Path, *, jets: str = "ak8", max_particles: int = 128,
                    puppi: bool | None = None) -> dict[str, np.ndarray]:
    """The CMS PFNano jets file (``cms_pfnano_10events_jets.npz``) as padded particle sets.

    Args:
        jets: 'ak8' (large-radius jets) or 'ak4'.
        max_particles: keep the leading constituents by pT.
        puppi: scale each constituent's four-momentum by its PUPPI weight and drop zero-weight ones. None
            (default): for 'ak8' only, as CMS builds its AK8 jets from PUPPI-weighted candidates and its AK4
            jets (CHS) from unweighted ones; so the constituents add up to the stored jet's direction.
    Returns {"particles" (n, P, 4), "mask" (n, P), "jets" (n, 4) the stored jet pt, eta, phi, mass,
    "event" (n,)} (+ "parton_flavour", "hadron_flavour" for ak4, "msoftdrop" for ak8).
    """
    if jets not in ("ak4", "ak8"):
        raise UserError(f"jets={jets!r}: the CMS PFNano file holds 'ak4' and 'ak8' jets")
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path} does not exist: pass the path of cms_pfnano_10events_jets.npz")
    with read_npz(path) as z:
        need = {f"{jets}_jets", f"{jets}_const", f"{jets}_const_ptr"}
        if not need <= set(z.files):
            raise UserError(f"{path} lacks {', '.join(sorted(need - set(z.files)))}: it is not a CMS PFNano jets file")
        fields = [str(f) for f in z["const_fields"]]
        const, ptr = z[f"{jets}_const"].astype(np.float64), z[f"{jets}_const_ptr"]
        col = {f: fields.index(f) for f in ("pt", "eta", "phi", "mass", "puppiWeight")}
        out = {"jets": z[f"{jets}_jets"].astype(np.float32), "event": z[f"{jets}_event"].astype(np.int64)}
        for k in ("parton_flavour", "hadron_flavour", "msoftdrop"):
            if f"{jets}_{k}" in z.files:
                out[k] = z[f"{jets}_{k}"]
    pt, eta, phi, m = (const[:, col[f]] for f in ("pt", "eta", "phi", "mass"))
    puppi = (jets == "ak8") if puppi is None else puppi
    w = const[:, col["puppiWeight"]] if puppi else np.ones(len(const))
    e = np.sqrt((pt * np.cosh(eta)) ** 2 + m ** 2)
    four = np.stack([w * pt, eta, phi, w * e], 1)
    keep = w > 0
    sets = [four[a:b][keep[a:b]] for a, b in zip(ptr[:-1], ptr[1:])]
    out["particles"], out["mask"] = pad_jets(sets, max_particles)
    return out


def toy_jets(n: int, *, max_particles: int = 64, seed: int = 0, pt: float = 600.0) -> dict[str, np.ndarray]:
    """Toy showers with 1, 2 or 3 prongs (label = prongs - 1), a stand-in that needs no generator.

    Each prong is a Gaussian spray in (eta, phi) around a direction within 0.4 of the jet axis, carrying a
    Dirichlet share of the jet pT split among Poisson-many massless particles with exponential shares.
    """
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    sets = []
    for lab in labels:
        k = lab + 1
        shares = rng.dirichlet(np.full(k, 3.0))
        centres = rng.normal(0, 0.2, (k, 2)) if k > 1 else np.zeros((1, 2))
        parts = []
        for s, c in zip(shares, centres):
            m = max(2, rng.poisson(30 * s + 3))
            frac = rng.exponential(1.0, m)
            p_t = pt * s * frac / frac.sum()
            spread = 0.03 + 0.05 * rng.random()
            eta, phi = c[0] + rng.normal(0, spread, m), c[1] + rng.normal(0, spread, m)
            parts.append(np.stack([p_t, eta, phi, p_t * np.cosh(eta)], 1))
        sets.append(np.concatenate(parts))
    particles, mask = pad_jets(sets, max_particles)
    return {"particles": particles, "mask": mask, "labels": labels.astype(np.int64)}


def read_jet_file(path: str | Path, *, max_particles: int = 128, jets: str = "ak8",
                  puppi: bool | None = None) -> dict[str, np.ndarray]:
    """A .npz in the jet format above, or the CMS PFNano file; checked, padded to ``max_particles``."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"jet data {str(path)!r} does not exist: pass a .npz written by "
                        f"`python -m polyjepa.jets.generate` (or save_jets), or data.source=toy")
    with read_npz(path) as z:
        files = set(z.files)
        if "ak8_const" in files or "ak4_const" in files:
            return read_cms_pfnano(path, jets=jets, max_particles=max_particles, puppi=puppi)
        if "particles" not in files:
            raise UserError(f"{path} has arrays {sorted(files)} but no 'particles' (n, P, 4): "
                            f"store jets as particles/mask/labels (see polyjepa.jets.data)")
        out = {k: z[k] for k in files}
    out["particles"], out["mask"] = check_particles(out["particles"], out.get("mask"), what=str(path))
    p, m = out["particles"][:, :max_particles], out["mask"][:, :max_particles]
    out["particles"], out["mask"] = p, m
    return out


def load_jets(source: str, *, max_particles: int = 64, n: int = 3000, seed: int = 0, jets: str = "ak8",
              puppi: bool | None = None, test_fraction: float = 0.2) -> Loaded:
    """The ``jets`` data loader: padded particle sets x (n, P, 4) (pT, eta, phi, E; padded rows zero).

    source: 'toy' (``n`` toy showers with 1-3 prongs, labels = prongs - 1), a .npz in the jet format
    (labels and an official ``split`` used when present), or the CMS PFNano jets file.
    Without an official split, the last ``test_fraction`` of the (shuffled by the loader's seed) jets is
    held out for the probe.
    """
    if max_particles < 2:
        raise UserError(f"data.max_particles must be >= 2, got {max_particles}")
    if source == "toy":
        d = toy_jets(n, max_particles=max_particles, seed=seed)
    else:
        d = read_jet_file(source, max_particles=max_particles, jets=jets, puppi=puppi)
    x, mask = check_particles(d["particles"], d["mask"], what=str(source))
    y = d.get("labels")
    name = "toy-jets" if source == "toy" else Path(source).name
    meta = {"features": ["pt", "eta", "phi", "energy"]}
    if "split" in d:
        test = np.asarray(d["split"]).astype(str) == "test"
        return Loaded(x[~test], y[~test] if y is not None else None, name, x_test=x[test],
                      y_test=y[test] if y is not None else None, meta=meta)
    if y is None or len(x) < 10:
        return Loaded(x, y, name, meta=meta)
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = max(1, int(round(test_fraction * len(x))))
    tr, te = order[:-n_test], order[-n_test:]
    return Loaded(x[tr], y[tr], name, x_test=x[te], y_test=y[te], meta=meta)
