"""The k-means-fitted residual quantiser, patch extraction, and masked token prediction on its ids."""
import numpy as np
import pytest
import torch
from torch import nn

from polyjepa.methods.token_prediction import codebook_cross_entropy
from polyjepa.targets.rvq import ResidualVQ, kmeans, nearest_code, patchify

from .test_audio_data import tone_clips, write_npz
from .test_audio_recipe import AUDIO_TINY


def clustered(n=2000, dim=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(12, dim, generator=g) * 3
    return centres[torch.randint(12, (n,), generator=g)] + 0.5 * torch.randn(n, dim, generator=g)


def test_kmeans_recovers_separated_clusters_and_uses_every_code():
    g = torch.Generator().manual_seed(1)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    x = centres.repeat_interleave(100, 0) + 0.1 * torch.randn(300, 2, generator=g)
    c = kmeans(x, 3, generator=torch.Generator().manual_seed(0))
    found = c[nearest_code(centres.double(), c)]
    assert torch.allclose(found, centres.double(), atol=0.1)
    # more codes than clusters: no code left empty
    c8 = kmeans(x, 8, generator=torch.Generator().manual_seed(0))
    assert len(torch.unique(nearest_code(x.double(), c8))) == 8


def test_residual_error_shrinks_with_every_codebook():
    x = clustered()
    rvq = ResidualVQ(dim=6, n_codebooks=4, n_codes=16).fit(x, seed=0)
    err = rvq.residual_errors(x)
    assert len(err) == 5
    assert all(b < a for a, b in zip(err, err[1:])), err
    assert err[-1] < 0.2 * err[0]


def test_quantize_is_greedy_nearest_code_on_residuals_and_decodes_exactly():
    x = clustered(300)
    rvq = ResidualVQ(dim=6, n_codebooks=3, n_codes=8).fit(x, seed=3)
    ids = rvq.quantize(x)
    books = rvq.codebooks.numpy()
    r = x.double().numpy().copy()
    direct = np.zeros((300, 3), dtype=np.int64)
    recon = np.zeros_like(r)
    for c in range(3):                                   # brute force, one vector at a time
        for i in range(300):
            d = ((books[c] - r[i]) ** 2).sum(1)
            direct[i, c] = int(d.argmin())
        r = r - books[c][direct[:, c]]
        recon = recon + books[c][direct[:, c]]
    assert np.array_equal(ids.numpy(), direct)
    assert np.allclose(rvq.dequantize(ids).numpy(), recon, atol=1e-5)
    assert np.allclose((x.double() - rvq.dequantize(ids)).numpy(), r, atol=1e-5)      # what is left is the last residual
    assert ids.dtype == torch.int64 and ids.min() >= 0 and ids.max() < 8
    assert rvq.quantize(x.view(30, 10, 6)).shape == (30, 10, 3)


def test_fit_is_deterministic_under_seed():
    x = clustered()
    a = ResidualVQ(dim=6, n_codebooks=2, n_codes=16).fit(x, seed=5)
    b = ResidualVQ(dim=6, n_codebooks=2, n_codes=16).fit(x, seed=5)
    c = ResidualVQ(dim=6, n_codebooks=2, n_codes=16).fit(x, seed=6)
    assert torch.equal(a.codebooks, b.codebooks)
    assert not torch.equal(a.codebooks, c.codebooks)


def test_unfitted_quantizer_refuses_and_perplexity_bounds():
    rvq = ResidualVQ(dim=2, n_codebooks=1, n_codes=4)
    with pytest.raises(RuntimeError, match="not fitted"):
        rvq.quantize(torch.zeros(3, 2))
    ids = torch.tensor([[0], [1], [2], [3]])
    assert torch.allclose(rvq.perplexity(ids), torch.tensor([4.0], dtype=torch.float64))
    assert torch.allclose(rvq.perplexity(torch.zeros(5, 1, dtype=torch.long)), torch.tensor([1.0], dtype=torch.float64))


@pytest.mark.parametrize("conv,shape", [(nn.Conv1d(3, 5, 4, stride=4), (2, 3, 17)),
                                        (nn.Conv2d(2, 5, (4, 2), stride=(4, 2)), (2, 2, 8, 7)),
                                        (nn.Conv3d(1, 5, (2, 3, 3), stride=(2, 3, 3)), (2, 1, 4, 6, 9))])
def test_patchify_reads_what_the_patch_convolution_reads(conv, shape):
    x = torch.randn(*shape, dtype=torch.float64)
    conv = conv.double()
    tokens = conv(x).flatten(2).transpose(1, 2)
    p = patchify(x, tuple(conv.kernel_size))
    assert torch.allclose(tokens, p @ conv.weight.flatten(1).T + conv.bias, atol=1e-10)


def test_codebook_cross_entropy_is_the_mean_of_per_codebook_cross_entropies():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 5, 4, 7, generator=g)     # (B, M, Nt, C, K)
    ids = torch.randint(7, (2, 3, 5, 4), generator=g)
    out = codebook_cross_entropy(logits, ids)
    lp = torch.log_softmax(logits, -1)
    direct = -lp.gather(-1, ids[..., None]).squeeze(-1).mean(dim=(0, 1, 2))   # (C,)
    assert torch.allclose(out["loss"], direct.mean(), atol=1e-6)
    assert torch.allclose(out["ce_2"], direct[1], atol=1e-6)


