"""The contrastive-clustering recipe runs through ``polyjepa pretrain`` (its own runner) and refuses bad settings."""
import json

import numpy as np
import pytest

from polyjepa.errors import UserError


def volume_npz(path, n=24, side=8, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    x = (rng.random((n, side, side, side)) < 0.1 + 0.3 * y[:, None, None, None] / 2).astype(np.int32)
    np.savez(path, X_train=x, y_train=y, X_test=x[:12], y_test=y[:12])
    return str(path)


SMALL = ["data.factor=1", "method.patch_size=4", "method.dim=16", "method.depth=1", "method.hidden=32",
         "method.projection=16", "train.batch_size=8", "train.max_steps=2"]


def test_clustering_recipe_has_its_own_runner():
    from polyjepa.config import load_recipe
    from polyjepa.registry import method_runner
    from polyjepa.volumes.run import run_volume_clustering

    assert method_runner(load_recipe("clustering-modelnet10")) is run_volume_clustering


@pytest.mark.slow
def test_clustering_recipe_trains_scores_and_writes_a_run(tmp_path):
    from polyjepa.runner import pretrain

    data = volume_npz(tmp_path / "vol.npz")
    summary = pretrain("clustering-modelnet10", data=data, out=str(tmp_path / "run"), overrides=SMALL,
                       echo=lambda *a, **k: None)
    assert summary["clusters"] == 3 and summary["steps"] == 2 and summary["n_test"] == 12
    methods = [r["method"] for r in summary["scores"]]
    assert methods[0] == "k-means on raw voxels" and "contrastive-clustering head (argmax)" in methods
    assert all(0 <= r["acc"] <= 1 and -1 <= r["ari"] <= 1 for r in summary["scores"])
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["clusters"] == 3
    assert (tmp_path / "run" / "model.safetensors").exists()


def test_clustering_recipe_refuses_bad_settings(tmp_path):
    from polyjepa.runner import pretrain

    data = volume_npz(tmp_path / "vol.npz")
    with pytest.raises(UserError, match="temperature"):
        pretrain("clustering-modelnet10", data=data, out=str(tmp_path / "a"),
                 overrides=[*SMALL, "method.cluster_temperature=0"], echo=lambda *a, **k: None)
    with pytest.raises(UserError, match="multiples of 3"):
        pretrain("clustering-modelnet10", data=data, out=str(tmp_path / "b"),
                 overrides=[*SMALL, "method.patch_size=3"], echo=lambda *a, **k: None)
    with pytest.raises(UserError, match="has no bundled data"):
        pretrain("clustering-modelnet10", out=str(tmp_path / "c"), echo=lambda *a, **k: None)
