"""benchmarks/_memory.py, the fresh-process harness of the memory benchmarks: which run stands for a mode, the order
and printing of interleaved runs, a failed child, the peak-memory reading and the embeddings' largest difference."""
import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
import _memory  # noqa: E402

RUNS = [{"mode": "lazy", "samples_per_second": s, "peak_rss_mb": p, "rss_ready_mb": q, "ready_seconds": t,
         "first": [i]} for i, (s, p, q, t) in enumerate([(30.0, 500.0, 300.0, 2.0), (10.0, 520.0, 310.0, 1.5),
                                                         (20.0, 510.0, 290.0, 3.0), (40.0, 490.0, 305.0, 2.5)])]


def test_the_fastest_run_stands_for_its_mode_with_the_highest_peaks_and_lowest_ready_time():
    r = _memory.representative(RUNS, pick="fastest", highest=("peak_rss_mb", "rss_ready_mb"),
                               lowest=("ready_seconds",), drop=("first",), add={"path": "lazy"})
    assert r == {"mode": "lazy", "samples_per_second": 40.0, "peak_rss_mb": 520.0, "rss_ready_mb": 310.0,
                 "ready_seconds": 1.5, "path": "lazy", "samples_per_second_runs": [30.0, 10.0, 20.0, 40.0]}
    # the keys keep the run's order, the added ones follow: the result files' column order depends on it
    assert list(r) == ["mode", "samples_per_second", "peak_rss_mb", "rss_ready_mb", "ready_seconds", "path",
                       "samples_per_second_runs"]


@pytest.mark.parametrize("n, expected", [(1, 30.0), (2, 10.0), (3, 20.0), (4, 20.0)])
def test_the_median_run_is_the_lower_middle_by_samples_per_second(n, expected):
    rs = RUNS[:n]
    r = _memory.representative(rs, pick="median", highest=("peak_rss_mb",))
    assert r["samples_per_second"] == expected
    # its own ready time and first sample stay; only the named keys take the extreme over the runs
    chosen = next(x for x in rs if x["samples_per_second"] == expected)
    assert r["ready_seconds"] == chosen["ready_seconds"] and r["first"] == chosen["first"]
    assert r["peak_rss_mb"] == max(x["peak_rss_mb"] for x in rs)


def test_an_unknown_pick_is_refused():
    with pytest.raises(ValueError, match="fastest"):
        _memory.representative(RUNS, pick="best", highest=())


def test_runs_are_interleaved_each_in_a_fresh_process_and_printed(capsys):
    child = "import json, os, sys; print('noise'); print(json.dumps({'mode': sys.argv[1], 'pid': os.getpid()}))"
    runs = _memory.interleaved(2, lambda rep: ("first", "lazy", "memory") if rep == 0 else ("lazy", "memory"),
                               lambda mode: ["-c", child, mode], lambda r: f"pid {r['pid']}",
                               label=lambda mode: f"edf {mode}")
    assert list(runs) == ["first", "lazy", "memory"]
    assert [len(v) for v in runs.values()] == [1, 2, 2]
    assert all(r["mode"] == mode for mode, rs in runs.items() for r in rs)
    pids = [r["pid"] for rs in runs.values() for r in rs]
    assert len(set(pids)) == 5
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["edf first (run 1)", "edf lazy (run 1)", "edf memory (run 1)",
                                                      "edf lazy (run 2)", "edf memory (run 2)"]
    assert lines[0] == f"edf first (run 1): pid {runs['first'][0]['pid']}"


def test_a_failed_child_ends_the_script_with_one_line_and_its_stderr(capsys):
    with pytest.raises(SystemExit, match="^the audio lazy run failed$"):
        _memory.run_child(["-c", "import sys; sys.exit('the clips are missing')"], "audio lazy")
    assert "the clips are missing" in capsys.readouterr().err


def test_peak_rss_counts_memory_the_child_touched():
    child = (f"import json, sys; sys.path.insert(0, {str(BENCHMARKS)!r}); import numpy as np, _memory; "
             "a = _memory.peak_rss_mb(); x = np.ones((int(a) + 64) << 20, np.uint8); "
             "print(json.dumps([a, _memory.peak_rss_mb(), _memory.peak_rss_mb(children=True)]))")
    before, after, children = _memory.run_child(["-c", child], "peak")
    # the array alone is 64 MB larger than the peak before it
    assert after >= before + 64 and children < after


def test_the_table_is_printed_left_aligned(capsys):
    _memory.print_rows(["path", "peak RSS (MB)"], [["lazy", 500], ["in memory", 900]])
    assert capsys.readouterr().out == ("\n| path | peak RSS (MB) |\n|---|---|\n| lazy | 500 |\n"
                                       "| in memory | 900 |\n")


def test_generate_makes_a_missing_file_once(tmp_path, capsys):
    path, calls = tmp_path / "sub" / "data.npz", []

    def write():
        calls.append(1)
        path.write_text("x")

    _memory.generate(path, write)
    _memory.generate(path, write)
    assert calls == [1] and capsys.readouterr().out.startswith(f"generated {path} in ")


@pytest.mark.parametrize("block", [1, 3, 50_000])
def test_largest_difference_of_the_embeddings_read_in_blocks(tmp_path, block):
    rng = np.random.default_rng(0)
    lazy = rng.normal(size=(7, 4)).astype(np.float32)
    memory = lazy + rng.normal(scale=1e-3, size=lazy.shape).astype(np.float32)
    np.save(tmp_path / "emb-lazy.npy", lazy)
    np.save(tmp_path / "emb-memory.npy", memory)
    assert _memory.largest_difference(tmp_path, block) == float(np.abs(lazy - memory).max())


def test_a_note_compares_the_lazy_path_with_the_in_memory_one():
    assert _memory.lazy_against_memory(400, 1000, 90, 100) == (
        "peak RSS 400 MB lazy vs 1000 MB in memory (x2.5); training samples/s 0.90 of the in-memory path's")
    assert _memory.lazy_against_memory(400, 1000, 90, 100, what="peak RSS through training", times=False) == (
        "peak RSS through training 400 MB lazy vs 1000 MB in memory; training samples/s 0.90 of the in-memory "
        "path's")


def test_the_embed_rows_put_the_middle_cells_between_the_rows_and_the_memory():
    runs = {"lazy": {"rows": 10, "anon_before_mb": 200.4, "anon_peak_mb": 250.6, "peak_mb": 400.2, "seconds": 1.26},
            "memory": {"rows": 10, "anon_before_mb": 201.0, "anon_peak_mb": 300.0, "peak_mb": 410.0, "seconds": 0.9}}
    rows = _memory.embed_rows(runs, [5, 7])
    assert rows == [["lazy (stream=True)", 10, 5, 7, 200, 251, 400, 1.3],
                    ["memory (stream=False)", 10, 5, 7, 201, 300, 410, 0.9]]
    assert len(rows[0]) == 4 + len(_memory.EMBED_COLUMNS)