def test_token_prediction_gradients_and_frozen_target():
    from polyjepa.build import build_method
    from polyjepa.config import load_recipe

    cfg = load_recipe("muq-fsdd", AUDIO_TINY + ["target.n_codes=8", "target.max_vectors=500"])
    method = build_method(cfg, (1, 32, 64), seed=0)
    x = torch.randn(16, 1, 32, 64)
    method.fit_targets(x.numpy(), seed=0)
    assert bool(method.target.rvq.fitted) and list(method.target.parameters()) == []
    c, t = method.masker(16, torch.Generator().manual_seed(0), progress=1.0)
    out = method({"x": x, "context_idx": c, "target_idx": t})
    assert set(out) >= {"loss", "ce_1", "ce_4", "acc_1"}
    assert abs(float(out["loss"].detach()) - np.log(8)) < 1.0                   # near chance at initialisation
    out["loss"].backward()
    for name, p in method.named_parameters():
        if p.requires_grad and not name.startswith("target"):
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert method.encoder() is method.backbone


def test_muq_recipe_trains_fits_codebooks_and_resumes_them(tmp_path):
    import csv

    from polyjepa.runner import load_run_method, pretrain

    clips, y = tone_clips(90)
    data = write_npz(tmp_path / "tones.npz", clips, y, take=np.arange(90) % 50)
    out = tmp_path / "run"
    over = AUDIO_TINY + ["target.n_codes=8", "target.max_vectors=2000", "eval.baselines=false"]
    s = pretrain("muq-fsdd", data=str(data), out=str(out), overrides=over, progress=False, echo=lambda *a: None)
    assert s["steps"] == 8
    with open(out / "metrics.csv") as f:
        losses = [float(r["loss"]) for r in csv.DictReader(f) if r["loss"]]
    assert all(np.isfinite(losses))
    method = load_run_method(out)[0]
    assert bool(method.target.rvq.fitted) and method.target.rvq.codebooks.abs().sum() > 0
    # the codebooks come back from the checkpoint, equal to a fresh fit with the run's seed
    from polyjepa.audio.data import load_audio

    fresh = load_run_method(out)[0].target
    x = load_audio(str(data), frames=64, n_mels=32, crop="stretch").x
    fresh.fit(x, seed=0)
    assert torch.equal(fresh.rvq.codebooks, method.target.rvq.codebooks)


def test_token_prediction_refuses_an_objective_and_a_teacher_readout():
    from polyjepa.build import build_method
    from polyjepa.config import load_recipe
    from polyjepa.errors import UserError

    with pytest.raises(UserError, match="drop the objective"):
        build_method(load_recipe("muq-fsdd", AUDIO_TINY + ["objective.name=latent_regression"]), (1, 32, 64))
    with pytest.raises(UserError, match="embed_from=online"):
        build_method(load_recipe("muq-fsdd", AUDIO_TINY + ["method.embed_from=target"]), (1, 32, 64))
