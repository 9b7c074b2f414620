"""Benchmark results as data: what save_result writes and how it renders."""
import json

import pytest

from polyjepa.eval.cache import PROBE_VERSION
from polyjepa.results import load_result, render_markdown, save_result


def test_a_result_records_its_table_machine_and_probe_version(tmp_path):
    path = save_result("demo-table", columns=["representation", "linear"], rows=[["encoder", 0.92], ["raw", 0.9833]],
                       command="python benchmarks/demo.py", seconds=90.0, notes=["one finding"], directory=tmp_path)
    assert path == tmp_path / "demo-table.json" and not list(tmp_path.glob("*.tmp"))
    record = load_result(path)
    assert record["probe_version"] == PROBE_VERSION and record["rows"] == [["encoder", 0.92], ["raw", 0.9833]]
    assert record["machine"]["cpu"] and record["machine"]["torch"]
    assert set(record["machine"].get("isa", "").split()) <= {"amx_bf16", "avx512_bf16", "avx512f", "avx2"}
    text = render_markdown(record)
    assert "| encoder | 0.9200 |" in text and "| raw | 0.9833 |" in text     # one number of decimals per column
    assert "`python benchmarks/demo.py`" in text and "1.5 min" in text and "- one finding" in text


def test_a_malformed_result_is_refused(tmp_path):
    with pytest.raises(ValueError, match="row 0 has 1 cells for 2 columns"):
        save_result("bad", columns=["a", "b"], rows=[[1]], directory=tmp_path)
    with pytest.raises(ValueError, match="plain file stem"):
        save_result("a/b", columns=["a"], rows=[], directory=tmp_path)
    (tmp_path / "other.json").write_text(json.dumps({"schema": "something/1"}))
    with pytest.raises(ValueError, match="not a polyjepa-result/1 result"):
        load_result(tmp_path / "other.json")
