"""The run's skip log: files skipped while streaming are logged by every process (DataLoader workers included),
counted once each in summary.json and the report, and ``max_bad`` applies to what all the processes skipped."""
from __future__ import annotations

import json
import pickle
import re
import warnings
from multiprocessing import get_context

import numpy as np
import pytest
from torch.utils.data import DataLoader

from polyjepa.cli import main
from polyjepa.data.batches import MaskedBatches
from polyjepa.data.skiplog import append_skip, attach_skip_log, merge_skip_log, parts_dir, read_skip_log, skip_summary
from polyjepa.data.stream import ImageFolderStream
from polyjepa.errors import UserError

TINY = ["encoder.size=micro", "encoder.depth=2", "predictor.dim=32", "predictor.depth=1", "predictor.heads=2",
        "train.batch_size=32", "train.max_steps=4", "train.log_every=1", "train.monitor_every=0", "train.threads=1",
        "eval.baselines=false", "eval.monitor_samples=32", "train.num_workers=2", "data.stream=true"]


def _digits(root, n: int):
    """``n`` of scikit-learn's 8x8 digits as grey PNGs, one sub-folder per class."""
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    for i in range(n):
        (root / str(d.target[i])).mkdir(parents=True, exist_ok=True)
        Image.fromarray((d.images[i] * 255 / 16).round().astype(np.uint8)).save(root / str(d.target[i]) / f"{i:04d}.png")
    return root


def _corrupt_jpeg(path):
    """A JPEG whose header opens but whose data are cut short, so decoding it fails."""
    from PIL import Image

    Image.fromarray(np.random.default_rng(0).integers(0, 256, (8, 8), dtype=np.uint8)).save(path, quality=90)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def _append_many(log, tag, n):
    for k in range(n):
        append_skip(log, f"/data/{tag}/file {k:04d}.png", f"reason\twith a tab {k}")


def test_concurrent_appends_give_whole_lines_and_a_distinct_count(tmp_path):
    log = tmp_path / "skipped.tsv"
    ctx = get_context("fork")
    procs = [ctx.Process(target=_append_many, args=(log, t, 300)) for t in ("a", "b", "c")]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    parts = sorted(parts_dir(log).glob("*.tsv"))
    assert len(parts) == 3                                                     # one file per writing process
    lines = [line for p in parts for line in p.read_text().splitlines()]
    assert len(lines) == 900 and all(line.count("\t") == 2 for line in lines)  # no torn or merged lines
    append_skip(log, "/data/a/file 0000.png", "again")                         # a repeat counts once
    seen = read_skip_log(log)
    assert len(seen) == 900 and seen["/data/a/file 0000.png"] == "reason with a tab 0"
    assert skip_summary(log)["count"] == 900 and len(skip_summary(log)["first"]) == 10
    for tag in "abc":   # each process's files in the order it skipped them
        mine = [n for n in seen if f"/{tag}/" in n]
        assert mine == sorted(mine)
    merge_skip_log(log)
    assert not parts_dir(log).exists() and len(log.read_text().splitlines()) == 900
    assert read_skip_log(log) == seen
    append_skip(log, "/data/d/late.png", "after the merge")                    # a later skip adds to the merged log
    assert list(read_skip_log(log))[-1] == "/data/d/late.png" and skip_summary(log)["count"] == 901
    assert skip_summary(tmp_path / "none.tsv") is None


def identity_masker(batch_size, generator):
    import torch

    return torch.zeros(batch_size, 1, dtype=torch.long), torch.zeros(batch_size, 1, 1, dtype=torch.long)


def test_max_bad_counts_what_every_worker_skipped(tmp_path):
    root = _digits(tmp_path / "imgs", 24)
    clean = ImageFolderStream(root)
    b = MaskedBatches(clean, batch_size=6, masker=identity_masker, seed=3)
    # the files of step 0 (worker 0 of 2) and of step 1 (worker 1): one bad file in each, far apart in file order
    x0, x1 = b[0]["x"].numpy(), b[1]["x"].numpy()
    all_x = clean[np.arange(24)].numpy()
    in0 = [int(np.flatnonzero((all_x == x).all(axis=(1, 2, 3)))[0]) for x in x0]
    in1 = [int(np.flatnonzero((all_x == x).all(axis=(1, 2, 3)))[0]) for x in x1]
    pick = [(i, j) for i in in0 for j in in1 if i > 0 and j > 0 and abs(i - j) > 1 and i + 1 not in in1
            and j + 1 not in in0]
    i, j = pick[0]
    for k in (i, j):
        clean.files[k].write_bytes(b"not an image")

    def run(stream):
        loader = DataLoader(MaskedBatches(stream, batch_size=6, masker=identity_masker, seed=3), sampler=range(2),
                            batch_size=None, num_workers=2, multiprocessing_context="fork")
        return [x for x in loader]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert len(run(ImageFolderStream(root, max_bad=1))) == 2   # each worker alone skips 1, within max_bad=1
        log = tmp_path / "skipped.tsv"
        stream = ImageFolderStream(root, max_bad=1, skip_log=log)
        with pytest.raises(UserError, match="2 of 24 images .* cannot be read"):
            run(stream)                                               # the two workers together skip 2
    assert set(read_skip_log(log)) == {str(clean.files[i]), str(clean.files[j])}
    assert pickle.loads(pickle.dumps(stream)).skip_log == log       # workers receive the log with the source


