"""Jets: kinematics, exclusive kT subjets, N-subjettiness, the readers, the J-JEPA parts and recipe."""
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from polyjepa.errors import UserError
from polyjepa.jets.cluster import exclusive_kt, nsubjettiness, substructure_features
from polyjepa.jets.data import load_jets, read_cms_pfnano, save_jets, toy_jets
from polyjepa.jets.kinematics import check_particles, from_cartesian, jet_vector, particle_features, to_cartesian
from polyjepa.jets.method import JJEPA, subjet_means
from polyjepa.jets.model import JetBackbone, ParticleTokenizer, SetEncoder, SubjetMasker, SubjetPredictor
from polyjepa.targets.ema import EMATarget

CMS = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "cms_pfnano_10events_jets.npz"


def massless(pt, eta, phi):
    return [pt, eta, phi, pt * math.cosh(eta)]


@pytest.fixture(scope="module")
def toy():
    d = toy_jets(24, max_particles=40, seed=1)
    return torch.from_numpy(d["particles"]).double(), torch.from_numpy(d["mask"])


def small_jjepa(dim=32):
    bb = JetBackbone(ParticleTokenizer(dim=dim, hidden=32), SetEncoder(dim=dim, depth=2, heads=4))
    return JJEPA(backbone=bb, predictor=SubjetPredictor(in_dim=dim, dim=16, depth=1, heads=2),
                 masker=SubjetMasker(n_subjets=6, n_targets=2), target=EMATarget(bb, normalize="none"))


def test_cartesian_round_trip_and_features(toy):
    x, m = toy
    back = from_cartesian(to_cartesian(x[m]))
    assert torch.allclose(back, x[m], atol=1e-9)
    f = particle_features(x, m)
    assert f.shape == (*x.shape[:2], 7) and (f[~m] == 0).all()
    # independently: the jet is the sum of px, py, pz, E; eta from pz and pT
    px = (x[..., 0] * torch.cos(x[..., 2]) * m).sum(1)
    py = (x[..., 0] * torch.sin(x[..., 2]) * m).sum(1)
    pz = (x[..., 0] * torch.sinh(x[..., 1]) * m).sum(1)
    ptj, etaj, phij = torch.hypot(px, py), torch.asinh(pz / torch.hypot(px, py)), torch.atan2(py, px)
    k = m[0]
    assert torch.allclose(f[0, k, 2], torch.log(x[0, k, 0] / ptj[0]))
    assert torch.allclose(f[0, k, 4], x[0, k, 1] - etaj[0]) and torch.allclose(f[0, k, 5], x[0, k, 2] - phij[0])
    assert torch.allclose(f[0, k, 6], torch.hypot(f[0, k, 4], f[0, k, 5]))


def test_exclusive_kt_hand_case():
    # d(A,C) = 10^2 0.2^2 = 4 is the smallest kT distance, so C joins A; B stays alone
    p = torch.tensor([[massless(100, 0, 0), massless(100, 0.3, 0), massless(10, 0, 0.2), [0, 0, 0, 0]]],
                     dtype=torch.float64)
    sub = exclusive_kt(p, p[..., 0] > 0, 2)
    assert sub.labels.tolist() == [[0, 1, 0, -1]] and sub.valid.tolist() == [[True, True]]
    assert torch.allclose(sub.vectors[0, 0], to_cartesian(p[0, 0]) + to_cartesian(p[0, 2]))


def test_subjets_cover_every_particle_exactly_once(toy):
    x, m = toy
    for n in (1, 3, 8, 50):
        sub = exclusive_kt(x, m, n)
        assert ((sub.labels >= 0) == m).all()
        count = m.sum(1).clamp(max=n)
        assert (sub.valid.sum(1) == count).all()
        onehot = (sub.labels[:, :, None] == torch.arange(n)[None, None])        # (B, P, S)
        assert (onehot.sum(2) == m.long()).all()                                # one subjet per real particle
        assert (onehot.any(1) == sub.valid).all()                               # no empty subjet
        assert torch.allclose(sub.vectors.sum(1), jet_vector(x, m), rtol=1e-9)  # four-momentum is conserved
        pt = torch.hypot(sub.vectors[..., 0], sub.vectors[..., 1])
        assert (pt[:, :-1] >= pt[:, 1:] - 1e-9).all()                           # ordered by pT


