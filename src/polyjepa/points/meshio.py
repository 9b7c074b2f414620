"""Minimal readers for ASCII .off and ASCII/binary .ply meshes and point clouds (vertices, faces | None)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import UserError


def read_off(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Vertices (V, 3) and triangle faces (F, 3) of an ASCII OFF file (polygons are fanned into triangles)."""
    try:
        tokens = path.read_text().split("\n")
        lines = [ln.split("#")[0].strip() for ln in tokens]
        lines = [ln for ln in lines if ln]
        head = lines[0]
        if head.startswith("OFF") and len(head) > 3:  # 'OFF490 488 0' (ModelNet quirk)
            lines = [head[3:].strip()] + lines[1:]
        elif head.startswith("OFF"):
            lines = lines[1:]
        nv, nf = (int(v) for v in lines[0].split()[:2])
        verts = np.array([[float(v) for v in ln.split()[:3]] for ln in lines[1:1 + nv]], dtype=np.float64)
        faces = []
        for ln in lines[1 + nv:1 + nv + nf]:
            idx = [int(v) for v in ln.split()]
            k, poly = idx[0], idx[1:1 + idx[0]]
            faces += [[poly[0], poly[i], poly[i + 1]] for i in range(1, k - 1)]
    except (ValueError, IndexError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read {path} as an OFF mesh ({type(e).__name__}: {e}): check the file") from None
    return verts.reshape(-1, 3), _check_faces(path, len(verts), faces)


def _check_faces(path: Path, n_verts: int, faces: list) -> np.ndarray | None:
    """Triangles as an (F, 3) int array, or None; indices outside the vertex list are a UserError."""
    if not faces:
        return None
    tris = np.array(faces, dtype=np.int64)
    if tris.min() < 0 or tris.max() >= n_verts:
        raise UserError(f"{path}: a face refers to vertex {int(tris.max() if tris.max() >= n_verts else tris.min())} "
                        f"but the file has {n_verts} vertices (0 to {n_verts - 1}): repair or re-export the mesh")
    return tris


_PLY_TYPES = {"char": "i1", "uchar": "u1", "short": "i2", "ushort": "u2", "int": "i4", "uint": "u4",
              "float": "f4", "double": "f8", "int8": "i1", "uint8": "u1", "int16": "i2", "uint16": "u2",
              "int32": "i4", "uint32": "u4", "float32": "f4", "float64": "f8"}


def read_ply(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Vertices (V, 3) (x, y, z properties) and triangle faces of a PLY file (ascii or binary)."""
    try:
        data = path.read_bytes()
        end = data.index(b"end_header") + len(b"end_header")
        end = data.index(b"\n", end) + 1
        header = data[:end].decode("ascii").splitlines()
        fmt = next(ln.split()[1] for ln in header if ln.startswith("format"))
        elements, cur = [], None
        for ln in header:
            parts = ln.split()
            if parts[:1] == ["element"]:
                cur = {"name": parts[1], "count": int(parts[2]), "props": []}
                elements.append(cur)
            elif parts[:1] == ["property"] and cur is not None:
                cur["props"].append(parts[1:])
        body = data[end:]
        verts, faces = None, None
        if fmt == "ascii":
            rows = body.decode("ascii").split("\n")
            pos = 0
            for el in elements:
                chunk = [r.split() for r in rows[pos:pos + el["count"]]]
                pos += el["count"]
                if el["name"] == "vertex":
                    names = [p[-1] for p in el["props"]]
                    cols = [names.index(c) for c in ("x", "y", "z")]
                    verts = np.array([[float(r[c]) for c in cols] for r in chunk])
                elif el["name"] == "face":
                    faces = [[int(v) for v in r[1:1 + int(r[0])]] for r in chunk]
        else:
            order = "<" if fmt == "binary_little_endian" else ">"
            offset = 0
            for el in elements:
                if any(p[0] == "list" for p in el["props"]):
                    if el["name"] != "face" or len(el["props"]) != 1:
                        break  # only a face list of one property is read; later elements are ignored
                    cnt_t, idx_t = order + _PLY_TYPES[el["props"][0][1]], order + _PLY_TYPES[el["props"][0][2]]
                    faces = []
                    for _ in range(el["count"]):
                        k = int(np.frombuffer(body, cnt_t, 1, offset)[0])
                        offset += np.dtype(cnt_t).itemsize
                        faces.append(np.frombuffer(body, idx_t, k, offset).tolist())
                        offset += k * np.dtype(idx_t).itemsize
                    continue
                dt = np.dtype([(p[-1], order + _PLY_TYPES[p[0]]) for p in el["props"]])
                arr = np.frombuffer(body, dt, el["count"], offset)
                offset += dt.itemsize * el["count"]
                if el["name"] == "vertex":
                    verts = np.stack([arr["x"], arr["y"], arr["z"]], 1).astype(np.float64)
        if verts is None:
            raise ValueError("no vertex element with x, y, z")
    except (ValueError, IndexError, KeyError, StopIteration, UnicodeDecodeError) as e:
        raise UserError(f"cannot read {path} as a PLY file ({type(e).__name__}: {e}): check the file") from None
    tris = [[f[0], f[i], f[i + 1]] for f in (faces or []) for i in range(1, len(f) - 1)]
    return verts, _check_faces(path, len(verts), tris)
