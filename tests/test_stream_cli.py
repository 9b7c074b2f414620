"""``polyjepa pretrain --data FOLDER data.stream=true``: the folder is split and normalised as the in-memory
path does, trains to the same losses, and the probes run on a bounded stratified sample that the summary names."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from polyjepa.cli import main
from polyjepa.config import DataConfig
from polyjepa.data.prepare import evaluation_sample, prepare
from polyjepa.data.stream import ImageFolderStream
from polyjepa.errors import UserError

TINY = ["encoder.size=micro", "encoder.depth=2", "predictor.dim=32", "predictor.depth=1", "predictor.heads=2",
        "train.batch_size=32", "train.max_steps=4", "train.log_every=1", "train.monitor_every=0", "train.threads=1",
        "eval.baselines=false", "eval.monitor_samples=64"]


@pytest.fixture(scope="module")
def digits_folder(tmp_path_factory):
    """240 of scikit-learn's 8x8 digits as grey PNGs, one sub-folder per class."""
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    root = tmp_path_factory.mktemp("stream") / "digits"
    for i in range(240):
        (root / str(d.target[i])).mkdir(parents=True, exist_ok=True)
        Image.fromarray((d.images[i] * 255 / 16).round().astype(np.uint8)).save(root / str(d.target[i]) / f"{i:04d}.png")
    return root


def test_a_streamed_folder_splits_and_normalises_as_the_in_memory_path(digits_folder):
    eager = prepare(DataConfig(source=str(digits_folder)))
    lazy = prepare(DataConfig(source=str(digits_folder), stream=True))
    assert isinstance(lazy.x_train, ImageFolderStream) and isinstance(lazy.x_test, ImageFolderStream)
    assert lazy.x_train.shape == eager.x_train.shape and lazy.x_test.shape == eager.x_test.shape
    np.testing.assert_array_equal(lazy.y_train, eager.y_train)
    np.testing.assert_array_equal(lazy.y_test, eager.y_test)
    np.testing.assert_allclose(lazy.mean, eager.mean, rtol=1e-6)
    np.testing.assert_allclose(lazy.std, eager.std, rtol=1e-5)
    np.testing.assert_allclose(lazy.x_train[np.arange(len(eager.x_train))].numpy(), eager.x_train, atol=1e-4)
    np.testing.assert_allclose(lazy.x_test[np.arange(len(eager.x_test))].numpy(), eager.x_test, atol=1e-4)


def test_the_evaluation_sample_is_bounded_stratified_and_decoded(digits_folder):
    lazy = prepare(DataConfig(source=str(digits_folder), stream=True))
    ev, note = evaluation_sample(lazy, 50)
    assert isinstance(ev.x_train, np.ndarray) and ev.x_train.shape == (50, 1, 8, 8)
    assert note == {"train": 50, "test": 48, "of_train": 192, "of_test": 48, "streamed": True}
    # stratified: each class's share of the sample is its share of the training part, within one sample
    full = np.bincount(lazy.y_train, minlength=10) / len(lazy.y_train)
    assert np.abs(np.bincount(ev.y_train, minlength=10) - 50 * full).max() <= 1.0
    # the decoded rows are the training images they stand for
    rows = [int(np.flatnonzero((lazy.x_train[np.arange(192)].numpy() == ev.x_train[i]).all(axis=(1, 2, 3)))[0])
            for i in range(3)]
    assert [lazy.y_train[r] for r in rows] == list(ev.y_train[:3])
    # in-memory data within the bound is used as it is
    eager = prepare(DataConfig(source=str(digits_folder)))
    same, none = evaluation_sample(eager, None)
    assert same is eager and none is None


def _losses(run: Path) -> list[float]:
    with open(run / "metrics.csv", newline="") as f:
        return [float(r["loss"]) for r in csv.DictReader(f) if r.get("loss")]


