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
    with pytest.raises(pj.UserError, match="different sizes.*data.size"):
        pj.load_images(str(tmp_path / "imgs"))
    # data.size: every image scaled to cover the size and centre-cropped; the grey one joins as RGB
    sized = pj.load_images(str(tmp_path / "imgs"), size=[6, 4])
    assert sized.x.shape == (7, 3, 6, 4) and sized.y.tolist() == [0, 0, 0, 0, 1, 1, 1]
    assert np.allclose(sized.x[3], 0.0)  # small.png (cats/ sorts after 2.png): black stays black, in 3 channels
    with pytest.raises(pj.UserError, match="data.size"):
        pj.load_images(str(tmp_path / "a.npy"), size=[8, 0])


def test_resize_center_scales_to_cover_and_crops_the_centre():
    from polyjepa.data.sources import resize_center

    half = np.zeros((1, 1, 20, 40), np.float32)
    half[..., 20:] = 1.0  # left half 0, right half 1
    out = resize_center(half, (10, 10))  # scale 0.5 -> 10 x 20, keep columns 5..14
    assert out.shape == (1, 1, 10, 10)
    assert np.allclose(out[..., :4], 0.0, atol=1e-6) and np.allclose(out[..., 6:], 1.0, atol=1e-6)
    checker = (np.indices((16, 16)).sum(0) % 2).astype(np.float32)[None, None]
    down = resize_center(checker, (8, 8))  # antialiased 2x down: the local mean (the border renormalises)
    assert np.allclose(down[..., 1:-1, 1:-1], 0.5, atol=1e-6) and np.allclose(down, 0.5, atol=0.02)
    up = resize_center(np.full((2, 3, 4, 4), 0.25, np.float32), (9, 9))
    assert up.shape == (2, 3, 9, 9) and np.allclose(up, 0.25, atol=1e-6)
    assert resize_center(half, (20, 40)) is half and resize_center(half, None) is half
