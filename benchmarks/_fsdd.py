"""The FSDD benchmarks' probe table (imported as ``_fsdd`` from beside them): rows of
(representation, probes {"digit", "digit_knn", "speaker"}, RankMe or None, training note)."""
from __future__ import annotations

COLUMNS = ["representation", "digit linear", "digit kNN", "speaker linear", "RankMe", "training"]


def print_rows(rows) -> None:
    """The rows as a printed Markdown table."""
    print("| " + " | ".join(COLUMNS) + " |")
    print("|---|---:|---:|---:|---:|---|")
    for name, p, rk, t in rows:
        rk_s = "-" if rk is None else f"{rk:.1f}"
        print(f"| {name} | {p['digit']:.4f} | {p['digit_knn']:.4f} | {p['speaker']:.4f} | {rk_s} | {t} |")


def result_rows(rows) -> list[list]:
    """The rows as ``save_result`` stores them (probes to 4 places, RankMe to 1)."""
    return [[name, round(p["digit"], 4), round(p["digit_knn"], 4), round(p["speaker"], 4),
             None if rk is None else round(rk, 1), t] for name, p, rk, t in rows]
