"""The docs: every page's examples run, the site builds with --strict, the generated tables are current,
and no page or comment carries development history."""
import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
MODALITY_PAGES = ["images.md", "objectives.md", "timeseries.md", "tables.md", "audio.md", "points.md", "video.md"]
# An example is a ```python block right after a line "<!-- example -->"; the tests run each one.
EXAMPLE = re.compile(r"<!-- example -->\n```python\n(.*?)\n```", re.S)
NEEDS = {"timeseries.md": "aeon", "tables.md": "pandas"}


def examples():
    out = []
    for page in sorted(DOCS.glob("*.md")):
        for i, code in enumerate(EXAMPLE.findall(page.read_text())):
            out.append(pytest.param(page.name, code, id=f"{page.stem}-{i}"))
    return out


def test_every_modality_page_has_an_example():
    for name in MODALITY_PAGES + ["getting-started.md", "architecture.md", "diagnostics.md"]:
        assert EXAMPLE.search((DOCS / name).read_text()), f"docs/{name} has no '<!-- example -->' python block"


@pytest.mark.parametrize("page, code", examples())
def test_doc_example_runs(page, code, tmp_path, monkeypatch):
    module = NEEDS.get(page)
    if module and importlib.util.find_spec(module) is None:
        pytest.skip(f"docs/{page} needs {module} (pip install -e '.[dev]')")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, f"docs/{page}", "exec"), {"__name__": "__docs__"})


def test_generated_tables_are_current():
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "render_results.py"), "--check"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_render_check_fails_on_a_stale_table_and_render_fixes_it(tmp_path):
    for name in ("README.md",):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(DOCS, tmp_path / "docs")
    shutil.copytree(ROOT / "results", tmp_path / "results")
    script = [sys.executable, str(ROOT / "scripts" / "render_results.py"), "--root", str(tmp_path)]
    assert subprocess.run(script + ["--check"], capture_output=True).returncode == 0
    path = tmp_path / "results" / "audio-fsdd.json"
    record = json.loads(path.read_text())
    record["rows"][0][1] = 0.1234                      # a measured number changes ...
    path.write_text(json.dumps(record))
    r = subprocess.run(script + ["--check"], capture_output=True, text=True)
    assert r.returncode == 1 and "docs/audio.md" in r.stderr and "docs/results.md" in r.stderr
    assert "0.1234" not in (tmp_path / "docs" / "audio.md").read_text()      # --check changes nothing
    assert subprocess.run(script, capture_output=True).returncode == 0       # ... rendering takes it in
    assert "0.1234" in (tmp_path / "docs" / "audio.md").read_text()
    assert subprocess.run(script + ["--check"], capture_output=True).returncode == 0


def test_a_marker_without_a_result_file_says_so(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "results").mkdir()
    (tmp_path / "README.md").write_text("# x\n<!-- results:nothing-here -->\nold\n<!-- /results:nothing-here -->\n")
    subprocess.run([sys.executable, str(ROOT / "scripts" / "render_results.py"), "--root", str(tmp_path)], check=True)
    text = (tmp_path / "README.md").read_text()
    assert "old" not in text and "results/nothing-here.json" in text


@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("mkdocstrings") is None,
                    reason="mkdocs and mkdocstrings are not installed (pip install -e '.[docs]')")
def test_docs_site_builds_strict(tmp_path):
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-f", str(ROOT / "mkdocs.yml"),
                        "-d", str(tmp_path / "site")], capture_output=True, text=True, cwd=ROOT,
                       env={**__import__("os").environ, "NO_MKDOCS_2_WARNING": "1"})
    assert r.returncode == 0, r.stdout + r.stderr
    assert (tmp_path / "site" / "api" / "index.html").exists()


def test_no_development_history_in_docs_code_or_recipes():
    pattern = re.compile(r"session [0-9]|sessions [0-9]|issue #[0-9]|issue [0-9]", re.I)
    files = [ROOT / "README.md", *DOCS.glob("*.md"), *(ROOT / "benchmarks").glob("*.py"),
             *(ROOT / "src" / "polyjepa").rglob("*.py"), *(ROOT / "src" / "polyjepa").rglob("*.yaml")]
    hits = [f"{f.relative_to(ROOT)}:{n}" for f in files for n, line in enumerate(f.read_text().splitlines(), 1)
            if pattern.search(line)]
    assert not hits, f"history in: {hits}"
