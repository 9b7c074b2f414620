"""``polyjepa embed`` of a table run trained with ``data.stream=true``: a Parquet or Arrow file is read a batch of
rows at a time, encoded with the run's fitted schema, into the memory-mapped output; its rows and values are the
in-memory path's. ``--stream`` / ``--no-stream``, CSV and DataFrame inputs, and the errors."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pyarrow")
pd = pytest.importorskip("pandas")

from polyjepa.cli import main  # noqa: E402
from polyjepa.errors import UserError  # noqa: E402
from polyjepa.eval.embed import embed_array  # noqa: E402
from polyjepa.tabular.stream import TableBatches, stream_table  # noqa: E402
from tests.test_lazy_embed import encoder_for  # noqa: E402

TINY = ["train.batch_size=32", "train.max_steps=2", "train.monitor_every=0", "train.threads=1", "eval.baselines=false",
        "--no-progress"]


def frame(n: int, seed: int, colours=("red", "white", "rose")) -> pd.DataFrame:
    """Numbers with missing values, a small integer column (categorical), a text column and a class label."""
    rng = np.random.default_rng(seed)
    out = pd.DataFrame({"acid": rng.normal(3.0, 2.0, n), "sugar": rng.gamma(2.0, 5.0, n),
                        "grade": rng.integers(0, 4, n), "colour": rng.choice(list(colours), n),
                        "target": rng.integers(0, 3, n)})
    out.loc[rng.random(n) < 0.1, "acid"] = np.nan
    out.loc[rng.random(n) < 0.05, "colour"] = None
    return out


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    path = tmp_path_factory.mktemp("table") / "wine.parquet"
    frame(150, 0).to_parquet(path, row_group_size=37, index=False)
    return path


@pytest.fixture(scope="module")
def encoder(table):
    """An untrained streamed T-JEPA encoder with the schema its run on ``table`` fits (training does not change
    how rows are read)."""
    return encoder_for("tjepa", ["data.stream=true", "data.target=target", "encoder.depth=1"], str(table))


def read_sizes(monkeypatch) -> list[int]:
    """The sizes of the batches read through ``TableBatches`` from now on."""
    sizes: list[int] = []
    batches = TableBatches.batches

    def counted(self, rows):
        for part in batches(self, rows):
            sizes.append(len(part))
            yield part

    monkeypatch.setattr(TableBatches, "batches", counted)
    return sizes


def test_a_streamed_table_run_embeds_a_parquet_file_a_batch_at_a_time_as_in_memory(encoder, table, tmp_path,
                                                                                   monkeypatch):
    import polyjepa.tabular.loader as loader

    want = encoder.embed(str(table), stream=False)  # the table read whole by the in-memory loader
    assert want.shape == (150, encoder.dim)
    # an independent path: the training stream's cached encoding of the same file, embedded whole
    x, _, _ = stream_table(table, target="target", fitted=encoder.config["meta"])
    np.testing.assert_allclose(embed_array(encoder.encoder, np.array(x), pool=encoder.pool, layers=encoder.layers),
                               want, rtol=1e-5, atol=1e-5)
    sizes = read_sizes(monkeypatch)
    monkeypatch.setattr(loader, "read_table", lambda *a, **k: pytest.fail("the lazy path read the table whole"))
    got = encoder.embed(str(table), batch_size=16, out=tmp_path / "e.npy")  # follows the run: lazy
    assert isinstance(got, np.memmap) and not got.flags.writeable
    assert sum(sizes) == 150 and max(sizes) == 16 and len(sizes) >= 10  # row groups of 37 cut some batches short
    np.testing.assert_allclose(np.load(tmp_path / "e.npy"), want, rtol=1e-5, atol=1e-5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.npy"]  # no temporary file left behind
    np.testing.assert_allclose(encoder.embed(str(table), batch_size=64), want, rtol=1e-5, atol=1e-5)  # in memory


def test_new_rows_and_an_arrow_file_are_encoded_with_the_runs_schema(encoder, tmp_path, monkeypatch):
    import pyarrow as pa
    import pyarrow.feather as feather

    new = frame(90, 1, colours=("red", "white", "orange")).drop(columns="target")  # unlabelled, an unseen colour
    parquet, arrow = tmp_path / "new.parquet", tmp_path / "new.arrow"
    new.to_parquet(parquet, row_group_size=25)
    feather.write_feather(pa.Table.from_pandas(new, preserve_index=False), arrow, chunksize=20)
    want = encoder.embed(new)  # a DataFrame: in memory, encoded with the fitted schema
    rows = np.concatenate(list(TableBatches(parquet, fitted=encoder.config["meta"]).batches(32)))
    from polyjepa.tabular.schema import encode

    np.testing.assert_array_equal(rows, encode(new, encoder.config["meta"]))  # same categories, statistics
    assert np.isnan(rows).any() and (rows[:, 3] == 3).any()  # missing values kept, 'orange' as the unseen code
    sizes = read_sizes(monkeypatch)
    np.testing.assert_allclose(encoder.embed(str(parquet), batch_size=32), want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(encoder.embed(str(arrow), batch_size=32, stream=True), want, rtol=1e-5, atol=1e-5)
    assert sum(sizes) == 180 and max(sizes) <= 32
    assert sizes[3:] == [20] * 4 + [10]  # the Arrow file's record batches of 20
    # a pandas index stored in the file stays the index, as pandas reads the file
    indexed = tmp_path / "indexed.parquet"
    new.set_index(pd.Index(np.arange(90) + 1000, name="id")).to_parquet(indexed)
    np.testing.assert_allclose(encoder.embed(str(indexed)), want, rtol=1e-5, atol=1e-5)


def test_csv_and_dataframes_follow_the_in_memory_path_and_stream_true_insists(encoder, table, tmp_path):
    csv = tmp_path / "wine.csv"
    pd.read_parquet(table).to_csv(csv, index=False)
    want = encoder.embed(str(table), stream=False)
    np.testing.assert_allclose(encoder.embed(str(csv)), want, rtol=1e-5, atol=1e-5)  # CSV: in memory, as before
    np.testing.assert_allclose(encoder.embed(pd.read_parquet(table)), want, rtol=1e-5, atol=1e-5)
    with pytest.raises(UserError, match="reads a .parquet or Arrow IPC .* not .*wine.csv.*drop --stream") as e:
        encoder.embed(str(csv), stream=True)
    assert "\n" not in str(e.value)
    with pytest.raises(UserError, match="reads a path, not a DataFrame"):
        encoder.embed(pd.read_parquet(table), stream=True)


def test_bad_tables_are_one_clear_error_before_any_output(encoder, table, tmp_path):
    out = tmp_path / "e.npy"
    other = tmp_path / "other.parquet"
    pd.read_parquet(table).rename(columns={"sugar": "salt"}).to_parquet(other)
    with pytest.raises(UserError, match="columns differ .*missing \\['sugar'\\].*unexpected \\['salt'\\].*--no-stream"):
        encoder.embed(str(other), out=out)
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(table.read_bytes()[:200])
    with pytest.raises(UserError, match="cannot read .*broken.parquet as Parquet"):
        encoder.embed(str(broken), out=out)
    with pytest.raises(UserError, match="missing.parquet is not a file"):
        encoder.embed(str(tmp_path / "missing.parquet"), out=out)
    assert not out.exists() and not any(p.suffix == ".npy" for p in tmp_path.iterdir())


def test_embed_cli_on_a_streamed_table_run(table, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["pretrain", "tjepa", "--data", str(table), "data.stream=true", "data.target=target",
                 "encoder.depth=1", "--out", str(run), *TINY]) == 0
    lazy, mem = tmp_path / "lazy.npy", tmp_path / "mem.npy"
    assert main(["embed", str(run), "--data", str(table), "--out", str(lazy), "--batch-size", "40"]) == 0
    assert main(["embed", str(run), "--data", str(table), "--out", str(mem), "--no-stream"]) == 0
    assert "wrote 150 embeddings" in capsys.readouterr().out
    np.testing.assert_allclose(np.load(lazy), np.load(mem), rtol=1e-5, atol=1e-5)
    csv = tmp_path / "wine.csv"
    pd.read_parquet(table).to_csv(csv, index=False)
    assert main(["embed", str(run), "--data", str(csv), "--out", str(tmp_path / "x.npy"), "--stream"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("polyjepa: error: ") and "Arrow IPC" in err and err.count("\n") == 1


def test_stream_true_on_a_run_that_standardised_its_table_in_memory(table):
    enc = encoder_for("tjepa", ["data.normalize=channel", "data.target=target", "encoder.depth=1"], str(table))
    assert enc.config["mean"] is not None and enc.open_lazy(str(table)) is None  # not streamed: in memory by default
    want = enc.embed(str(table))
    np.testing.assert_allclose(enc.embed(str(table), stream=True, batch_size=50), want, rtol=1e-5, atol=1e-5)
