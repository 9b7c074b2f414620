"""Peak memory and time of reading a large MovieLens-format ratings file: parsed a million lines at a time (the
reader's default) against the whole file parsed at once, each in a fresh process.

    python benchmarks/ratings_memory.py [--ratings 5000000] [--users 60000] [--movies 20000] [--min-rating 4]
                                        [--repeats 2] [--folder DIR]

The benchmark writes ``ratings.dat`` (``user::movie::rating::timestamp`` lines, uniform random ids, ratings 1-5)
into ``--folder`` (a temporary folder by default) unless it is there, then runs ``read_ratings`` with
``chunk_rows`` = 1,000,000 and with ``chunk_rows`` larger than the file, interleaved, ``--repeats`` times each. Both
give the same interactions (checked here: same count and the same checksum of the codes); the table gives the
fastest run's seconds and the highest peak RSS of each way.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from _memory import generate, interleaved, peak_rss_mb, report, scratch_folder

CHILD_WAYS = {"chunks of 1,000,000 lines": 1_000_000, "whole file at once": 10**12}


def child(path: str, chunk_rows: int, min_rating: float) -> None:
    import numpy as np

    from polyjepa.recommend.data import read_ratings

    t = time.perf_counter()
    inter = read_ratings(path, min_rating=min_rating, chunk_rows=chunk_rows)
    seconds = time.perf_counter() - t
    weights = np.arange(1, len(inter.queries) + 1, dtype=np.int64) % 1000003
    print(json.dumps({"seconds": seconds, "peak_rss_mb": peak_rss_mb(), "interactions": len(inter.queries),
                      "users": inter.n_queries, "movies": inter.n_items,
                      "checksum": int((inter.queries * 7919 + inter.items) @ weights % 2**61)}))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ratings", type=int, default=5_000_000)
    ap.add_argument("--users", type=int, default=60_000)
    ap.add_argument("--movies", type=int, default=20_000)
    ap.add_argument("--min-rating", type=float, default=4.0)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--folder", default=None)
    ap.add_argument("--name", default="ratings_memory", help="result file stem under results/")
    args = ap.parse_args(argv)
    started = time.perf_counter()
    tmp = scratch_folder(args, "ratings-")
    path = Path(args.folder) / f"ratings-{args.ratings}-{args.users}-{args.movies}.dat"

    def write():
        import numpy as np

        rng = np.random.default_rng(0)
        with open(path, "w") as f:
            for start in range(0, args.ratings, 1_000_000):
                n = min(1_000_000, args.ratings - start)
                cols = (rng.integers(1, args.users + 1, n), rng.integers(1, args.movies + 1, n),
                        rng.integers(1, 6, n), rng.integers(900_000_000, 1_100_000_000, n))
                f.writelines(f"{u}::{m}::{r}::{t}\n" for u, m, r, t in zip(*(c.tolist() for c in cols)))

    generate(path, write)
    size_mb = path.stat().st_size / 1e6
    runs = interleaved(args.repeats, lambda rep: CHILD_WAYS,
                       lambda way: [__file__, "--child", str(path), str(CHILD_WAYS[way]), str(args.min_rating)],
                       describe=lambda r: f"{r['seconds']:.1f} s, peak RSS {r['peak_rss_mb']:.0f} MB")
    if len({(r["interactions"], r["checksum"]) for rs in runs.values() for r in rs}) != 1:
        raise SystemExit("the two ways gave different interactions")
    first = next(iter(runs.values()))[0]
    columns = ["parsing", "seconds (fastest)", "peak RSS MB (highest)", "interactions", "users", "movies"]
    rows = [[way, round(min(r["seconds"] for r in rs), 1), round(max(r["peak_rss_mb"] for r in rs)),
             first["interactions"], first["users"], first["movies"]] for way, rs in runs.items()]
    notes = [f"{args.ratings} generated ratings ({size_mb:.0f} MB of text), ratings >= {args.min_rating} kept; "
             f"{args.repeats} interleaved runs of each way in fresh processes; both ways give the same interactions"]
    report(args.name, title="Reading a MovieLens-format ratings file: chunked against whole", columns=columns,
           rows=rows, notes=notes, started=started,
           extra={"ratings": args.ratings, "file_mb": round(size_mb, 1)})
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
    else:
        main()
