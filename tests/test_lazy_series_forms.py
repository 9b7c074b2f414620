"""data.stream=true forms of the series loader's .npz/CSV/UCR-tsv files, WFDB beat windows and jet .npz files:
the samples, labels and split of the in-memory loaders, the caches built once, and bad input as one clear line."""
import json
import pickle

import numpy as np
import pytest

from polyjepa.cli import main
from polyjepa.config import DataConfig
from polyjepa.data.prepare import prepare
from polyjepa.errors import UserError
from polyjepa.jets.data import load_jets, save_jets, toy_jets
from polyjepa.jets.stream import NpzJets, open_jets
from polyjepa.timeseries.data import load_series
from polyjepa.timeseries.stream import open_series
from polyjepa.timeseries.wfdb import load_wfdb_beats
from polyjepa.timeseries.wfdb_stream import WfdbBeats
from tests.conftest import SHARED_DATA


def _all(source) -> np.ndarray:
    return source[np.arange(len(source))].numpy()


def _same_prepared(cfg: dict, options: dict | None = None):
    mem = prepare(DataConfig(**cfg), None, dict(options or {}))
    lazy = prepare(DataConfig(**cfg, stream=True), None, dict(options or {}))
    np.testing.assert_allclose(_all(lazy.x_train), mem.x_train, rtol=1e-5, atol=1e-5)
    if len(mem.x_test):
        np.testing.assert_allclose(_all(lazy.x_test), mem.x_test, rtol=1e-5, atol=1e-5)
    else:
        assert len(lazy.x_test) == 0
    for a, b in ((lazy.y_train, mem.y_train), (lazy.y_test, mem.y_test)):
        assert (a is None) == (b is None)
        if a is not None:
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(a, b)
    assert lazy.meta == mem.meta
    return mem, lazy


def _write_csv(path, rng, n=40, header=True, labels="class"):
    """Rows of 5-9 numbers (shorter rows end in empty cells), a label column in the middle, blank lines."""
    lines = ["a,b,label,c,d,e,f,g,h,i"] if header else []
    for i in range(n):
        k = int(rng.integers(5, 10))
        v = [f"{x:.6g}" for x in rng.normal(i % 3, 1, k)]
        lab = {"class": ["cat", "dog", "eel"][i % 3], "float": f"{rng.normal():.3f}"}[labels]
        cells = v[:2] + [lab] + v[2:] + [""] * (9 - k)
        lines.append(",".join(cells))
        if i % 7 == 0:
            lines.append("")
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("labels", ["class", "float"])
def test_a_csv_streams_the_in_memory_series_labels_and_split(tmp_path, labels, monkeypatch):
    import polyjepa.timeseries.csvseries as csvseries

    monkeypatch.setattr(csvseries, "BLOCK_CELLS", 50)  # many blocks of a few rows
    _write_csv(tmp_path / "s.csv", np.random.default_rng(0), labels=labels)
    eager = load_series(str(tmp_path / "s.csv"))
    lazy = open_series(str(tmp_path / "s.csv"))
    np.testing.assert_array_equal(_all(lazy), eager.x)        # NaN padding at the same places
    np.testing.assert_array_equal(lazy.labels, eager.y)
    assert lazy.labels.dtype == (np.float64 if labels == "float" else np.int64)
    assert lazy.test_rows is None and len(pickle.dumps(lazy)) < 5000
    _same_prepared({"source": str(tmp_path / "s.csv"), "loader": "series", "test_size": 0.25})
    _same_prepared({"source": str(tmp_path / "s.csv"), "loader": "series", "max_samples": 30},
                   {"length": 12})  # a longer run's length: NaN-padded further
    monkeypatch.setattr(csvseries, "_scan", None)  # a second opening reads the cache and parses nothing
    np.testing.assert_array_equal(_all(open_series(str(tmp_path / "s.csv"))), eager.x)