def test_exclusive_kt_matches_fastjet(toy):
    fastjet = pytest.importorskip("fastjet", reason="fastjet (polyjepa[jets]) is not installed")
    x, m = toy
    sub = exclusive_kt(x, m, 4)
    for k in range(len(x)):
        v = to_cartesian(x[k][m[k]]).numpy()
        pjs = []
        for i, row in enumerate(v):
            pj = fastjet.PseudoJet(*map(float, row))
            pj.set_user_index(i)
            pjs.append(pj)
        # R = 5 exceeds every pairwise distance in a jet, so the beam distance never wins
        cs = fastjet.ClusterSequence(pjs, fastjet.JetDefinition(fastjet.kt_algorithm, 5.0))
        jets = sorted(cs.exclusive_jets(min(4, len(pjs))), key=lambda j: -j.pt())
        labels = np.full(len(pjs), -1)
        for r, j in enumerate(jets):
            for c in j.constituents():
                labels[c.user_index()] = r
        assert (labels == sub.labels[k][m[k]].numpy()).all()
        fj = np.array([[j.px(), j.py(), j.pz(), j.E()] for j in jets])
        np.testing.assert_allclose(sub.vectors[k, :len(jets)].numpy(), fj, rtol=1e-7, atol=1e-7)


def test_nsubjettiness_hand_computed():
    # two equal massless particles at eta = +-0.1: tau1 axis at eta 0, tau1 = (0.1 + 0.1) pT / (2 pT 0.8)
    p = torch.tensor([[massless(50, 0.1, 0), massless(50, -0.1, 0)]], dtype=torch.float64)
    m = p[..., 0] > 0
    assert nsubjettiness(p, m, 1).item() == pytest.approx(0.125, abs=1e-12)
    assert nsubjettiness(p, m, 2).item() == pytest.approx(0.0, abs=1e-12)
    # three particles at y = 0 except B: tau2 axes are A+C (at phi_AC) and B
    p = torch.tensor([[massless(100, 0, 0), massless(100, 0.3, 0), massless(10, 0, 0.2)]], dtype=torch.float64)
    phi_ac = math.atan2(10 * math.sin(0.2), 100 + 10 * math.cos(0.2))
    want = (100 * phi_ac + 10 * (0.2 - phi_ac)) / (210 * 0.8)
    assert nsubjettiness(p, p[..., 0] > 0, 2).item() == pytest.approx(want, rel=1e-10)
    mass, t21, t32 = substructure_features(p, p[..., 0] > 0)[0].tolist()
    assert t32 == 0.0 and t21 > 0
    e, px = p[0, :, 3].sum(), (p[0, :, 0] * torch.cos(p[0, :, 2])).sum()
    py, pz = (p[0, :, 0] * torch.sin(p[0, :, 2])).sum(), (p[0, :, 0] * torch.sinh(p[0, :, 1])).sum()
    assert mass == pytest.approx(math.sqrt(e ** 2 - px ** 2 - py ** 2 - pz ** 2), rel=1e-9)


def test_encoder_is_permutation_invariant(toy):
    x, m = toy
    x = x.float()
    model = small_jjepa()
    bb = model.backbone.eval()
    perm = torch.randperm(x.shape[1], generator=torch.Generator().manual_seed(0))  # padding moves too
    h, hp = bb(x), bb(x[:, perm])
    assert torch.allclose(h[:, perm], hp, atol=1e-5)
    assert torch.allclose(bb.embed(x), bb.embed(x[:, perm]), atol=1e-5)
    assert torch.allclose(model.embed(x, pool="mean+max"), model.embed(x[:, perm], pool="mean+max"), atol=1e-5)
    # the context embedding depends on which particles are kept, not on their order
    keep = m & (torch.rand(m.shape, generator=torch.Generator().manual_seed(1)) < 0.6)
    keep[:, 0] = True
    z, valid = bb.context(x, keep)
    zp, validp = bb.context(x[:, perm], keep[:, perm])
    pool = lambda z, v: (z * v[..., None]).sum(1) / v.sum(1, keepdim=True)  # noqa: E731
    assert torch.allclose(pool(z, valid), pool(zp, validp), atol=1e-5)


def test_masker_splits_whole_subjets(toy):
    x, m = toy
    masker = SubjetMasker(n_subjets=6, n_targets=2)
    b = masker(x, torch.Generator().manual_seed(0))
    is_target = (b["labels"][:, :, None] == b["targets"][:, None]) & b["target_valid"][:, None]
    in_target = is_target.any(2)
    assert ((b["keep"] ^ in_target) == m).all() and not (b["keep"] & in_target).any()  # a partition of the jet
    assert (is_target.sum(2) <= 1).all()                                                # targets are distinct subjets
    for k in range(len(x)):  # a subjet is either all context or all target
        for s in b["labels"][k][m[k]].unique():
            assert b["keep"][k][b["labels"][k] == s].unique().numel() == 1
    assert b["keep"].any(1).all() and b["target_valid"].all()
    again = masker(x, torch.Generator().manual_seed(0))
    assert all(torch.equal(b[k], again[k]) for k in b)


