"""The core conditioned predictor: reduces to the plain one, uses its condition, refuses a wrong width."""
import pytest
import torch

from polyjepa.errors import UserError
from polyjepa.models.conditioned import ConditionedPredictor
from polyjepa.models.predictor import MaskTokenPredictor


def setup(seed=0, **kwargs):
    g = torch.Generator().manual_seed(seed)
    pos = torch.randn(12, 16, generator=g)
    kw = dict(in_dim=24, dim=16, depth=2, heads=4, pos_embed=pos)
    torch.manual_seed(seed)
    cond_pred = ConditionedPredictor(**kw, **kwargs)
    with torch.no_grad():  # nothing zero-initialised stays zero: the checks below must not hold by accident
        for p in cond_pred.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    plain = MaskTokenPredictor(**kw)
    missing, unexpected = plain.load_state_dict(cond_pred.state_dict(), strict=False)
    assert not missing and all(k.startswith(("condition", "cond_index", "film")) for k in unexpected)
    z = torch.randn(3, 7, 24, generator=g)
    context_idx = torch.stack([torch.randperm(12, generator=g)[:7].sort().values for _ in range(3)])
    target_idx = torch.randint(0, 12, (3, 2, 4), generator=g)
    return cond_pred, plain, z, context_idx, target_idx


@pytest.mark.parametrize("inject", ["tokens", "add", "film"])
def test_without_a_condition_it_is_the_plain_predictor(inject):
    pred, plain, z, ci, ti = setup(cond_dim=5, inject=inject)
    assert torch.allclose(pred(z, ci, ti), plain(z, ci, ti), atol=1e-6)
    assert torch.allclose(pred(z, ci, ti, cond=None), plain(z, ci, ti), atol=1e-6)


def test_a_constant_condition_is_a_shift_of_the_mask_token():
    pred, plain, z, ci, ti = setup(cond_dim=5, inject="add")
    c = torch.randn(5)
    with torch.no_grad():
        plain.mask_token.add_(pred.condition(c[None])[0])  # the MLP's embedding of the constant condition
    out = pred(z, ci, ti, cond=c.expand(3, 5))
    assert torch.allclose(out, plain(z, ci, ti), atol=1e-5)
    assert not torch.allclose(out, pred(z, ci, ti), atol=1e-3)


@pytest.mark.parametrize("inject", ["tokens", "add", "film"])
def test_the_condition_changes_the_prediction_and_gets_gradients(inject):
    pred, _, z, ci, ti = setup(cond_dim=5, inject=inject, cond_len=1)
    c = torch.randn(3, 5)
    a, b = pred(z, ci, ti, cond=c), pred(z, ci, ti, cond=c.flip(0))
    assert a.shape == (3, 2, 4, 24) and torch.isfinite(a).all()
    assert not torch.allclose(a[0], b[0], atol=1e-4)  # sample 0 got another condition
    assert torch.allclose(a[1], b[1], atol=1e-6)      # sample 1 kept its own: samples do not mix
    a.square().sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in pred.parameters())


def test_film_starts_as_the_plain_predictor():
    torch.manual_seed(0)
    kw = dict(in_dim=24, dim=16, depth=2, heads=4, pos_embed=torch.randn(12, 16))
    pred = ConditionedPredictor(**kw, cond_dim=3, inject="film")
    z, ci, ti = torch.randn(2, 5, 24), torch.arange(5).expand(2, 5), torch.arange(5, 9).view(1, 1, 4).expand(2, 1, 4)
    assert torch.equal(pred(z, ci, ti, cond=torch.randn(2, 3)), pred(z, ci, ti))


def test_sequences_of_conditions_are_ordered():
    pred, plain, z, ci, ti = setup(cond_dim=2, cond_len=3, inject="tokens")
    seq = torch.randn(3, 3, 2)
    out = pred(z, ci, ti, cond=seq)
    assert not torch.allclose(out, pred(z, ci, ti, cond=seq.flip(1)), atol=1e-4)  # order is read
    assert pred(z, ci, ti, cond=seq[:, :2]).shape == out.shape                     # shorter chunks are fine
    flat, _, _, _, _ = setup(cond_dim=2, cond_len=3, inject="add")
    assert not torch.allclose(flat(z, ci, ti, cond=seq), flat(z, ci, ti, cond=seq.flip(1)), atol=1e-4)


def test_ids_through_an_embedding_table():
    pred, _, z, ci, ti = setup(n_conditions=3, inject="tokens")
    a = pred(z, ci, ti, cond=torch.tensor([0, 1, 2]))
    assert not torch.allclose(a, pred(z, ci, ti, cond=torch.tensor([1, 1, 1])), atol=1e-4)
    assert torch.equal(pred(z, ci, ti, cond=torch.tensor([2, 2, 2])), pred(z, ci, ti, cond=torch.tensor([7, 7, 7])))


def test_a_condition_of_the_wrong_width_is_one_clear_line():
    pred, _, z, ci, ti = setup(cond_dim=5, inject="add")
    for bad in (torch.randn(3, 4), torch.randn(3, 2, 5), torch.randn(2, 5), torch.zeros(3, 5, dtype=torch.long)):
        with pytest.raises(UserError, match="width 5") as err:
            pred(z, ci, ti, cond=bad)
        assert "\n" not in str(err.value)
    seq, _, _, _, _ = setup(cond_dim=2, cond_len=3, inject="tokens")
    with pytest.raises(UserError, match=r"S <= 3"):
        seq(z, ci, ti, cond=torch.randn(3, 4, 2))
    with pytest.raises(UserError, match=r"ids in \[0, 3\)"):
        setup(n_conditions=3)[0](z, ci, ti, cond=torch.randn(3, 3))


def test_bad_settings():
    kw = dict(in_dim=8, dim=8, depth=1, heads=2, pos_embed=torch.zeros(4, 8))
    for bad in (dict(cond_dim=0), dict(cond_dim=2, n_conditions=2), dict(cond_dim=2, inject="concat"),
                dict(cond_dim=2, predict_at="everywhere"), dict(cond_dim=2, cond_len=0)):
        with pytest.raises(ValueError):
            ConditionedPredictor(**kw, **bad)


def test_predict_at_tokens_and_the_recipe_part():
    from omegaconf import OmegaConf

    from polyjepa.registry import build_part

    cfg = OmegaConf.create({"predictor": {"name": "conditioned"}})
    pred = build_part("predictor", cfg, {"dim": 8, "depth": 1, "heads": 2, "cond_dim": 3, "predict_at": "tokens"},
                      in_dim=16, pos_embed=torch.zeros(6, 8))
    assert isinstance(pred, ConditionedPredictor)
    assert pred(torch.randn(2, 6, 16), cond=torch.randn(2, 3)).shape == (2, 6, 16)
