"""Conditioned prediction on two-clip mixtures: mixing on the log-mel scale, the mixer, the predictor, the recipe."""
import numpy as np
import pytest
import torch

from polyjepa.audio.conditioned import stem_predictor
from polyjepa.audio.mixtures import TwoClipMixer, mix_log_mel, shift_frames

from .test_audio_data import tone_clips, write_npz
from .test_audio_recipe import AUDIO_TINY


def padded(B=4, M=6, T=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, 1, M, T, generator=g)
    for b in range(B):
        x[b, :, :, 4 + b:] = 0.0                             # clip b has 4 + b real frames
    return x


def test_shift_frames_by_hand():
    x = padded()
    y = shift_frames(x, torch.tensor([0, 1, 3, 12]))
    for b, k in enumerate([0, 1, 3, 12]):
        for t in range(10):
            expected = x[b, :, :, t - k] if t - k >= 0 else torch.zeros_like(x[b, :, :, 0])
            assert torch.equal(y[b, :, :, t], expected)


def test_mix_adds_mel_energies_and_treats_padding_as_silence():
    a, b = padded(seed=0), shift_frames(padded(seed=1), torch.full((4,), 3))
    mean, std = -4.0, 2.5
    m = mix_log_mel(a, b, mean=mean, std=std)
    pa = np.where((a == 0).all(2, keepdim=True).numpy(), 0.0, np.exp(a.double().numpy() * std + mean))
    pb = np.where((b == 0).all(2, keepdim=True).numpy(), 0.0, np.exp(b.double().numpy() * std + mean))
    with np.errstate(divide="ignore"):
        expected = (np.log(pa + pb) - mean) / std
    expected[~np.isfinite(expected)] = 0.0
    assert np.allclose(m.numpy(), expected, atol=1e-5)
    assert torch.allclose(mix_log_mel(b, a, mean=mean, std=std), m)              # symmetric
    silence = torch.zeros_like(a)
    assert torch.allclose(mix_log_mel(a, silence, mean=mean, std=std), a, atol=1e-6)
    assert (m >= torch.maximum(a, b) - 1e-6)[~((a == 0) | (b == 0)).all(2, keepdim=True).expand_as(a)].all()


def test_mixer_targets_the_clip_named_by_the_condition():
    x = padded(B=6, T=12)
    mixer = TwoClipMixer(mean=-4.0, std=2.0, offset=(2, 4))
    batch = mixer(x, torch.Generator().manual_seed(0))
    again = mixer(x, torch.Generator().manual_seed(0))
    assert all(torch.equal(batch[k], again[k]) for k in batch)
    cond = batch["cond"]
    assert set(cond.tolist()) <= {0, 1}
    for i in range(6):
        if cond[i] == 0:
            assert torch.equal(batch["target_x"][i], x[i])
        else:                                                  # another clip, delayed by 2-4 frames
            t = batch["target_x"][i]
            assert (t[..., :2] == 0).all() and not any(torch.equal(t, x[j]) for j in range(6))
            assert any(torch.equal(t, shift_frames(x[j:j + 1], torch.tensor([k]))[0]) for j in range(6) if j != i
                       for k in (2, 3, 4))
    with pytest.raises(ValueError, match="offset"):
        TwoClipMixer(mean=0.0, std=1.0, offset=(5, 2))


def test_predictor_uses_its_condition_token():
    pred = stem_predictor(in_dim=16, dim=8, depth=1, heads=2, pos_embed=torch.zeros(5, 8), n_conditions=2)
    z = torch.randn(3, 5, 16)
    a, b = pred(z, cond=torch.zeros(3, dtype=torch.long)), pred(z, cond=torch.ones(3, dtype=torch.long))
    assert a.shape == (3, 5, 16) and not torch.allclose(a, b)
    (a.sum() + b.sum()).backward()
    assert all(p.grad is not None for p in pred.parameters())
    blind = stem_predictor(in_dim=16, dim=8, depth=1, heads=2, pos_embed=torch.zeros(5, 8), n_conditions=1)
    assert torch.equal(blind(z, cond=torch.zeros(3, dtype=torch.long)), blind(z, cond=torch.ones(3, dtype=torch.long)))


def test_conditioned_recipe_trains_and_evaluates(tmp_path):
    from polyjepa.runner import load_run_method, pretrain

    clips, y = tone_clips(60)
    data = write_npz(tmp_path / "tones.npz", clips, y, take=np.arange(60) % 50)
    out = tmp_path / "run"
    s = pretrain("ajepa-stem", data=str(data), out=str(out), overrides=AUDIO_TINY + ["eval.baselines=false"],
                 progress=False, echo=lambda *a: None)
    assert s["steps"] == 8 and np.isfinite(s["final_loss"]) and 0 <= s["probe"]["linear"]["accuracy"] <= 1
    method, _, _ = load_run_method(out)
    x = torch.randn(4, 1, 32, 64)
    assert method.predict(x, torch.tensor([0, 1, 0, 1])).shape == (4, 128, 64)


def test_stem_predictor_initialises_as_the_audio_only_predictor_did():
    """Pinned values of the audio-only Stem-JEPA predictor (same seed, sizes and input): the core part in its
    Stem configuration creates and initialises its parameters in the same order, so runs train the same."""
    torch.manual_seed(3)
    pred = stem_predictor(in_dim=16, dim=8, depth=2, heads=2, pos_embed=torch.randn(5, 8), n_conditions=2)
    z = torch.randn(3, 5, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = pred(z, cond=torch.tensor([0, 1, 1]))
    assert pred.condition.weight[0, :3].tolist() == pytest.approx([-0.0011357598, -0.0444708243, 0.0131930392], abs=1e-6)
    assert out[0, 0, :4].tolist() == pytest.approx([-0.0721366331, 0.0205413904, 0.0420818627, -0.0495671965], abs=1e-5)
    assert float(out.sum()) == pytest.approx(0.4304772019, abs=1e-4)
