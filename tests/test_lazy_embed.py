"""``polyjepa embed`` on lazy data: batches read from the loader's lazy form are written into the output .npy
through a memory map, in the in-memory path's row order and with its values; ``--stream`` / ``--no-stream``."""
from __future__ import annotations

import numpy as np
import pytest
from omegaconf import OmegaConf

from polyjepa.cli import main
from polyjepa.config import DataConfig, load_recipe, part_kwargs
from polyjepa.data.prepare import prepare
from polyjepa.errors import UserError
from polyjepa.export.pretrained import FORMAT, PretrainedEncoder, build_encoder

TINY = ["encoder.size=micro", "encoder.depth=2", "predictor.dim=32", "predictor.depth=1", "predictor.heads=2",
        "train.batch_size=32", "train.max_steps=2", "train.log_every=1", "train.monitor_every=0", "train.threads=1",
        "eval.baselines=false", "eval.monitor_samples=64"]


def encoder_for(recipe: str, overrides: list[str], data: str) -> PretrainedEncoder:
    """An untrained encoder of ``recipe`` with the statistics and facts the run on ``data`` would store (no
    training is needed to compare two ways of reading the same data)."""
    cfg = load_recipe(recipe, overrides)
    data_cfg = DataConfig(**{k: v for k, v in OmegaConf.to_container(cfg.data).items()
                             if k in DataConfig.__dataclass_fields__})
    data_cfg.source = data
    p = prepare(data_cfg, None, part_kwargs(cfg, "data"))
    config = {"format": FORMAT, "recipe": OmegaConf.to_container(cfg, resolve=True),
              "input_shape": list(p.x_train.shape[1:]), "seed": 0, "meta": p.meta, "mean": p.mean, "std": p.std,
              "embedding": {"pool": "mean", "layers": 1, "dim": 0}}
    enc = PretrainedEncoder(build_encoder(config), config)
    enc.config["embedding"]["dim"] = enc._probe_width()
    return enc


def batches_read(monkeypatch, cls) -> list[int]:
    """The sizes of the batches read from lazy sources of class ``cls`` from now on."""
    sizes: list[int] = []
    read = cls._read

    def counted(self, rows):
        sizes.append(len(rows))
        return read(self, rows)

    monkeypatch.setattr(cls, "_read", counted)
    return sizes


@pytest.fixture(scope="module")
def series_file(tmp_path_factory):
    rng = np.random.default_rng(0)
    x = np.cumsum(rng.normal(size=(70, 2, 48)), axis=-1).astype(np.float32)
    path = tmp_path_factory.mktemp("series") / "series.npy"
    np.save(path, x)
    return path


def test_embedding_a_streamed_series_file_writes_the_in_memory_rows_a_batch_at_a_time(series_file, tmp_path,
                                                                                       monkeypatch):
    from polyjepa.timeseries.stream import NpySeries

    enc = encoder_for("tsjepa", ["data.stream=true", "encoder.depth=1"], str(series_file))
    want = enc.embed(str(series_file), stream=False)  # read whole, embedded in memory
    assert want.shape == (70, enc.dim)
    sizes = batches_read(monkeypatch, NpySeries)
    got = enc.embed(str(series_file), batch_size=16, out=tmp_path / "e.npy")
    assert isinstance(got, np.memmap) and not got.flags.writeable
    assert sizes == [16, 16, 16, 16, 6]  # one batch in memory at a time, in order
    np.testing.assert_allclose(np.load(tmp_path / "e.npy"), want, rtol=1e-5, atol=1e-5)
    assert not [p for p in tmp_path.iterdir() if p.name != "e.npy"]  # no temporary file left
    # the same in memory, as an array
    np.testing.assert_allclose(enc.embed(str(series_file), batch_size=32), want, rtol=1e-5, atol=1e-5)


def test_embed_cli_follows_the_run_and_takes_stream_flags(tmp_path, monkeypatch, capsys):
    """A streamed image run embeds its folder lazily by default; --no-stream reads it into memory; both equal."""
    from PIL import Image
    from sklearn.datasets import load_digits

    from polyjepa.data.stream import ImageFolderStream

    d = load_digits()
    root = tmp_path / "digits"
    for i in range(120):
        (root / str(d.target[i])).mkdir(parents=True, exist_ok=True)
        Image.fromarray((d.images[i] * 255 / 16).round().astype(np.uint8)).save(root / str(d.target[i]) / f"{i:04d}.png")
    run = tmp_path / "run"
    assert main(["pretrain", "ijepa-digits", "--data", str(root), *TINY, "--no-progress", "--out", str(run),
                 "data.stream=true", "eval.max_samples=40"]) == 0
    seen: list[int] = []
    getitem = ImageFolderStream.__getitem__

    def counted(self, idx):
        out = getitem(self, idx)
        seen.append(len(out))
        return out

    monkeypatch.setattr(ImageFolderStream, "__getitem__", counted)
    assert main(["embed", str(run), "--data", str(root), "--out", str(tmp_path / "lazy.npy"), "--batch-size", "50"]) == 0
    assert seen == [50, 50, 20]
    seen.clear()
    assert main(["embed", str(run), "--data", str(root), "--out", str(tmp_path / "mem.npy"), "--no-stream"]) == 0
    assert seen == []
    lazy, mem = np.load(tmp_path / "lazy.npy"), np.load(tmp_path / "mem.npy")
    assert lazy.shape == mem.shape == (120, lazy.shape[1])
    np.testing.assert_allclose(lazy, mem, rtol=1e-4, atol=1e-5)
    assert "wrote 120 embeddings" in capsys.readouterr().out
    # --stream where the data cannot be read lazily: one line
    np.save(tmp_path / "arr.npy", np.zeros((3, 8, 8), np.float32))
    assert main(["embed", str(run), "--data", str(tmp_path / "arr.npy"), "--out", str(tmp_path / "x.npy"),
                 "--stream"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("polyjepa: error: ") and "folder of images" in err and err.count("\n") == 1
    assert main(["embed", str(run), "--data", str(root), "--out", str(tmp_path / "x.txt")]) == 2
    assert "ending in .npy" in capsys.readouterr().err


def test_embedding_lazily_what_has_no_lazy_form_is_one_clear_error(series_file, tmp_path):
    enc = encoder_for("tsjepa", ["encoder.depth=1"], str(series_file))
    assert enc.embed(str(series_file)).shape == (70, enc.dim)  # not a streamed run: in memory
    with pytest.raises(UserError, match="reads a path, not a ndarray"):
        enc.embed(np.load(series_file), stream=True)
    npz = tmp_path / "s.npz"
    np.savez(npz, x=np.load(series_file))
    streamed = encoder_for("tsjepa", ["data.stream=true", "encoder.depth=1"], str(series_file))
    np.testing.assert_allclose(streamed.embed(str(npz)), enc.embed(str(series_file)), atol=1e-5)  # .npz: lazy too
    with pytest.raises(UserError, match="--no-stream") as e:
        streamed.embed("GunPoint")  # the run streamed an .npy; a bundled set's name has no lazy form
    assert "\n" not in str(e.value)
    beats = encoder_for("tsjepa", ["encoder.depth=1"], str(series_file))
    beats.config["recipe"]["data"]["loader"] = "moving_digits"  # a loader without a lazy form
    with pytest.raises(UserError, match="embedding reads data.loader=moving_digits into memory"):
        beats.embed(str(series_file), stream=True)
    with pytest.raises(UserError, match="batch size"):
        enc.embed(str(series_file), batch_size=0)
    with pytest.raises(UserError, match="ending in .npy"):
        enc.embed(str(series_file), out=tmp_path / "e.csv")
