"""The point-cloud recipes end to end: pretrain -> run directory and summary.json -> embed."""
import json

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

import polyjepa as pj
from polyjepa.config import load_recipe

SMALL = ["data.points=64", "tokenizer.n_groups=8", "tokenizer.group_size=8", "tokenizer.widths=[16,16,32]",
         "encoder.dim=32", "encoder.depth=1", "encoder.heads=2", "predictor.dim=16", "predictor.depth=1",
         "predictor.heads=2", "masker.n_targets=2", "masker.target_scale=[0.2,0.25]", "train.batch_size=16",
         "train.max_steps=4", "train.log_every=2", "train.monitor_every=2", "train.checkpoint_every=2",
         "eval.monitor_samples=32", "train.threads=1"]


@pytest.fixture
def shapes_npz(tmp_path):
    """Spheres, cubes and cylinders as (n, 100, 3) clouds with labels."""
    rng = np.random.default_rng(0)
    out, y = [], []
    for i in range(72):
        c = i % 3
        p = rng.normal(size=(100, 3))
        if c == 0:
            p /= np.linalg.norm(p, axis=1, keepdims=True)
        elif c == 1:
            p = np.clip(p, -1, 1)
            p[np.arange(100), rng.integers(0, 3, 100)] = rng.choice([-1, 1], 100)
        else:
            p[:, :2] /= np.linalg.norm(p[:, :2], axis=1, keepdims=True)
            p[:, 2] = rng.uniform(-1, 1, 100)
        out.append(p * rng.uniform(0.5, 2))
        y.append(c)
    path = tmp_path / "shapes.npz"
    np.savez(path, points=np.stack(out), labels=np.array(y))
    return path


@pytest.mark.parametrize("recipe", ["pointjepa", "jepa3d"])
def test_pretrain_writes_the_run_contract(recipe, shapes_npz, tmp_path):
    out = tmp_path / recipe
    s = pj.pretrain(recipe, data=str(shapes_npz), out=str(out), overrides=SMALL, progress=False, echo=lambda *_: None)
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["schema"] == "polyjepa-summary/1" and on_disk["steps"] == 4 and np.isfinite(on_disk["final_loss"])
    assert s["embedding"]["pool"] == "mean+max" and s["embedding"]["dim"] == 64
    for key in ("linear", "knn"):
        assert 0 <= s["probe"][key]["accuracy"] <= 1 and key in s["baselines"]["random_init"]
    assert (out / "encoder.safetensors").exists() and (out / "report.md").exists()
    # Both recipes evaluate and export the EMA target encoder (not the online one, which differs after training).
    assert s["embedding"]["encoder"] == "target"
    from safetensors.torch import load_file

    from polyjepa.runner import load_run_method

    method = load_run_method(out)[0]
    exported = load_file(out / "encoder.safetensors")
    assert all(torch.equal(exported[k], v) for k, v in method.target.model.state_dict().items())
    assert not all(torch.equal(exported[k], v) for k, v in method.backbone.state_dict().items())
    emb = pj.embed_run(str(out), str(shapes_npz))
    assert emb.shape == (72, 64) and np.isfinite(emb).all()


def test_a_read_out_clouds_lack_fails_before_the_run_exists(shapes_npz, tmp_path):
    from polyjepa.errors import UserError

    with pytest.raises(UserError, match="eval.pool='grid:2'.*use one of mean, max, mean\\+max, mean\\+std"):
        pj.pretrain("pointjepa", data=str(shapes_npz), out=str(tmp_path / "run"), progress=False,
                    overrides=SMALL + ["eval.pool=grid:2"], echo=lambda *a: None)
    assert not (tmp_path / "run").exists()


def test_recipes_are_listed_and_ablation_override_validates():
    names = dict(pj.list_recipes())
    assert "pointjepa" in names and "jepa3d" in names
    cfg = load_recipe("pointjepa", ["masker.targets=random"])
    assert cfg.masker.targets == "random"
    with pytest.raises(pj.UserError, match="unknown config key 'masker.bogus'"):
        load_recipe("pointjepa", ["masker.bogus=1"])


@pytest.mark.parametrize("option", [["method.target_tokens=shape"], ["method.target_tokens=residual"],
                                    ["method.target_view.rotate=true", "method.target_view.scale=[0.9,1.1]"],
                                    ["method.reconstruct=1.0"],
                                    ["invariance.name=point_vicreg", "invariance.hidden=32", "invariance.out_dim=16"]])
def test_target_options_train_and_reload(option, shapes_npz, tmp_path):
    from polyjepa.runner import load_run_method

    out = tmp_path / "run"
    s = pj.pretrain("pointjepa", data=str(shapes_npz), out=str(out), overrides=SMALL + option, progress=False,
                    echo=lambda *_: None)
    assert np.isfinite(s["final_loss"])
    method, cfg, _ = load_run_method(out)
    assert OmegaConf.select(cfg, option[0].split("=")[0]) is not None  # written to the run's config
    if option == ["method.reconstruct=1.0"]:
        assert method.patch_head is not None and method.reconstruct == 1.0
