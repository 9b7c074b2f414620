"""A folder of videos read lazily: decoded once into a cache, then the clips, labels and split of the in-memory
clips loader; every clip once per epoch across ranks and workers; an unreadable video skipped with a warning
naming it; a pretrain run from the command line."""
import csv
import json
import pickle

import numpy as np
import pytest
from torch.utils.data import DataLoader

from polyjepa.cli import main
from polyjepa.config import DataConfig
from polyjepa.data.batches import MaskedBatches
from polyjepa.data.prepare import prepare
from polyjepa.data.stream import as_source
from polyjepa.errors import UserError
from polyjepa.video.sources import load_clips
from polyjepa.video.stream import VideoFolderStream

iio = pytest.importorskip("imageio.v3")


@pytest.fixture
def videos(tmp_path, monkeypatch):
    """Eight 13-frame 16x16 RGB GIFs in two class folders (a bar moving at a per-video speed, plus noise)."""
    monkeypatch.setenv("POLYJEPA_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    root = tmp_path / "videos"
    for i in range(8):
        frames = rng.integers(0, 60, (13, 16, 16, 3), dtype=np.uint8)
        for t in range(13):
            frames[t, :, (t * (1 + i % 3)) % 14:(t * (1 + i % 3)) % 14 + 3] = 250
        (root / f"c{i % 2}").mkdir(parents=True, exist_ok=True)
        iio.imwrite(root / f"c{i % 2}" / f"v{i}.gif", frames, loop=0)
    return root


@pytest.mark.parametrize("opts", [{"frames": 4}, {"frames": 3, "frame_step": 2, "size": 8, "grayscale": True}])
def test_lazy_clips_equal_the_in_memory_loader(videos, tmp_path, opts, monkeypatch):
    eager = load_clips(str(videos), **opts)
    lazy = VideoFolderStream(videos, **opts)
    assert lazy.shape == eager.x.shape
    np.testing.assert_array_equal(lazy[np.arange(len(lazy))].numpy(), eager.x)  # same clips, order and values
    np.testing.assert_array_equal(lazy.labels, eager.y)
    rows = np.array([len(lazy) - 1, 0, 2, 0])
    np.testing.assert_array_equal(lazy[rows].numpy(), eager.x[rows])
    assert len(pickle.dumps(lazy)) < 10_000
    # a second opening reads the cache and decodes nothing
    import polyjepa.video.stream as stream

    monkeypatch.setattr(stream, "read_video", lambda *a, **k: pytest.fail("decoded again"))
    np.testing.assert_array_equal(VideoFolderStream(videos, **opts)[rows].numpy(), eager.x[rows])


def test_an_unreadable_video_is_skipped_with_a_warning_naming_it(videos):
    (videos / "c1" / "broken.mp4").write_text("junk")
    with pytest.warns(Warning, match="broken.mp4"):
        lazy = VideoFolderStream(videos, frames=4)
    assert lazy.skipped == [str(videos / "c1" / "broken.mp4")] and len(lazy) == 24
    with pytest.raises(UserError, match="broken.mp4"):
        load_clips(str(videos), frames=4)  # the in-memory loader stops at it
    with pytest.raises(UserError, match="shorter than one clip"):
        VideoFolderStream(videos, frames=20)


def test_ranks_and_workers_cover_every_clip_once_per_epoch(videos):
    lazy = VideoFolderStream(videos, frames=4)
    ref = lazy[np.arange(24)].numpy()

    def rows(world_size, workers, epoch):
        out = []
        for rank in range(world_size):
            b = MaskedBatches(as_source(lazy), batch_size=8, make_batch=lambda x, g, p: {"x": x}, seed=2, rank=rank,
                              world_size=world_size)
            steps = range(epoch * b.steps_per_epoch, (epoch + 1) * b.steps_per_epoch)
            for batch in DataLoader(b, sampler=steps, batch_size=None, num_workers=workers):
                out.append([int(np.flatnonzero((ref == r).all(axis=(1, 2, 3, 4)))[0]) for r in batch["x"].numpy()])
        return out

    for epoch in (0, 1):
        seen = rows(2, 2, epoch)
        assert sorted(i for b in seen for i in b) == list(range(24)) and all(len(b) == 4 for b in seen)
    assert rows(2, 0, 1) == rows(2, 2, 1)


def test_prepare_splits_and_normalises_streamed_clips_as_in_memory(videos):
    eager = prepare(DataConfig(source=str(videos), loader="clips"), options={"frames": 4})
    lazy = prepare(DataConfig(source=str(videos), loader="clips", stream=True), options={"frames": 4})
    assert isinstance(lazy.x_train, VideoFolderStream)
    np.testing.assert_array_equal(lazy.y_train, eager.y_train)
    np.testing.assert_array_equal(lazy.y_test, eager.y_test)
    np.testing.assert_allclose(lazy.mean, eager.mean, rtol=1e-9)
    np.testing.assert_allclose(lazy.x_train[np.arange(len(eager.x_train))].numpy(), eager.x_train, atol=1e-5)
    np.testing.assert_allclose(lazy.x_test[np.arange(len(eager.x_test))].numpy(), eager.x_test, atol=1e-5)
    with pytest.raises(UserError, match="reads a video or a folder of videos"):
        prepare(DataConfig(source=str(videos / "nope.npy"), loader="clips", stream=True), options={"frames": 4})


def _losses(run):
    with open(run / "metrics.csv", newline="") as f:
        return [float(r["loss"]) for r in csv.DictReader(f) if r.get("loss")]


@pytest.mark.slow  # two pretrain runs; the EDF one in tests/test_series_stream.py runs by default
def test_pretrain_streams_a_folder_of_videos_and_trains_as_the_in_memory_run(videos, tmp_path):
    recipe = tmp_path / "vjepa-videos.yaml"
    recipe.write_text("name: vjepa-videos\nmethod: {name: vjepa, embed_from: target}\n"
                      "data: {loader: clips, source: null, frames: 4}\n"
                      "tokenizer: {name: tubelet, patch_size: 8, tubelet_size: 2}\n"
                      "encoder: {name: vit, size: micro, depth: 1}\n"
                      "predictor: {name: multi_mask_token, dim: 32, depth: 1, heads: 2}\n"
                      "masker: {name: multiblock3d, n_blocks: [2, 1], spatial_scale: [0.25, 0.5], "
                      "aspect: [0.75, 1.5], temporal_scale: 1.0}\n"
                      "target: {name: ema, momentum: [0.998, 1.0], normalize: layer_norm}\n"
                      "objective: {name: latent_regression, kind: l1}\n"
                      "train: {batch_size: 8, max_steps: 3, log_every: 1, monitor_every: 0, threads: 1}\n"
                      "eval: {baselines: false}\n")
    common = ["pretrain", str(recipe), "--data", str(videos), "--no-progress"]
    assert main([*common, "--out", str(tmp_path / "mem")]) == 0
    assert main([*common, "--out", str(tmp_path / "lazy"), "data.stream=true", "train.num_workers=1"]) == 0
    mem, lazy = _losses(tmp_path / "mem"), _losses(tmp_path / "lazy")
    assert len(mem) == len(lazy) == 3
    assert all(abs(a - b) <= 1e-3 * abs(a) for a, b in zip(mem, lazy)), (mem, lazy)
    summary = json.loads((tmp_path / "lazy" / "summary.json").read_text())
    assert summary["n_train"] == 19 and summary["n_test"] == 5 and summary["eval_sample"]["streamed"]