def test_masker_leaves_context_in_small_jets():
    p = torch.zeros(3, 4, 4, dtype=torch.float64)
    p[0, 0] = torch.tensor(massless(100, 0, 0))                       # one particle: no target
    p[1, :2] = torch.tensor([massless(60, 0, 0), massless(40, 0.2, 0.1)])  # two: one target
    p[2, :3] = torch.tensor([massless(60, 0, 0), massless(40, 0.2, 0.1), massless(5, -0.3, 0.2)])
    b = SubjetMasker(n_subjets=6, n_targets=3)(p, torch.Generator().manual_seed(0))
    assert b["target_valid"].sum(1).tolist() == [0, 1, 2]
    assert b["keep"].sum(1).tolist() == [1, 1, 1]


def test_jjepa_gradients_reach_online_parts_only(toy):
    x, _ = toy
    model = small_jjepa()
    batch = model.make_batch(x.float(), torch.Generator().manual_seed(0))
    out = model.loss(batch)
    assert torch.isfinite(out["loss"])
    out["loss"].backward()
    for mod in model.trainable_modules():
        for name, p in mod.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert all(p.grad is None for p in model.target.parameters())
    # the loss is the per-feature squared error between prediction and the target subjets' mean tokens
    with torch.no_grad():
        h = subjet_means(model.target(batch["x"]), batch["labels"], batch["targets"])
        z, v = model.backbone.context(batch["x"], batch["keep"])
        p = model.predictor(z, v, batch["target_axes"], batch["target_valid"])
        want = (p - h).pow(2).mean(-1)[batch["target_valid"]].mean()
    assert out["loss"].item() == pytest.approx(want.item(), rel=1e-5)


def test_subjet_means_is_the_mean_over_members():
    h = torch.arange(12.0).reshape(1, 4, 3)
    labels, targets = torch.tensor([[0, 1, 0, -1]]), torch.tensor([[0, 1]])
    out = subjet_means(h, labels, targets)
    assert torch.equal(out[0, 0], (h[0, 0] + h[0, 2]) / 2) and torch.equal(out[0, 1], h[0, 1])


@pytest.mark.parametrize("problem, match", [
    ("empty", "no particles"), ("nan", "NaN or inf"), ("features", "4 features"), ("negative", "pT <= 0"),
])
def test_bad_jets_give_one_line(problem, match, tmp_path):
    d = toy_jets(10, max_particles=16)
    p = d["particles"].copy()
    if problem == "empty":
        p[3] = 0
    elif problem == "nan":
        p[2, 1, 0] = np.nan
    elif problem == "features":
        p = p[..., :3]
    else:
        p[1, 0, 3] = -1.0
    path = tmp_path / "bad.npz"
    np.savez(path, particles=p, labels=d["labels"])
    with pytest.raises(UserError, match=match) as e:
        load_jets(str(path))
    assert "\n" not in str(e.value)
    with pytest.raises(UserError, match=match):
        check_particles(p)


