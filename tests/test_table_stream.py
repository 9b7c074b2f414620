"""A Parquet table streamed in record batches: the encoded rows, labels, split and schema of the in-memory table
loader, a cache that an interrupted encoding never leaves behind, and a pretrain run from the command line."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("pyarrow")
pd = pytest.importorskip("pandas")

from polyjepa.cli import main  # noqa: E402
from polyjepa.config import DataConfig  # noqa: E402
from polyjepa.data.prepare import prepare  # noqa: E402
from polyjepa.errors import UserError  # noqa: E402
from polyjepa.tabular.stream import RowView, stream_table  # noqa: E402


@pytest.fixture
def table(tmp_path):
    """scikit-learn's wine table with a categorical column and missing values, as Parquet in row groups of 50."""
    from sklearn.datasets import load_wine

    frame = load_wine(as_frame=True).frame
    rng = np.random.default_rng(0)
    frame["colour"] = rng.choice(["red", "white", "rose"], len(frame))
    frame.loc[rng.random(len(frame)) < 0.1, "alcohol"] = np.nan
    path = tmp_path / "wine.parquet"
    frame.to_parquet(path, row_group_size=50)
    return path


def test_streamed_rows_equal_the_in_memory_table(table, tmp_path):
    from polyjepa.tabular.loader import load_table

    eager = load_table(str(table))
    x, y, meta = stream_table(table, batch_rows=32, cache=tmp_path / "cache")
    assert isinstance(x, np.memmap) and not x.flags.writeable
    np.testing.assert_array_equal(np.asarray(x), eager.x)
    np.testing.assert_array_equal(y, eager.y)
    assert json.dumps(meta, sort_keys=True) == json.dumps(eager.meta, sort_keys=True)
    # the schema comes from the first rows only when the table is longer than fit_rows
    _, _, head = stream_table(table, fit_rows=60, cache=tmp_path / "cache")
    assert head["mean"] != meta["mean"]
    assert head["mean"][0] == pytest.approx(np.nanmean(pd.read_parquet(table)["alcohol"][:60]), rel=1e-9)


def test_an_arrow_ipc_file_streams_the_rows_of_the_same_table_as_parquet(table, tmp_path):
    import pyarrow as pa
    import pyarrow.feather as feather

    frame = pd.read_parquet(table)
    arrow = tmp_path / "wine.arrow"
    feather.write_feather(pa.Table.from_pandas(frame, preserve_index=False), arrow, chunksize=40)
    x, y, meta = stream_table(table, batch_rows=32, cache=tmp_path / "cache")
    xa, ya, meta_a = stream_table(arrow, batch_rows=32, cache=tmp_path / "cache")   # 5 record batches, cut at 32
    np.testing.assert_array_equal(np.asarray(xa), np.asarray(x))
    np.testing.assert_array_equal(ya, y)
    assert json.dumps(meta_a, sort_keys=True) == json.dumps(meta, sort_keys=True)
    broken = tmp_path / "broken.feather"
    broken.write_bytes(arrow.read_bytes()[:300])
    with pytest.raises(UserError, match="cannot read .*broken.feather as an Arrow IPC"):
        stream_table(broken)


def test_prepare_splits_a_streamed_table_as_the_in_memory_one(table):
    opts = {"target": "target"}
    eager = prepare(DataConfig(source=str(table), loader="table", normalize="none"), options=dict(opts))
    lazy = prepare(DataConfig(source=str(table), loader="table", normalize="none", stream=True), options=dict(opts))
    assert isinstance(lazy.x_train, RowView) and lazy.x_train.shape == eager.x_train.shape
    np.testing.assert_array_equal(lazy.y_train, eager.y_train)
    np.testing.assert_array_equal(lazy.y_test, eager.y_test)
    rows = np.arange(len(eager.x_train))[::-1].copy()  # any order, as a batch asks for it
    np.testing.assert_array_equal(lazy.x_train[torch.from_numpy(rows)].numpy(), eager.x_train[rows])
    np.testing.assert_array_equal(lazy.x_test[np.arange(len(eager.x_test))].numpy(), eager.x_test)
    import pickle

    again = pickle.loads(pickle.dumps(lazy.x_train))  # as a DataLoader worker receives it: the file, not the rows
    assert len(pickle.dumps(lazy.x_train)) < 4096 and isinstance(again.base, np.memmap)
    np.testing.assert_array_equal(again[rows].numpy(), eager.x_train[rows])
    official = prepare(DataConfig(source=str(table), loader="table", normalize="none", stream=True),
                       options={"target": "target", "train_rows": 150})
    assert len(official.x_train) == 150 and len(official.x_test) == 28


def test_an_interrupted_encoding_leaves_no_cache(table, tmp_path, monkeypatch):
    import polyjepa.tabular.schema as schema

    calls = {"n": 0}
    real = schema.encode

    def failing(frame, sch):
        calls["n"] += 1
        if calls["n"] == 3:  # the third record batch of 50 rows
            raise KeyboardInterrupt
        return real(frame, sch)

    monkeypatch.setattr(schema, "encode", failing)
    with pytest.raises(KeyboardInterrupt):
        stream_table(table, batch_rows=50, cache=tmp_path / "cache")
    assert not any((tmp_path / "cache").iterdir())
    monkeypatch.setattr(schema, "encode", real)
    x, _, _ = stream_table(table, batch_rows=50, cache=tmp_path / "cache")
    assert x.shape == (178, 14) and len(list((tmp_path / "cache").iterdir())) == 1


def test_bad_tables_are_one_clear_error(table, tmp_path):
    with pytest.raises(UserError, match="reads a table from a .parquet or Arrow IPC"):
        stream_table(tmp_path / "wine.csv")
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(table.read_bytes()[:200])
    with pytest.raises(UserError, match="cannot read .*broken.parquet as Parquet"):
        stream_table(broken)
    with pytest.raises(UserError, match="target column 'label' is not in the table"):
        stream_table(table, target="label")
    with pytest.raises(UserError, match="set data.normalize=none"):
        prepare(DataConfig(source=str(table), loader="table", stream=True))


def test_pretrain_streams_a_parquet_table(table, tmp_path):
    run = tmp_path / "run"
    assert main(["pretrain", "tjepa", "--data", str(table), "data.stream=true", "data.target=target", "--out", str(run),
                 "train.max_steps=4", "train.batch_size=32", "train.monitor_every=0", "train.threads=1",
                 "eval.baselines=false", "--no-progress"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["n_train"] == 142 and summary["n_test"] == 36 and summary["eval_sample"]["streamed"]
    assert main(["probe", str(run)]) == 0
