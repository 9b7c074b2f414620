"""A folder of images read lazily: the same samples as the in-memory loader; every sample once per epoch across
ranks and DataLoader workers; a resume in the middle of an epoch continues the same order; bad files skipped."""
import warnings

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from polyjepa.data.batches import MaskedBatches
from polyjepa.data.sources import load_images
from polyjepa.data.skiplog import read_skip_log
from polyjepa.data.stream import ImageFolderStream, as_source
from polyjepa.errors import UserError

N = 24


@pytest.fixture
def folder(tmp_path):
    """24 grey PNGs in 3 class folders; pixel (0, 0) holds the image's id, so decoded batches name their samples."""
    from PIL import Image

    rng = np.random.default_rng(0)
    root = tmp_path / "imgs"
    for i in range(N):
        a = rng.integers(0, 256, (10, 12), dtype=np.uint8)
        a[0, 0] = i
        (root / f"c{i % 3}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(a).save(root / f"c{i % 3}" / f"{i:03d}.png")
    return root


def ids(x: torch.Tensor) -> list[int]:
    return [int(round(v * 255)) for v in x[:, 0, 0, 0].tolist()]


def test_lazy_samples_equal_the_in_memory_loader(folder):
    eager = load_images(str(folder))
    lazy = ImageFolderStream(folder)
    assert lazy.shape == eager.x.shape and lazy.mode == "L"
    np.testing.assert_array_equal(lazy[np.arange(N)].numpy(), eager.x)
    np.testing.assert_array_equal(lazy.labels, eager.y)
    np.testing.assert_array_equal(lazy[5].numpy(), eager.x[5])
    # scaled and cropped to a size, as the in-memory loader does it
    np.testing.assert_allclose(ImageFolderStream(folder, size=(8, 8))[np.arange(N)].numpy(),
                               load_images(str(folder), size=(8, 8)).x, atol=1e-6)
    mean, std = lazy.channel_stats(n=N)
    assert mean[0] == pytest.approx(float(eager.x.mean()), rel=1e-5)
    normed = ImageFolderStream(folder, mean=mean, std=std)[np.arange(N)].numpy()
    np.testing.assert_allclose(normed, (eager.x - mean[0]) / std[0], rtol=1e-5, atol=1e-5)


def identity_masker(batch_size, generator):
    return torch.zeros(batch_size, 1, dtype=torch.long), torch.zeros(batch_size, 1, 1, dtype=torch.long)


def epoch_ids(stream, *, world_size, workers, batch_size=8, epoch=0):
    """Per rank, the ids of every batch of one epoch, read through DataLoader workers."""
    out = []
    for rank in range(world_size):
        b = MaskedBatches(as_source(stream), batch_size=batch_size, masker=identity_masker, seed=3, rank=rank,
                          world_size=world_size)
        steps = range(epoch * b.steps_per_epoch, (epoch + 1) * b.steps_per_epoch)
        loader = DataLoader(b, sampler=steps, batch_size=None, num_workers=workers)
        out.append([ids(batch["x"]) for batch in loader])
    return out


def test_ranks_and_workers_cover_every_sample_exactly_once_per_epoch(folder):
    stream = ImageFolderStream(folder)
    for epoch in (0, 1):
        per_rank = epoch_ids(stream, world_size=2, workers=2, epoch=epoch)
        seen = [i for rank in per_rank for batch in rank for i in batch]
        assert sorted(seen) == list(range(N))
        assert all(len(batch) == 4 for rank in per_rank for batch in rank)   # 8 per step, 4 per rank
        assert set(per_rank[0][0]).isdisjoint(per_rank[1][0])
    # workers change nothing about which samples a step holds
    assert epoch_ids(stream, world_size=2, workers=0) == epoch_ids(stream, world_size=2, workers=2)
    # a new epoch is a new order
    assert epoch_ids(stream, world_size=1, workers=0, epoch=0) != epoch_ids(stream, world_size=1, workers=0, epoch=1)


def test_a_mid_epoch_resume_continues_the_same_order(folder):
    stream = ImageFolderStream(folder)
    b = MaskedBatches(as_source(stream), batch_size=6, masker=identity_masker, seed=1)
    full = [ids(x["x"]) for x in DataLoader(b, sampler=range(0, 10), batch_size=None, num_workers=2)]
    resumed = [ids(x["x"]) for x in DataLoader(b, sampler=range(6), batch_size=None, num_workers=0)] + \
              [ids(x["x"]) for x in DataLoader(b, sampler=range(6, 10), batch_size=None, num_workers=2)]
    assert resumed == full
    assert b.steps_per_epoch == 4 and sorted(sum(full[:4], [])) == list(range(N))


def test_an_unreadable_image_is_skipped_with_a_warning_naming_it(folder, tmp_path):
    bad = folder / "c1" / "004.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    log = tmp_path / "skipped.txt"
    stream = ImageFolderStream(folder, max_bad=2, skip_log=log)
    i = stream.files.index(bad)  # files in sorted order: c1/004.png follows c1/001.png, then comes c1/007.png
    with pytest.warns(Warning, match="004.png"):
        x = stream[[i, 0]]
    assert x.shape == (2, 1, 10, 12) and ids(x) == [7, 0]  # filled by the next readable file in sorted order
    assert stream.skipped == {str(bad)} and list(read_skip_log(log)) == [str(bad)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        stream[[i]]  # warned once per file


def test_too_many_unreadable_images_is_an_error(folder):
    for name in ("c0/000.png", "c1/001.png", "c2/002.png"):
        (folder / name).write_bytes(b"not an image")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stream = ImageFolderStream(folder, max_bad=2)
        with pytest.raises(UserError, match="cannot be read"):
            stream[np.arange(N)]


def test_training_runs_on_a_lazy_folder(folder, tmp_path):
    from polyjepa.build import build_method
    from polyjepa.config import TrainConfig, load_recipe
    from polyjepa.runner import train_method

    cfg = load_recipe("ijepa-digits", ["encoder.size=micro", "encoder.depth=1", "predictor.dim=16",
                                       "predictor.depth=1", "predictor.heads=2", "tokenizer.patch_size=2"])
    stream = ImageFolderStream(folder, size=(8, 8))
    method = build_method(cfg, stream.shape[1:], seed=0)
    rec = train_method(method, stream, train=TrainConfig(batch_size=8, max_steps=4, checkpoint_every=0,
                                                        monitor_every=0, num_workers=0),
                       run_dir=tmp_path / "run", progress=False)
    assert rec["steps"] == 4 and rec["samples"] == 32
