"""Implicit-feedback interactions (query -> item), their leave-one-out split and the items' text features.

Two sources: a citation graph .npz (``text`` + ``edge_index``: each paper is a query whose items are the
papers it cites, and every paper is an item described by its text), or a MovieLens-format ratings file
(``user::item::rating::timestamp`` lines, or a CSV with a ``userId,movieId,rating,timestamp`` header);
a ``movies.dat`` / ``movies.csv`` beside it gives each movie's title and genres as its text.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.sources import read_npz
from ..errors import UserError, require


@dataclass
class Interactions:
    """E distinct (query, item) interactions.

    queries, items: (E,) int64 ids in [0, n_queries) and [0, n_items).
    times: (E,) float64 timestamps or None (leave-one-out then holds out a random item).
    item_texts: (n_items,) str or None; query_texts: (n_queries,) str or None.
    same_space: queries and items are the same entities (a paper is both), so i -> j and j -> i link one pair.
    """

    queries: np.ndarray
    items: np.ndarray
    n_queries: int
    n_items: int
    name: str
    times: np.ndarray | None = None
    item_texts: np.ndarray | None = None
    query_texts: np.ndarray | None = None
    same_space: bool = False


@dataclass
class Split:
    """Leave-one-out: ``train`` (E,) bool marks the training interactions; each test query has one held-out item."""

    train: np.ndarray
    test_queries: np.ndarray
    test_items: np.ndarray


def _dedupe(q: np.ndarray, i: np.ndarray, t: np.ndarray | None, n_items: int):
    """Drop repeated (query, item) pairs, keeping the earliest."""
    key = q.astype(np.int64) * n_items + i
    order = np.lexsort((t if t is not None else np.zeros(len(q)), key))
    _, first = np.unique(key[order], return_index=True)
    keep = np.sort(order[first])
    return q[keep], i[keep], None if t is None else t[keep]


def citation_interactions(text, edge_index, *, name: str = "citations") -> Interactions:
    """A citation graph as interactions: edge ``(s, d)`` is query s citing item d (self-citations dropped)."""
    from ..paired.data import check_texts
    from ..paired.graph import check_edges

    texts = check_texts(text)[:, 0]
    n = len(texts)
    e = check_edges(edge_index, n).astype(np.int64)
    keep = e[0] != e[1]
    q, i, _ = _dedupe(e[0][keep], e[1][keep], None, n)
    if len(q) == 0:
        raise UserError("the citation graph has no edges between distinct papers: nothing to recommend")
    return Interactions(queries=q, items=i, n_queries=n, n_items=n, name=name, item_texts=texts, query_texts=texts,
                        same_space=True)


def _read_movies(folder: Path) -> dict[str, str] | None:
    """movie id -> 'title genre genre ...' from movies.dat (``id::title::A|B``) or movies.csv, if present."""
    pd = require("pandas", "recommend", "MovieLens files")
    dat, csv = folder / "movies.dat", folder / "movies.csv"
    if dat.exists():
        rows = [line.split("::") for line in dat.read_text(encoding="latin-1").splitlines() if line.strip()]
        frame = pd.DataFrame([r[:3] for r in rows if len(r) >= 3], columns=["movieId", "title", "genres"])
    elif csv.exists():
        frame = pd.read_csv(csv, dtype=str)
        if not {"movieId", "title"} <= set(frame.columns):
            return None
    else:
        return None
    genres = frame["genres"].fillna("") if "genres" in frame else ""
    text = frame["title"].fillna("") + " " + genres.str.replace("|", " ", regex=False)
    return dict(zip(frame["movieId"].astype(str).str.strip(), text.str.strip()))


RATINGS_CHUNK_ROWS = 1_000_000   # a ratings file is parsed this many lines at a time


def _ratings_chunks(path: Path, first: str, pd, rows: int):
    """The ratings file as frames of at most ``rows`` lines with string columns ``userId``, ``movieId``,
    ``rating`` (and ``timestamp``), parsed by pandas' C reader. A ``::``-separated file is read with ``:`` as the
    separator, its fields being every other column (the ids and numbers hold no colons)."""
    if "::" in first:
        width = first.count(":") + 1
        names = ["userId", "movieId", "rating", "timestamp"][:(width + 1) // 2]
        return pd.read_csv(path, sep=":", header=None, usecols=list(range(0, 2 * len(names), 2)), dtype=str,
                           encoding="latin-1", chunksize=rows), names
    return pd.read_csv(path, dtype=str, chunksize=rows, encoding="latin-1"), None


def read_ratings(path: str | Path, *, min_rating: float = 0.0, chunk_rows: int = RATINGS_CHUNK_ROWS) -> Interactions:
    """A MovieLens-format ratings file as interactions (user = query, movie = item); ratings below
    ``min_rating`` are left out. Users and movies are renumbered 0..n-1 in the sorted order of their ids (as
    strings). The file is parsed ``chunk_rows`` lines at a time and only integer codes are kept between chunks, so
    a file of tens of millions of ratings needs memory for its codes, not for its text."""
    pd = require("pandas", "recommend", "MovieLens ratings files")
    path = Path(path)
    if not path.is_file():
        raise UserError(f"ratings file {str(path)!r} {'is a folder' if path.is_dir() else 'does not exist'}: pass "
                        f"an existing ratings.dat or ratings.csv")
    with open(path, encoding="latin-1") as f:
        first = next((line for line in f if line.strip()), "").strip()
    need = {"userId", "movieId", "rating"}
    users, movies, q_codes, i_codes, all_times = [], [], [], [], []
    kept = 0
    try:
        chunks, names = _ratings_chunks(path, first, pd, max(1, int(chunk_rows)))
        for frame in chunks:
            if names is not None:
                frame.columns = names
            if not need <= set(frame.columns):
                raise UserError(f"{path.name} is not a MovieLens ratings file: expected lines 'user::item::rating::"
                                f"timestamp' or a CSV header 'userId,movieId,rating,timestamp', got columns "
                                f"{list(frame.columns)}")
            frame = frame.dropna(subset=["userId", "movieId", "rating"])
            try:
                rating = frame["rating"].astype(float).to_numpy()
                times = frame["timestamp"].astype(float).to_numpy() if "timestamp" in frame else None
            except ValueError:
                raise UserError(f"{path.name}: ratings and timestamps must be numbers") from None
            keep = rating >= min_rating
            frame = frame[keep]
            kept += len(frame)
            u, q = np.unique(frame["userId"].str.strip().to_numpy(dtype=str), return_inverse=True)
            m, i = np.unique(frame["movieId"].str.strip().to_numpy(dtype=str), return_inverse=True)
            users.append(u)
            movies.append(m)
            q_codes.append(q.astype(np.int64).ravel())
            i_codes.append(i.astype(np.int64).ravel())
            all_times.append(None if times is None else times[keep])
    except (pd.errors.ParserError, ValueError) as e:
        raise UserError(f"cannot read {path.name} as ratings: {e}") from None
    if kept == 0:
        raise UserError(f"{path.name} has no ratings of at least {min_rating}: lower data.min_rating")
    user_ids = np.unique(np.concatenate(users))
    movie_ids = np.unique(np.concatenate(movies))
    # each chunk's codes index its own sorted ids; the whole file's ids are the sorted union of those
    q = np.concatenate([np.searchsorted(user_ids, u)[c] for u, c in zip(users, q_codes)])
    i = np.concatenate([np.searchsorted(movie_ids, m)[c] for m, c in zip(movies, i_codes)])
    times = None if any(t is None for t in all_times) else np.concatenate(all_times)
    q, i, times = _dedupe(q, i, times, len(movie_ids))
    titles = _read_movies(path.parent)
    texts = None
    if titles is not None:
        texts = np.array([titles.get(m, "") or "unknown" for m in movie_ids.astype(str)])
    return Interactions(queries=q, items=i, n_queries=len(user_ids), n_items=len(movie_ids), name=path.stem,
                        times=times, item_texts=texts)


def load_interactions(source: str, *, min_rating: float = 0.0) -> Interactions:
    """Interactions from a citation-graph .npz (``text``, ``edge_index``) or a MovieLens ratings file."""
    path = Path(source)
    if path.suffix == ".npz":
        if not path.exists():
            raise UserError(f"interaction data {source!r} does not exist: pass an existing file")
        with read_npz(path) as z:
            if "edge_index" not in z.files or "text" not in z.files:
                raise UserError(f"{path.name} needs 'text' and 'edge_index' (a citation graph); it holds "
                                f"{', '.join(z.files)}")
            return citation_interactions(z["text"], z["edge_index"], name=path.stem)
    return read_ratings(path, min_rating=min_rating)


def leave_one_out(inter: Interactions, *, seed: int = 0, min_count: int = 2) -> Split:
    """Hold out one item of every query with at least ``min_count`` interactions: its latest (with times) or a
    random one. The held-out pair never reaches training; with ``same_space`` its reverse (item -> query)
    is left out of training too, since it links the same two entities."""
    if min_count < 2:
        raise UserError("leave-one-out needs min_count >= 2 so that every test query keeps a training item")
    rng = np.random.default_rng(seed)
    e = len(inter.queries)
    noise = rng.random(e)
    key = inter.times if inter.times is not None else noise
    order = np.lexsort((noise, key, inter.queries))  # by query, then time (latest last), random tie-break
    q_sorted = inter.queries[order]
    last = np.r_[q_sorted[1:] != q_sorted[:-1], True]
    counts = np.bincount(inter.queries, minlength=inter.n_queries)
    pick = order[last & (counts[q_sorted] >= min_count)]
    if len(pick) == 0:
        raise UserError(f"no query has {min_count} or more interactions: nothing to hold out")
    train = np.ones(e, bool)
    train[pick] = False
    if inter.same_space:
        n = inter.n_items
        held = set((inter.items[pick] * n + inter.queries[pick]).tolist())
        train &= ~np.isin(inter.queries * n + inter.items, list(held))
    return Split(train=train, test_queries=inter.queries[pick], test_items=inter.items[pick])


def text_features(texts: np.ndarray, *, vocab_size: int = 3000, min_df: int = 2):
    """(n, V) float32 CSR TF-IDF rows (sublinear tf, English stop words dropped, l2-normalised) and the terms."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(max_features=vocab_size, min_df=min(min_df, len(texts)), stop_words="english",
                          sublinear_tf=True, dtype=np.float32)
    try:
        x = vec.fit_transform([str(t) for t in texts])
    except ValueError:
        raise UserError("the item texts hold no usable words: give items a text (title, abstract, genres)") from None
    return x.tocsr(), np.asarray(vec.get_feature_names_out())
