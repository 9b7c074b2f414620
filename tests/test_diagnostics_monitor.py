"""The training Monitor: collapse alarm (printed, logged, stated in the report), spectrum file with resume."""
import json

import numpy as np
import torch
from torch import nn

from polyjepa.eval.evaluate import Monitor
from polyjepa.report import collapse_statement, read_spectrum


class Encoder(nn.Module):
    def __init__(self, scale):
        super().__init__()
        self.w = nn.Parameter(torch.randn(64, 8, generator=torch.Generator().manual_seed(0)) * scale)

    def embed(self, x, *, pool="mean", layers=1):
        return x.flatten(1)[:, :64] @ self.w


class Method:
    def __init__(self, scale):
        self.enc = Encoder(scale)

    def encoder(self):
        return self.enc


def data(n=300):
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 1, 8, 8, generator=g).numpy(), np.arange(n) % 3


def test_collapsed_encoder_raises_the_alarm(tmp_path, capsys):
    x, y = data()
    mon = Monitor(x, y, samples=128, lidar_samples=64)
    healthy = mon(Method(1.0), step=0, run_dir=tmp_path)
    assert healthy["collapse"] == 0.0 and healthy["rankme"] > 5 and "lidar" in healthy
    assert healthy["eig_above_1e-3"] == 8
    collapsed = mon(Method(0.0), step=10, run_dir=tmp_path)
    assert collapsed["collapse"] == 1.0 and collapsed["embedding_std"] == 0.0
    assert "COLLAPSE" in capsys.readouterr().err and "step 10" in mon.alarms[-1]
    rows = [{"step": "0", "collapse": "0", "rankme": str(healthy["rankme"]), "embedding_std": "1"},
            {"step": "10", "collapse": "1", "rankme": str(collapsed["rankme"]), "embedding_std": "0"}]
    assert collapse_statement(rows, {"rankme": 1.0}).startswith("**COLLAPSE ALARM**")
    assert "step(s) 10" in collapse_statement(rows, {})
    assert collapse_statement(rows[:1], {"rankme": 20.0}).startswith("No collapse")
    assert collapse_statement(rows[:1], {"rankme": 1.2}).startswith("**COLLAPSE ALARM**")


def test_spectrum_file_rows_and_resume(tmp_path):
    x, y = data()
    mon = Monitor(x, y, samples=128, lidar_samples=0)
    for step in (0, 5, 10):
        mon(Method(1.0), step=step, run_dir=tmp_path)
    spec = read_spectrum(tmp_path)
    assert [s for s, _ in spec] == [0, 5, 10] and all(len(ev) == 8 for _, ev in spec)
    emb = Method(1.0).enc.embed(torch.from_numpy(mon.bank_x)).detach().double().numpy()
    expect = np.sort(np.linalg.eigvalsh(np.cov(emb, rowvar=False)))[::-1]
    assert np.allclose(spec[0][1], expect, rtol=1e-5)
    # A resumed run (a new process, a new Monitor) re-records from its first monitored step on.
    again = Monitor(x, y, samples=128, lidar_samples=0)
    again(Method(1.0), step=5, run_dir=tmp_path)
    assert [s for s, _ in read_spectrum(tmp_path)] == [0, 5]
    lines = (tmp_path / "spectrum.jsonl").read_text().splitlines()
    assert all(json.loads(line)["step"] in (0, 5) for line in lines)


class OffsetEncoder(nn.Module):
    """Features with one dominant direction from the start: a large shared offset on every sample."""

    def __init__(self, enc, offset):
        super().__init__()
        self.enc, self.offset = enc, offset

    def embed(self, x, *, pool="mean", layers=1):
        return self.enc.embed(x) + self.offset


class Offset(Method):
    def __init__(self, scale, offset):
        super().__init__(scale)
        self.wrapped = OffsetEncoder(self.enc, offset)

    def encoder(self):
        return self.wrapped


def test_an_encoder_that_starts_below_the_floor_is_judged_by_its_fall():
    from polyjepa.diagnostics.spectrum import rankme_floor

    assert rankme_floor(None) == 2.0 and rankme_floor(30.0) == 2.0 and rankme_floor(1.6) == 0.8
    x, y = data()
    mon = Monitor(x, y, samples=128, lidar_samples=0)
    start = mon(Offset(1.0, 1000.0), step=0)
    assert start["rankme"] < 2.0 and start["collapse"] == 0.0 and not mon.alarms   # where training began
    assert mon(Offset(0.0, 1000.0), step=10)["collapse"] == 1.0                      # all samples at one point
    rows = [{"step": "0", "collapse": "0", "rankme": str(start["rankme"]), "embedding_std": "1"}]
    assert collapse_statement(rows, {"rankme": start["rankme"]}).startswith("No collapse")
    assert collapse_statement(rows, {"rankme": 0.4 * start["rankme"]}).startswith("**COLLAPSE ALARM**")
