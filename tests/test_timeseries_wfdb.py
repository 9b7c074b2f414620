"""The WFDB reader: format 212 against hand-packed bytes, MIT annotations, record 100 against its header."""
import numpy as np
import pytest

from polyjepa.errors import UserError
from polyjepa.timeseries.wfdb import decode_212, load_wfdb_beats, read_annotations, read_record
from tests.conftest import SHARED_DATA

RECORD = SHARED_DATA / "mitbih" / "100"
needs_record = pytest.mark.skipif(not RECORD.with_suffix(".dat").exists(), reason="needs ../shared/data/mitbih/100")


def pack_212(a: int, b: int) -> bytes:
    """Two 12-bit samples as format 212 writes them (independent of the decoder)."""
    ua, ub = a & 0xFFF, b & 0xFFF
    return bytes([ua & 0xFF, ((ub >> 8) << 4) | (ua >> 8), ub & 0xFF])


def test_decode_212_round_trip():
    frames = [(995, 1011), (-1, 2047), (-2048, 0), (1234, -567)]
    raw = b"".join(pack_212(a, b) for a, b in frames)
    assert decode_212(raw, 2).T.tolist() == [list(f) for f in frames]


def test_annotations_parse_codes_times_and_aux(tmp_path):
    words = [(28 << 10) | 18, (63 << 10) | 3, 0x4E28, 0x0000, (1 << 10) | 41, (59 << 10), 0x0001, 0x0000,
             (5 << 10) | 4, 0]
    (tmp_path / "r.atr").write_bytes(np.array(words, "<u2").tobytes())
    t, c = read_annotations(tmp_path / "r.atr")
    assert t.tolist() == [18, 59, 59 + 65536 + 4] and c.tolist() == [28, 1, 5]


@needs_record
def test_record_100_matches_its_header_checksums_and_annotation_counts():
    sig, fs, names = read_record(RECORD)
    assert sig.shape == (2, 650000) and fs == 360 and names == ["MLII", "V5"]
    digital = np.rint(sig * 200 + 1024).astype(np.int64)
    checksums = [((int(d.sum()) + 2**15) % 2**16) - 2**15 for d in digital]  # header: 16-bit signed sums
    assert checksums == [-22131, 20052]
    _, codes = read_annotations(RECORD.with_suffix(".atr"))
    assert [int((codes == k).sum()) for k in (1, 8, 5)] == [2239, 33, 1]  # N, A, V (data README)
    beats = load_wfdb_beats(str(RECORD), window=128)
    assert beats.x.shape[1:] == (2, 128) and beats.y.sum() == 34 and len(beats.x) >= 2270


def test_missing_record_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_wfdb_beats(str(tmp_path / "nope"))


def test_truncated_annotations_and_impossible_windows_are_user_errors(tmp_path):
    (tmp_path / "odd.atr").write_bytes(b"\x12\x70\x03")
    with pytest.raises(UserError, match="odd number of bytes"):
        read_annotations(tmp_path / "odd.atr")
    (tmp_path / "cut.atr").write_bytes(np.array([(1 << 10) | 18, 59 << 10, 0x0001], "<u2").tobytes())
    with pytest.raises(UserError, match="ends inside an annotation"):
        read_annotations(tmp_path / "cut.atr")
    (tmp_path / "r.hea").write_text("r 2 360 4\nr.dat 212 200 11 1024 995 0 0 MLII\nr.dat 212 200 11 1024 1011 0 0 V5\n")
    (tmp_path / "r.dat").write_bytes(b"".join(pack_212(995 + i, 1011) for i in range(4)))
    (tmp_path / "r.atr").write_bytes(np.array([(1 << 10) | 2, 0], "<u2").tobytes())
    with pytest.raises(UserError, match="no annotated beat has a whole window of 256 samples"):
        load_wfdb_beats(str(tmp_path / "r"), window=256)
    with pytest.raises(UserError, match="data.window must be at least 2"):
        load_wfdb_beats(str(tmp_path / "r"), window=0)