def test_a_headerless_csv_and_a_ucr_pair_keep_their_layout_and_official_split(tmp_path):
    rng = np.random.default_rng(1)
    rows = [",".join(f"{x:.5g}" for x in rng.normal(size=int(rng.integers(3, 8)))) for _ in range(12)]
    (tmp_path / "plain.csv").write_text("\n".join(rows))
    eager = load_series(str(tmp_path / "plain.csv"))
    lazy = open_series(str(tmp_path / "plain.csv"))
    np.testing.assert_array_equal(_all(lazy), eager.x)
    assert eager.y is None and lazy.labels is None

    def ucr(n, longest):
        return "\n".join("\t".join([str(1 + i % 2)] + [f"{x:.4g}" for x in rng.normal(size=longest - i % 3)])
                         for i in range(n)) + "\n"
    (tmp_path / "Toy_TRAIN.tsv").write_text(ucr(20, 9))
    (tmp_path / "Toy_TEST.tsv").write_text(ucr(11, 11))   # longer test series: both parts pad to 11
    cfg = {"source": str(tmp_path / "Toy_TRAIN.tsv"), "loader": "series"}
    mem, lazy = _same_prepared(cfg)
    assert len(lazy.x_train) == 20 and len(lazy.x_test) == 11 and lazy.meta == {"length": 11}
    _same_prepared({**cfg, "max_samples": 10})           # a subset of the training part; the test part whole
    _same_prepared({"source": str(tmp_path / "Toy_TEST.tsv"), "loader": "series"})  # alone: label first, split


def test_an_npz_streams_its_series_and_labels_stored_or_compressed(tmp_path):
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(30, 2, 16)), np.repeat(["a", "b", "c"], 10)
    np.savez(tmp_path / "s.npz", X=x, y=y)
    np.savez_compressed(tmp_path / "c.npz", inputs=x[:, 0].astype(np.float32), targets=rng.normal(size=(30, 1)))
    for f in ("s.npz", "c.npz"):
        eager, lazy = load_series(str(tmp_path / f)), open_series(str(tmp_path / f))
        np.testing.assert_array_equal(_all(lazy), eager.x)
        np.testing.assert_array_equal(lazy.labels, eager.y)
        _same_prepared({"source": str(tmp_path / f), "loader": "series", "test_size": 0.2})
    assert open_series(str(tmp_path / "c.npz")).labels.dtype == np.float64  # not whole numbers: a target


def test_bad_series_files_are_one_clear_line(tmp_path):
    cases = {
        "words.csv": ("1,2,3\n4,x,6\n", r"row 2: could not convert string to float: 'x'"),
        "gap.csv": ("1,2,3\n4,,6\n", r"row 2 has an empty or NaN cell inside its series"),
        "short.csv": ("1,2,3\n4\n", r"row 2 has 1 value\(s\): series need at least 2 steps"),
        "inf.csv": ("1,2,3\n4,inf,6\n", r"contains inf in row 2"),
        "nolabel.csv": ("a,b,label\n1,2,x\n4\n", r"row 2 has 1 cells and no label in column 3"),
        "empty.csv": ("\n\n", r"is empty: write one series per row"),
    }
    for name, (text, message) in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(UserError, match=message):
            open_series(str(tmp_path / name))
    (tmp_path / "binary.csv").write_bytes(b"\xff\xfe\x00\x81" * 10)
    with pytest.raises(UserError, match="cannot read .*binary.csv as CSV"):
        open_series(str(tmp_path / "binary.csv"))
    np.savez(tmp_path / "nox.npz", labels=np.arange(3))
    with pytest.raises(UserError, match=r"has arrays \['labels'\] but no series"):
        open_series(str(tmp_path / "nox.npz"))
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(UserError, match="cannot read .*bad.npz as an .npz archive"):
        open_series(str(tmp_path / "bad.npz"))
    np.savez(tmp_path / "mismatch.npz", x=np.zeros((4, 5)), y=np.arange(3))
    with pytest.raises(UserError, match="3 labels for 4 series"):
        open_series(str(tmp_path / "mismatch.npz"))
    with pytest.raises(UserError, match="a bundled data set, read into memory"):
        prepare(DataConfig(source="GunPoint", loader="series", stream=True))


