"""seq-JEPA: views and their actions, an aggregator that reads only relative actions, training and the recipe."""
import numpy as np
import pytest
import torch

TINY = ["encoder.dim=32", "encoder.depth=1", "encoder.heads=2", "tokenizer.patch_size=2", "method.agg_depth=1",
        "method.pred_hidden=32", "method.action_width=8", "train.batch_size=32", "train.max_steps=4",
        "train.monitor_every=0", "data.max_samples=300", "data.test_size=0.2"]


def build(extra=()):
    from polyjepa.build import build_method
    from polyjepa.config import load_recipe

    return build_method(load_recipe("seqjepa-mnist", TINY + list(extra)), (1, 8, 8))


def test_views_are_the_actions_applied():
    m = build()
    x = torch.randn(5, 1, 8, 8)
    b = m.make_batch(x, torch.Generator().manual_seed(0))
    assert b["views"].shape == (5, 4, 1, 8, 8) and b["action"].shape == (5, 4, 6)
    for i in range(4):
        assert torch.allclose(b["views"][:, i], m.actions.apply(x, b["action"][:, i]), atol=1e-6)
    assert (b["action"][..., 2:] == 0).all()  # the recipe's views only rotate and zoom


def test_the_aggregate_reads_relative_actions_only_and_in_order():
    m = build().eval()
    g = torch.Generator().manual_seed(1)
    emb, u = torch.randn(4, 3, 32, generator=g), torch.rand(4, 4, 6, generator=g)
    agg, last = m.aggregate(emb, u)
    agg2, last2 = m.aggregate(emb, u + torch.rand(4, 1, 6, generator=g))  # the same offset on every view
    assert torch.allclose(agg, agg2, atol=1e-5) and torch.allclose(last, last2, atol=1e-5)
    assert not torch.allclose(agg, m.aggregate(emb, u * 2)[0], atol=1e-4)          # other relative actions
    assert not torch.allclose(agg, m.aggregate(emb.flip(1), u)[0], atol=1e-4)      # another order of views
    m.withhold_action = True
    assert torch.equal(m.aggregate(emb, u)[0], m.aggregate(emb, u * 2)[0])


def test_loss_trains_online_parts_not_the_target():
    m = build()
    b = m.make_batch(torch.randn(8, 1, 8, 8), torch.Generator().manual_seed(0))
    out = m.loss(b)
    out["loss"].backward()
    assert torch.isfinite(out["loss"]) and 0 <= float(out["loss"].detach()) <= 2
    for mod in (m.backbone, m.agg_in, m.agg_blocks, m.predictor):
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in mod.parameters())
    assert m.agg_token.grad is not None and m.action_proj[0].weight.grad is not None
    assert all(p.grad is None for p in m.target.parameters())
    names = {n for mod in m.trainable_modules() for n, p in mod.named_parameters() if p.requires_grad}
    assert not any(n.startswith("target.") for n in names)


@pytest.mark.slow
def test_seqjepa_recipe_pretrains_on_digits(tmp_path):
    from polyjepa.runner import load_run_method, pretrain

    s = pretrain("seqjepa-mnist", data="digits", out=str(tmp_path / "run"), overrides=TINY + ["eval.baselines=false"],
                 progress=False, echo=lambda *a: None)
    assert s["steps"] == 4 and np.isfinite(s["final_loss"])
    method, _, _ = load_run_method(tmp_path / "run")
    views = torch.randn(3, 3, 1, 8, 8)
    assert method.embed_sequence(views, torch.zeros(3, 4, 6)).shape == (3, 32)