def test_bad_jets_through_the_cli(tmp_path, capsys):
    from polyjepa.cli import main

    p = toy_jets(10, max_particles=16)["particles"]
    p[0, 0, 1] = np.inf
    path = tmp_path / "bad.npz"
    np.savez(path, particles=p)
    assert main(["pretrain", "jjepa-jets", "--data", str(path), "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("polyjepa: error: ") and "NaN or inf" in err and err.count("\n") == 0


def test_jet_file_round_trip_and_split(tmp_path):
    d = toy_jets(30, max_particles=20, seed=2)
    split = np.where(np.arange(30) < 20, "train", "test")
    save_jets(tmp_path / "j.npz", d["particles"], d["mask"], d["labels"], split=split)
    with np.load(tmp_path / "j.npz", allow_pickle=False) as z:
        assert z["particles"].dtype == np.float32 and z["mask"].dtype == bool
    loaded = load_jets(str(tmp_path / "j.npz"), max_particles=12)
    assert loaded.x.shape == (20, 12, 4) and loaded.x_test.shape == (10, 12, 4)
    np.testing.assert_array_equal(loaded.y_test, d["labels"][20:])
    np.testing.assert_array_equal(loaded.x[:, :, 0], d["particles"][:20, :12, 0])  # leading particles kept


@pytest.mark.skipif(not CMS.exists(), reason="../shared/data/cms_pfnano_10events_jets.npz is absent")
@pytest.mark.parametrize("kind", ["ak8", "ak4"])
def test_cms_pfnano_reader(kind):
    d = read_cms_pfnano(CMS, jets=kind, max_particles=128)
    n = {"ak8": 24, "ak4": 64}[kind]
    assert d["particles"].shape == (n, 128, 4) and d["mask"].shape == (n, 128) and d["jets"].shape == (n, 4)
    x, m = torch.from_numpy(d["particles"]).double(), torch.from_numpy(d["mask"])
    assert m.any(1).all() and (x[..., 0][m] > 0).all() and (x[..., 0][~m] == 0).all()
    assert (x[..., 3][m] >= x[..., 0][m] * torch.cosh(x[..., 1][m]) * (1 - 1e-5)).all()   # E >= |p| of massless
    # the constituents add up to the stored jet: same direction, pT within the jet energy corrections
    jet = from_cartesian(jet_vector(x, m)).numpy()
    stored = d["jets"].astype(np.float64)
    assert np.abs(jet[:, 1] - stored[:, 1]).max() < 0.02
    assert np.abs((jet[:, 2] - stored[:, 2] + np.pi) % (2 * np.pi) - np.pi).max() < 0.02
    assert 0.85 < np.median(jet[:, 0] / stored[:, 0]) < 1.0     # raw sum below the corrected jet pT
    loaded = load_jets(str(CMS), max_particles=64, jets=kind)
    assert loaded.x.shape[1:] == (64, 4) and len(loaded.x) == n and loaded.y is None


def test_toy_jets_are_seeded_and_labelled():
    a, b = toy_jets(12, seed=5), toy_jets(12, seed=5)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert set(np.unique(a["labels"])) <= {0, 1, 2}
    jets = torch.from_numpy(a["particles"]).double()
    pt = from_cartesian(jet_vector(jets, torch.from_numpy(a["mask"])))[:, 0]
    assert torch.allclose(pt, torch.full_like(pt, 600.0), rtol=0.05)


def test_recipe_pretrains_on_toy_jets(tmp_path):
    import polyjepa as pj

    small = ["data.n=120", "data.max_particles=24", "encoder.dim=16", "encoder.depth=1", "encoder.heads=2",
             "tokenizer.hidden=16", "predictor.dim=16", "predictor.depth=1", "predictor.heads=2",
             "train.batch_size=32", "train.max_steps=4", "train.log_every=2", "train.monitor_every=2",
             "train.checkpoint_every=2", "eval.monitor_samples=32", "train.threads=1"]
    s = pj.pretrain("jjepa-jets", out=str(tmp_path / "run"), overrides=small, progress=False, echo=lambda *_: None)
    assert s["steps"] == 4 and np.isfinite(s["final_loss"]) and s["embedding"]["dim"] == 16
    assert s["embedding"]["encoder"] == "target" and s["probe"]["linear"]["accuracy"] > 0.5   # 3 prong counts: chance 1/3


def test_generator_selects_jets_in_the_window():
    pytest.importorskip("pythia8mc", reason="pythia8mc (polyjepa[jets]) is not installed")
    pytest.importorskip("fastjet", reason="fastjet (polyjepa[jets]) is not installed")
    from polyjepa.jets.generate import generate

    d = generate(4, seed=3, max_particles=128, echo=lambda *_: None)
    x, m = torch.from_numpy(d["particles"]).double(), torch.from_numpy(d["mask"])
    jet = from_cartesian(jet_vector(x, m))
    assert ((jet[:, 0] > 550) & (jet[:, 0] < 650)).all() and (jet[:, 1].abs() < 2).all()
    assert sorted(d["labels"].tolist()) == [0, 0, 1, 1] and (m.sum(1) == torch.from_numpy(d["n_constituents"]).clamp(max=128)).all()
    again = generate(4, seed=3, max_particles=128, echo=lambda *_: None)
    assert np.array_equal(d["particles"], again["particles"])


def test_a_single_npy_array_and_an_interrupted_save_are_handled(tmp_path):
    d = toy_jets(6, max_particles=8)
    np.save(tmp_path / "p.npy", d["particles"])
    with pytest.raises(UserError, match="single .npy array"):
        load_jets(str(tmp_path / "p.npy"))
    out = save_jets(tmp_path / "set", d["particles"], d["mask"], d["labels"])      # .npz appended, then renamed
    assert out == tmp_path / "set.npz" and sorted(p.name for p in tmp_path.iterdir()) == ["p.npy", "set.npz"]
    assert np.array_equal(load_jets(str(out)).y, d["labels"])