def test_pretrain_streams_a_csv_file(tmp_path, capsys):
    _write_csv(tmp_path / "s.csv", np.random.default_rng(3), n=48)
    tiny = ["encoder.depth=1", "predictor.dim=32", "predictor.depth=1", "predictor.heads=2", "train.batch_size=8",
            "train.max_steps=3", "train.log_every=1", "train.monitor_every=0", "train.threads=1",
            "eval.baselines=false", "--no-progress"]
    assert main(["pretrain", "tsjepa", "--data", str(tmp_path / "s.csv"), "--out", str(tmp_path / "run"),
                 "data.stream=true", *tiny]) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["n_train"] == 38 and summary["n_test"] == 10 and summary["eval_sample"]["streamed"]
    (tmp_path / "gap.csv").write_text("1,2,3\n4,,6\n")
    capsys.readouterr()
    assert main(["pretrain", "tsjepa", "--data", str(tmp_path / "gap.csv"), "--out", str(tmp_path / "bad"),
                 "data.stream=true", *tiny]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "polyjepa: error:" in err[0] and "row 2 has an empty or NaN cell inside" in err[0]


def _pack_212(a: int, b: int) -> bytes:
    ua, ub = a & 0xFFF, b & 0xFFF
    return bytes([ua & 0xFF, ((ub >> 8) << 4) | (ua >> 8), ub & 0xFF])


def _write_record(root, leads=3, n=2001, beats=40):
    """A format-212 record of ``leads`` signals (an odd count puts frames across 3-byte groups), random samples,
    and MIT annotations: beats of codes N/V/A every ~50 samples, one non-beat code."""
    rng = np.random.default_rng(4)
    d = rng.integers(-2048, 2048, (n, leads))
    flat = list(d.reshape(-1)) + ([0] if n * leads % 2 else [])
    (root / "r.dat").write_bytes(b"".join(_pack_212(int(a), int(b)) for a, b in zip(flat[::2], flat[1::2])))
    sigs = "".join(f"r.dat 212 {100 + 50 * c}(7) 11 1024 {d[0, c]} 0 0 L{c}\n" for c in range(leads))
    (root / "r.hea").write_text(f"r {leads} 250 {n}\n{sigs}")
    words, t = [], 0
    for i in range(beats):
        gap = int(rng.integers(30, 70))
        t += gap
        words.append(([1, 5, 8, 28][i % 4] << 10) | gap)
    (root / "r.atr").write_bytes(np.array(words + [0], "<u2").tobytes())
    return root / "r"


def test_wfdb_beats_stream_the_in_memory_windows(tmp_path):
    records = [_write_record(tmp_path)]
    if (SHARED_DATA / "mitbih" / "100.dat").exists():
        records.append(SHARED_DATA / "mitbih" / "100")
    for record in records:
        for window in (64, 127):
            eager = load_wfdb_beats(str(record), window=window)
            lazy = WfdbBeats(record, window=window)
            np.testing.assert_array_equal(_all(lazy), eager.x)
            np.testing.assert_array_equal(lazy.labels, eager.y)
            rows = np.array([len(lazy) - 1, 0, 3, 3])
            np.testing.assert_array_equal(lazy[rows].numpy(), eager.x[rows])
            assert len(pickle.dumps(lazy)) < 200_000
    _same_prepared({"source": str(records[0]), "loader": "wfdb_beats", "test_size": 0.3}, {"window": 32})
    dat = tmp_path / "r.dat"
    dat.write_bytes(dat.read_bytes()[:300])
    with pytest.raises(UserError, match="the file is truncated"):
        WfdbBeats(records[0])
    with pytest.raises(UserError, match="does not exist"):
        WfdbBeats(tmp_path / "nope")


def test_jets_stream_the_in_memory_jets_labels_and_split(tmp_path):
    t = toy_jets(80, max_particles=40, seed=1)
    save_jets(tmp_path / "j.npz", t["particles"], t["mask"], t["labels"])
    save_jets(tmp_path / "s.npz", t["particles"], t["mask"], t["labels"], split=np.repeat(["train", "test"], 40))
    np.savez(tmp_path / "nomask.npz", particles=t["particles"])  # stored, no labels: the mask is pT > 0
    for opts in ({"max_particles": 16}, {"max_particles": 16, "seed": 5}, {"test_fraction": 0.3}):
        for split_seed in (0, 3):
            _same_prepared({"source": str(tmp_path / "j.npz"), "loader": "jets", "normalize": "none",
                            "split_seed": split_seed}, opts)
    _same_prepared({"source": str(tmp_path / "s.npz"), "loader": "jets", "normalize": "none", "max_samples": 20})
    _same_prepared({"source": str(tmp_path / "nomask.npz"), "loader": "jets", "normalize": "none"},
                   {"max_particles": 8})
    eager = load_jets(str(tmp_path / "nomask.npz"), max_particles=100)
    np.testing.assert_array_equal(_all(NpzJets(tmp_path / "nomask.npz", max_particles=100)), eager.x)
    with pytest.raises(UserError, match="data.source=toy generates its jets in memory"):
        open_jets("toy")
    bad = t["particles"].copy()
    bad[7, 0, 0] = np.nan
    np.savez(tmp_path / "nan.npz", particles=bad, mask=t["mask"])
    with pytest.raises(UserError, match="have NaN or inf momenta"):
        open_jets(str(tmp_path / "nan.npz"))
    np.savez(tmp_path / "nop.npz", x=bad)
    with pytest.raises(UserError, match=r"no 'particles'"):
        open_jets(str(tmp_path / "nop.npz"))
    cms = SHARED_DATA / "cms_pfnano_10events_jets.npz"
    if cms.exists():
        with pytest.raises(UserError, match="CMS PFNano file.*drop data.stream"):
            open_jets(str(cms))


def test_streamed_series_follow_the_in_memory_rules_for_nan(tmp_path):
    """NaN inside a series, or a series of one real step, is refused when a batch reads it, as the in-memory
    loader refuses it when it loads; end padding reads as it does in memory."""
    x = np.random.default_rng(0).normal(size=(6, 2, 10)).astype(np.float32)
    x[1, :, 7:] = np.nan                                     # end padding in every channel: fine
    np.save(tmp_path / "ok.npy", x)
    np.testing.assert_array_equal(open_series(str(tmp_path / "ok.npy"))[np.arange(6)].numpy(),
                                  load_series(str(tmp_path / "ok.npy")).x)
    inside, short, one_channel = x.copy(), x.copy(), x.copy()
    inside[2, :, 5] = np.nan
    short[3, :, 1:] = np.nan
    one_channel[4, 0, 8:] = np.nan                           # padding in one channel only
    for name, a, rows, message in (("inside", inside, [2], "NaN inside"),
                                   ("short", short, [3], "shorter than 2 steps"),
                                   ("channel", one_channel, [4], "NaN inside")):
        np.savez(tmp_path / f"{name}.npz", x=a)
        with pytest.raises(UserError, match=message):
            load_series(str(tmp_path / f"{name}.npz"))
        lazy = open_series(str(tmp_path / f"{name}.npz"))
        assert lazy[np.array([0, 5])].shape == (2, 2, 10)   # rows without the defect read as usual
        with pytest.raises(UserError, match=rf"{message}.*\[{rows[0]}\]"):
            lazy[np.array(rows)]


def test_a_csv_that_changes_between_the_two_passes_is_one_clear_error(tmp_path, monkeypatch):
    import polyjepa.timeseries.csvseries as csvseries

    real_scan = csvseries._scan
    for edited in ("1,2,3,4\n5,6\n7,8,9\n", "1,2,3,4\n5,6,7,8,9\n7,8,9\n"):   # a row shorter, a row longer
        path = tmp_path / "s.csv"
        path.write_text("1,2,3,4\n5,6,7\n7,8,9\n")

        def scan_then_edit(p, label_first, text=edited):
            out = real_scan(p, label_first)
            p.write_text(text)
            return out

        monkeypatch.setattr(csvseries, "_scan", scan_then_edit)
        with pytest.raises(UserError, match=r"s.csv changed while it was read \(row 2 has"):
            csvseries.csv_series_cache([path], label_first=False, cache=tmp_path / "cache")
        assert not [f for f in (tmp_path / "cache").iterdir() if f.suffix != ".npz" or ".tmp" in f.name]
