"""The EDF(+) reader: a file written here by hand, annotation lists, and the shared motor-imagery runs."""
import numpy as np
import pytest

from polyjepa.errors import UserError
from polyjepa.timeseries.edf import load_edf_epochs, parse_tal, read_edf
from tests.conftest import SHARED_DATA

EEG = SHARED_DATA / "eegmmidb_S001"


def write_edf(path, signals, fs, annotations, pmin=-100.0, pmax=100.0, dmin=-2048, dmax=2047):
    """An EDF+ file with 1-s records: digital = round((x - pmin) / scale + dmin); an annotation channel."""
    C, n = signals.shape
    records = n // fs
    scale = (pmax - pmin) / (dmax - dmin)
    digital = np.rint((signals - pmin) / scale + dmin).astype("<i2")
    ann_len = 60
    labels = [f"ch{i}" for i in range(C)] + ["EDF Annotations"]
    ns = C + 1

    def f(vals, w):
        return "".join(str(v).ljust(w)[:w] for v in vals).encode("latin-1")

    head = (f(["0"], 8) + f(["x"], 80) + f(["x"], 80) + f(["01.01.01"], 8) + f(["00.00.00"], 8)
            + f([256 * (ns + 1)], 8) + f(["EDF+C"], 44) + f([records], 8) + f([1], 8) + f([ns], 4))
    head += (f(labels, 16) + f([""] * ns, 80) + f(["uV"] * ns, 8) + f([pmin] * C + [-1], 8) + f([pmax] * C + [1], 8)
             + f([dmin] * C + [-32768], 8) + f([dmax] * C + [32767], 8) + f([""] * ns, 80)
             + f([fs] * C + [ann_len], 8) + f([""] * ns, 32))
    body = b""
    for r in range(records):
        body += digital[:, r * fs:(r + 1) * fs].tobytes()
        tal = f"+{r}\x14\x14\x00" + "".join(f"+{o}\x15{d}\x14{t}\x14\x00" for o, d, t in annotations if int(o) == r)
        body += tal.encode("latin-1").ljust(2 * ann_len, b"\x00")
    path.write_bytes(head + body)
    return (digital - dmin) * scale + pmin


def test_read_edf_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.uniform(-90, 90, (3, 40))
    expect = write_edf(tmp_path / "a.edf", x, 10, [(0, 1.5, "T0"), (2.5, 1.0, "T1")])
    rec = read_edf(tmp_path / "a.edf")
    assert rec["fs"] == 10 and rec["labels"] == ["ch0", "ch1", "ch2"]
    assert np.allclose(rec["signals"], expect, atol=1e-4) and np.abs(rec["signals"] - x).max() < 0.05
    assert rec["annotations"] == [(0.0, 1.5, "T0"), (2.5, 1.0, "T1")]
    ep = load_edf_epochs(str(tmp_path / "a.edf"), seconds=1.0)
    assert ep.x.shape == (2, 3, 10) and ep.y.tolist() == [0, 1]
    assert np.allclose(ep.x[1], rec["signals"][:, 25:35])


def test_parse_tal():
    assert parse_tal("+0\x14\x14\x00+4.2\x154.1\x14T2\x14\x00") == [(4.2, 4.1, "T2")]


def test_not_edf_is_a_user_error(tmp_path):
    (tmp_path / "b.edf").write_bytes(b"nonsense")
    with pytest.raises(UserError, match="as EDF"):
        read_edf(tmp_path / "b.edf")


def test_upper_case_suffix_and_empty_epochs(tmp_path):
    write_edf(tmp_path / "A.EDF", np.zeros((2, 40)), 10, [(0, 1.0, "T0"), (2.0, 1.0, "T1")])
    assert load_edf_epochs(str(tmp_path), seconds=1.0).x.shape == (2, 2, 10)   # a folder of .EDF files
    for seconds in (0, -1, 0.01):
        with pytest.raises(UserError, match="use epochs of at least 2 samples"):
            load_edf_epochs(str(tmp_path), seconds=seconds)


def test_truncated_edf_is_a_user_error(tmp_path):
    write_edf(tmp_path / "a.edf", np.zeros((2, 40)), 10, [(0, 1.0, "T0")])
    raw = (tmp_path / "a.edf").read_bytes()
    (tmp_path / "a.edf").write_bytes(raw[:-50])          # the last data record cut short
    with pytest.raises(UserError, match="is truncated: its header gives 4 data records"):
        read_edf(tmp_path / "a.edf")


@pytest.mark.skipif(not EEG.exists(), reason="needs ../shared/data/eegmmidb_S001")
def test_motor_imagery_runs_give_balanced_epochs():
    ep = load_edf_epochs(str(EEG))
    assert ep.x.shape == (360, 64, 640) and np.bincount(ep.y).tolist() == [180, 180]
    assert np.isfinite(ep.x).all() and 5 < ep.x.std() < 500  # microvolts