@pytest.fixture(scope="module")
def folder_with_a_bad_jpeg(tmp_path_factory):
    root = _digits(tmp_path_factory.mktemp("skips") / "digits", 120)
    _corrupt_jpeg(root / "3" / "0999.jpg")
    return root


def test_a_streamed_run_with_workers_reports_its_one_corrupt_jpeg(folder_with_a_bad_jpeg, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["pretrain", "ijepa-digits", "--data", str(folder_with_a_bad_jpeg), "--out", str(run), *TINY,
                 "--no-progress"]) == 0
    bad = str(folder_with_a_bad_jpeg / "3" / "0999.jpg")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["skipped_files"] == {"count": 1, "first": [bad]}
    assert summary["n_train"] + summary["n_test"] == 121
    report = (run / "report.md").read_text()
    assert "skipped 1 unreadable file(s)" in report and bad in report
    assert "skipped 1 unreadable file(s)" in capsys.readouterr().out
    assert list(read_skip_log(run / "skipped.tsv")) == [bad]


def test_too_many_bad_files_over_the_whole_run_is_one_line_error(tmp_path, capsys, monkeypatch):
    import torch

    from polyjepa.config import DataConfig
    from polyjepa.data.prepare import evaluation_sample, prepare

    root = _digits(tmp_path / "digits", 120)
    # which training images the main process decodes before training (the probe sample and the first two batches,
    # drawn to check them); with 2 workers, worker 0 draws steps 0, 2, 4 and worker 1 steps 1, 3, 5 of epoch 0
    read = set()
    decode = ImageFolderStream._try_decode
    monkeypatch.setattr(ImageFolderStream, "_try_decode", lambda self, i: read.add(self.files[i]) or decode(self, i))
    prepared = prepare(DataConfig(source=str(root), stream=True, normalize="none"))
    evaluation_sample(prepared, 8, seed=0)
    monkeypatch.undo()
    files = prepared.x_train.files
    perm = torch.randperm(len(files), generator=torch.Generator().manual_seed(0 * 7919 + 0)).tolist()
    step = [[files[i] for i in perm[16 * k:16 * (k + 1)]] for k in range(6)]
    bad = [next(f for f in step[k] if f not in read and f != files[0]) for k in (2, 3)]   # one per worker
    for f in bad:
        f.write_bytes(b"not an image")
    # 2 of 120 images is over max_bad (1% of the folder), though each worker skips 1 alone and the main process none
    assert main(["pretrain", "ijepa-digits", "--data", str(root), "--out", str(tmp_path / "run"), *TINY,
                 "train.batch_size=16", "train.max_steps=6", "data.normalize=none", "eval.max_samples=8",
                 "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert re.match(r"polyjepa: error: 2 of 120 images under .* cannot be read", err[-1]), err[-1]
    assert "Traceback" not in err[-1] and "worker" not in err[-1]
    assert set(read_skip_log(tmp_path / "run" / "skipped.tsv")) == {str(f) for f in bad}


def test_an_edf_source_logs_the_files_it_skipped(tmp_path):
    from polyjepa.config import DataConfig
    from polyjepa.data.prepare import prepare
    from polyjepa.timeseries.stream import EdfEpochs
    from tests.test_timeseries_edf import write_edf

    fs, root = 64, tmp_path / "eeg"
    root.mkdir()
    rng = np.random.default_rng(0)
    for k in range(3):
        x = rng.normal(0, 20, (2, 40 * fs)).clip(-99, 99)
        write_edf(root / f"S{k:02d}.edf", x, fs, [(2.5 * i + 1.0, 2.0, f"T{i % 2}") for i in range(14)])
    (root / "S01.edf").write_bytes(b"nonsense")
    log = tmp_path / "direct.tsv"
    with pytest.warns(Warning, match="S01.edf"):
        EdfEpochs(root, seconds=2.0, skip_log=log)
    assert list(read_skip_log(log)) == [str(root / "S01.edf")] and "EDF" in read_skip_log(log)[str(root / "S01.edf")]
    # as a run does it: opened (and the file skipped) before the run directory exists, then attached to its log
    with pytest.warns(Warning, match="S01.edf"):
        prepared = prepare(DataConfig(source=str(root), loader="edf_epochs", stream=True), options={"seconds": 2.0})
    run_log = tmp_path / "run.tsv"
    attach_skip_log((prepared.x_train, prepared.x_test), run_log)
    attach_skip_log((prepared.x_train, prepared.x_test), run_log)   # attaching again logs nothing twice
    assert skip_summary(run_log) == {"count": 1, "first": [str(root / "S01.edf")]}
    merge_skip_log(run_log)
    assert len(run_log.read_text().splitlines()) == 1 and prepared.x_train.skip_log == run_log