def test_pretrain_on_a_streamed_folder_trains_as_the_in_memory_run(digits_folder, tmp_path):
    common = ["pretrain", "ijepa-digits", "--data", str(digits_folder), *TINY, "--no-progress"]
    assert main([*common, "--out", str(tmp_path / "mem")]) == 0
    assert main([*common, "--out", str(tmp_path / "lazy"), "data.stream=true", "eval.max_samples=100"]) == 0
    mem, lazy = _losses(tmp_path / "mem"), _losses(tmp_path / "lazy")
    assert len(mem) == len(lazy) == 4
    assert all(abs(a - b) <= 1e-3 * abs(a) for a, b in zip(mem, lazy)), (mem, lazy)
    summary = json.loads((tmp_path / "lazy" / "summary.json").read_text())
    assert summary["n_train"] == 192 and summary["eval_sample"]["train"] == 100 and summary["eval_sample"]["streamed"]
    assert "eval_sample" not in json.loads((tmp_path / "mem" / "summary.json").read_text())
    assert main(["probe", str(tmp_path / "lazy")]) == 0

    # embedding streams the folder too, batch by batch, and equals the in-memory embedding of the same images
    from polyjepa.data.prepare import normalise
    from polyjepa.data.sources import load_images
    from polyjepa.eval.embed import embed_array
    from polyjepa.export.pretrained import PretrainedEncoder

    enc = PretrainedEncoder.from_run(tmp_path / "lazy")
    got = enc.embed(str(digits_folder), batch_size=50)
    want = embed_array(enc.encoder, normalise(load_images(str(digits_folder)).x, summary_mean(tmp_path / "lazy"),
                                              summary_std(tmp_path / "lazy")), pool=enc.pool, layers=enc.layers)
    assert got.shape == (240, want.shape[1])
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert main(["embed", str(tmp_path / "lazy"), "--data", str(digits_folder), "--out", str(tmp_path / "e.npy")]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "e.npy"), got, rtol=1e-5, atol=1e-6)
    bad = tmp_path / "bad"
    bad.mkdir()
    for f in sorted(digits_folder.rglob("*.png"))[:5]:
        (bad / f.name).write_bytes(f.read_bytes())
    (bad / "0003.png").write_bytes(b"not a png")
    with pytest.raises(UserError, match="0003.png"):
        enc.embed(str(bad))


def summary_mean(run: Path):
    return json.loads((run / "run.json").read_text())["mean"]


def summary_std(run: Path):
    return json.loads((run / "run.json").read_text())["std"]


def test_streaming_what_is_not_a_folder_of_images_is_one_clear_error(digits_folder, tmp_path, capsys):
    with pytest.raises(UserError, match="needs a folder of images or of .tar shards"):
        prepare(DataConfig(source="digits", stream=True))
    with pytest.raises(UserError, match="data.loader=interactions reads its data into memory"):
        prepare(DataConfig(source=str(digits_folder), loader="interactions", stream=True))
    assert main(["pretrain", "ijepa-digits", "--out", str(tmp_path / "r"), "data.stream=true", "--no-progress"]) == 2
    assert "needs a folder of images" in capsys.readouterr().err


def test_pretrain_streams_tar_shards(digits_folder, tmp_path):
    import io
    import tarfile

    shards = tmp_path / "shards"
    shards.mkdir()
    files = sorted(digits_folder.rglob("*.png"))
    for s in range(2):
        with tarfile.open(shards / f"train-{s}.tar", "w") as tf:
            for f in files[s::2]:
                for name, data in ((f"{f.stem}.png", f.read_bytes()), (f"{f.stem}.cls", f.parent.name.encode())):
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tf.addfile(info, io.BytesIO(data))
    run = tmp_path / "run"
    assert main(["pretrain", "ijepa-digits", "--data", str(shards), "data.stream=true", "--out", str(run), *TINY,
                 "--no-progress"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["n_train"] == 192 and summary["n_test"] == 48 and summary["probe"]["linear"]["accuracy"] > 0.3
