"""The Python API: parts in a plain torch loop, a method trained from parts, data sources."""
import numpy as np
import pytest
import torch

import polyjepa as pj


def small_method(image=16, patch=4, seed=0):
    torch.manual_seed(seed)
    tok = pj.PatchEmbed2D(image_size=(image, image), patch_size=patch, in_channels=1, dim=32)
    backbone = pj.Backbone(tok, pj.TransformerEncoder(dim=32, depth=2, heads=4))
    return pj.JEPA(backbone=backbone,
                   predictor=pj.MaskTokenPredictor(in_dim=32, dim=16, depth=1, heads=2,
                                                   pos_embed=tok.position_embedding(16)),
                   masker=pj.MultiBlockMasker(grid=tok.grid, min_keep=2),
                   target=pj.EMATarget(backbone, momentum=(0.99, 1.0)))


def test_import_is_lazy():
    import subprocess
    import sys

    code = "import sys, polyjepa; assert 'torch' not in sys.modules; print(polyjepa.__version__)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


def test_parts_in_a_plain_torch_loop():
    method = small_method()
    opt = torch.optim.AdamW([p for p in method.parameters() if p.requires_grad], lr=2e-3)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 1, 16, 16, generator=g)
    target_before = [p.clone() for p in method.target.parameters()]
    losses = []
    for step in range(30):
        ctx, tgt = method.masker(32, g)
        loss = method({"x": x, "context_idx": ctx, "target_idx": tgt})["loss"]
        loss.backward()
        opt.step()
        opt.zero_grad()
        method.update_target(step, 30)
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
    assert any(not torch.equal(a, b) for a, b in zip(target_before, method.target.parameters()))
    assert method.embed(x).shape == (32, 32)


def test_train_method_from_parts(tmp_path):
    method = small_method()
    before = method.backbone.encoder.blocks[0].mlp[0].weight.clone()
    x = np.random.default_rng(0).normal(size=(96, 1, 16, 16)).astype(np.float32)
    record = pj.train_method(method, x, train=pj.TrainConfig(batch_size=32, max_steps=6, monitor_every=0),
                             run_dir=tmp_path, progress=False)
    assert record["steps"] == 6 and (tmp_path / "checkpoints" / "latest.json").exists()
    assert not torch.equal(before, method.backbone.encoder.blocks[0].mlp[0].weight)


def test_image_folder_and_npy_sources(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls in ("cats", "dogs"):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 255, (12, 10, 3), dtype=np.uint8)).save(tmp_path / "imgs" / cls / f"{i}.png")
    data = pj.load_images(str(tmp_path / "imgs"))
    assert data.x.shape == (6, 3, 12, 10) and data.x.dtype == np.float32 and 0 <= data.x.min() and data.x.max() <= 1
    assert data.y.tolist() == [0, 0, 0, 1, 1, 1]
    np.save(tmp_path / "a.npy", rng.integers(0, 255, (5, 8, 8, 3), dtype=np.uint8))
    arr = pj.load_images(str(tmp_path / "a.npy"))
    assert arr.x.shape == (5, 3, 8, 8) and arr.y is None
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(tmp_path / "imgs" / "cats" / "small.png")
    with pytest.raises(pj.UserError, match="different sizes"):
        pj.load_images(str(tmp_path / "imgs"))
