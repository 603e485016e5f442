"""External power meters: a CSV of timestamps and watts merged onto the bench's trial windows.

USB power meters and Joulescope-style loggers measure the whole board at its
supply (carrier board, USB devices and regulator losses included, which the
module's own rails miss). Their clock is not the host's, so the offset is
estimated from the data: the trace, resampled on a uniform grid, is
cross-correlated with the known active windows (1 inside a trial window, 0 in
the idle period and gaps); the lag with the highest correlation is the
offset, refined to a fraction of a sample. The residual is the RMS distance
between the window edges and the trace's own idle/active edges (where power
crosses halfway between its idle and active levels) after alignment.

Accepted files: comma, semicolon or tab separated; `#` comment lines (a `#`
line that names columns is the header); a time column (`time`, `timestamp`,
`t`, `elapsed`, `seconds`; units s, ms or us in brackets or as a suffix;
numbers relative to the start of logging or Unix epoch seconds, or ISO 8601
date-times) and either a power column (`power`, `watts`, `w`, `p`; W or mW) or
voltage and current columns (V or mV, A or mA).
"""
from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

import numpy as np

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.measure.power.meter import EnergyReading, Provenance, integrate_mw

_TIME_NAMES = ("time", "timestamp", "t", "elapsed", "seconds", "sec", "date", "datetime", "unix", "epoch")
_POWER_NAMES = ("power", "watts", "watt", "w", "p", "mw")
_VOLT_NAMES = ("voltage", "volts", "volt", "v", "vbus", "mv")
_AMP_NAMES = ("current", "amps", "amp", "a", "i", "ibus", "ma")
_UNIT = re.compile(r"^(?P<name>.*?)[\s_]*(?:[\[(](?P<unit>[^\])]*)[\])])?\s*$")
EPOCH_MIN_S = 1e9  # 2001-09-09: numbers above this are Unix seconds


@dataclass(frozen=True)
class MeterTrace:
    """Power samples from an external meter, on the meter's own clock."""

    t: np.ndarray  # seconds: relative, or Unix epoch when `epoch`
    watts: np.ndarray
    epoch: bool
    source: str  # file and the columns read

    @property
    def interval_s(self) -> float:
        d = np.diff(self.t)
        d = d[d > 0]
        return float(np.median(d)) if d.size else float("nan")


def _split_name(header: str) -> tuple[str, str]:
    """'Power [mW]' -> ('power', 'mw'); 'time_ms' -> ('time', 'ms'); 'Current(A)' -> ('current', 'a')."""
    h = header.strip().strip("#").strip().lower()
    m = _UNIT.match(h)
    name, unit = (m.group("name").strip(), (m.group("unit") or "").strip()) if m else (h, "")
    if not unit:
        for suffix in ("_ms", "_us", "_s", "_mw", "_w", "_mv", "_v", "_ma", "_a"):
            if name.endswith(suffix):
                name, unit = name[: -len(suffix)], suffix[1:]
                break
    return name, unit


def _pick(names: list[tuple[str, str]], wanted: Sequence[str]) -> int | None:
    for w in wanted:
        for i, (n, _) in enumerate(names):
            if n == w:
                return i
    for w in wanted:
        if len(w) > 2:
            for i, (n, _) in enumerate(names):
                if w in n:
                    return i
    return None


def _time_value(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise EdgeBranchyError(f"time value {text!r} is neither a number nor an ISO 8601 date-time") from None
    if dt.tzinfo is None:
        dt = dt.astimezone()  # a local time stamp, as loggers on the same host write them
    return dt.astimezone(timezone.utc).timestamp()


_SCALE = {"": 1.0, "s": 1.0, "sec": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "w": 1.0, "mw": 1e-3, "v": 1.0,
          "mv": 1e-3, "a": 1.0, "ma": 1e-3}


def _scale(unit: str, name: str, where: str) -> float:
    u = unit or ("mw" if name == "mw" else "mv" if name == "mv" else "ma" if name == "ma" else "")
    if u not in _SCALE:
        raise EdgeBranchyError(f"{where}: unknown unit {unit!r} of column {name!r}")
    return _SCALE[u]


def parse_meter_csv(path: str | Path) -> MeterTrace:
    """Read an external meter's CSV export into a time-ordered trace (watts)."""
    path = Path(path)
    from edgebranchy.util.readers import read_bytes

    text = read_bytes(path, "power-log").decode("utf-8-sig", errors="replace")
    lines = [ln for ln in text.splitlines() if ln.strip()]
    header_at = None
    for i, ln in enumerate(lines):
        body = ln.lstrip("#").strip()
        if not body:
            continue
        first = re.split(r"[,;\t]", body)[0].strip()
        try:
            float(first)
            break  # data started without a header
        except ValueError:
            if ln.lstrip().startswith("#") and not re.search(r"[,;\t]", body):
                continue  # a plain comment
            header_at = i
            break
    if header_at is None:
        raise EdgeBranchyError(f"{path}: no header line naming the columns (e.g. 'time_s,power_w')")
    header = lines[header_at].lstrip("#")
    delim = max((",", ";", "\t"), key=header.count)
    rows = [r for r in csv.reader(io.StringIO("\n".join(ln for ln in lines[header_at + 1:]
                                                      if not ln.lstrip().startswith("#"))), delimiter=delim)]
    names = [_split_name(h) for h in next(csv.reader([header], delimiter=delim))]
    ti = _pick(names, _TIME_NAMES)
    pi = _pick(names, _POWER_NAMES)
    vi, ai = _pick(names, _VOLT_NAMES), _pick(names, _AMP_NAMES)
    if ti is None or (pi is None and (vi is None or ai is None)):
        raise EdgeBranchyError(f"{path}: need a time column and a power column (or voltage and current); "
                               f"found {', '.join(h for h, _ in names)}")
    t_scale = _scale(names[ti][1], names[ti][0], str(path))
    t, w = [], []
    for n, r in enumerate(rows, start=header_at + 2):
        if not r or all(not c.strip() for c in r):
            continue
        try:
            tv = _time_value(r[ti])
            if pi is not None:
                pw = float(r[pi]) * _scale(names[pi][1], names[pi][0], str(path))
            else:
                pw = (float(r[vi]) * _scale(names[vi][1], names[vi][0], str(path))
                      * float(r[ai]) * _scale(names[ai][1], names[ai][0], str(path)))
        except (IndexError, ValueError) as e:
            raise EdgeBranchyError(f"{path}: line {n}: {e}") from None
        if not (math.isfinite(tv) and math.isfinite(pw)):
            raise EdgeBranchyError(f"{path}: line {n}: non-finite value")
        t.append(tv)
        w.append(pw)
    if len(t) < 2:
        raise EdgeBranchyError(f"{path}: fewer than 2 samples")
    ta = np.asarray(t, dtype=np.float64)
    is_numeric_time = _is_number(rows[0][ti])
    ta = ta * t_scale if is_numeric_time else ta
    order = np.argsort(ta, kind="stable")
    ta, wa = ta[order], np.asarray(w, dtype=np.float64)[order]
    epoch = (not is_numeric_time) or ta[0] >= EPOCH_MIN_S
    cols = names[pi][0] if pi is not None else f"{names[vi][0]} x {names[ai][0]}"
    return MeterTrace(ta, wa, bool(epoch), f"{path} (time: {names[ti][0]}, power: {cols})")


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


@dataclass
class Alignment:
    """Meter clock + offset_s = host clock (Unix seconds)."""

    offset_s: float
    residual_s: float | None  # RMS distance of the trace's edges from the window edges after alignment
    edges_matched: int
    correlation: float
    grid_s: float
    epoch_trace: bool

    def to_dict(self) -> dict:
        return asdict(self)

    def line(self) -> str:
        res = f"{self.residual_s * 1e3:.1f} ms over {self.edges_matched} edges" if self.residual_s is not None \
            else "no edges matched"
        return (f"external meter clock offset {self.offset_s:+.3f} s (cross-correlation {self.correlation:.2f} "
                f"on a {self.grid_s * 1e3:.0f} ms grid; edge residual {res})")


def _activity(times: np.ndarray, windows: Sequence[tuple[float, float]]) -> np.ndarray:
    a = np.zeros(times.shape, dtype=np.float64)
    for t0, t1 in windows:
        a[(times >= t0) & (times < t1)] = 1.0
    return a


def align(trace: MeterTrace, windows: Sequence[tuple[float, float]], max_offset_s: float = 300.0,
          grid_s: float | None = None) -> Alignment:
    """Estimate the meter's clock offset from the active windows (host Unix seconds)."""
    if not windows:
        raise EdgeBranchyError("no trial windows to align the external meter with")
    win = sorted((float(a), float(b)) for a, b in windows)
    dt = grid_s or max(trace.interval_s, 0.005)
    if not math.isfinite(dt):
        raise EdgeBranchyError(f"{trace.source}: the samples have no increasing time stamps")
    # host-side grid over the windows, padded by the search range; meter-side grid over the trace
    if trace.epoch:
        lo, hi = -max_offset_s, max_offset_s
    else:
        lo, hi = win[0][0] - trace.t[-1], win[-1][1] - trace.t[0]
    g_meter = np.arange(trace.t[0], trace.t[-1], dt)
    if g_meter.size < 4:
        raise EdgeBranchyError(f"{trace.source}: the trace is too short to align")
    p = np.interp(g_meter, trace.t, trace.watts)
    lags = np.arange(math.floor(lo / dt), math.ceil(hi / dt) + 1)
    if lags.size > 2_000_000:
        raise EdgeBranchyError("external meter: the offset search range is too large for this grid; "
                               "log Unix time stamps or pass a smaller max offset")
    # correlation of p(g) with activity(g + lag*dt) for every lag, by FFT on a common grid
    h0 = g_meter[0] + lags[0] * dt
    n_host = g_meter.size + lags.size
    g_host = h0 + np.arange(n_host) * dt
    act = _activity(g_host, win)
    pc = p - p.mean()
    size = 1 << int(math.ceil(math.log2(n_host + g_meter.size)))
    corr = np.fft.irfft(np.fft.rfft(act, size) * np.conj(np.fft.rfft(pc, size)), size)[: lags.size]
    best = int(np.argmax(corr))
    frac = 0.0
    if 0 < best < lags.size - 1:  # parabolic refinement between neighbouring lags
        y0, y1, y2 = corr[best - 1], corr[best], corr[best + 1]
        den = y0 - 2 * y1 + y2
        frac = 0.5 * (y0 - y2) / den if den != 0 else 0.0
    offset = float((lags[0] + best + frac) * dt)
    a_best = _activity(g_meter + offset, win)
    if a_best.std() == 0 or p.std() == 0:
        raise EdgeBranchyError(f"{trace.source}: the trace shows no idle/active edges over the trial windows; "
                               "cannot align it (is the meter on this board? did it log during the bench?)")
    r = float(np.corrcoef(p, a_best)[0, 1])
    residual, matched = _edge_residual(trace, offset, win, p, a_best, g_meter)
    return Alignment(offset, residual, matched, r, dt, trace.epoch)


def _edge_residual(trace, offset, win, p, a, g) -> tuple[float | None, int]:
    level = 0.5 * (p[a > 0].mean() + p[a == 0].mean())
    above = p > level
    cross = g[1:][above[1:] != above[:-1]] + offset
    if cross.size == 0:
        return None, 0
    edges = np.asarray([e for w in win for e in w])
    gaps = np.diff(np.asarray([e for w in win for e in w]))
    reach = max(4 * (g[1] - g[0]), 0.5 * float(gaps[gaps > 0].min()) if (gaps > 0).any() else 1.0)
    d = []
    for e in edges:
        k = np.searchsorted(cross, e)
        cand = [cross[j] - e for j in (k - 1, k) if 0 <= j < cross.size]
        near = min(cand, key=abs)
        if abs(near) <= reach:
            d.append(near)
    if not d:
        return None, 0
    return float(np.sqrt(np.mean(np.square(d)))), len(d)


def window_readings(trace: MeterTrace, alignment: Alignment,
                    windows: Sequence[tuple[float, float]]) -> list[EnergyReading]:
    """The board energy of every window (host Unix seconds) from the aligned trace, flagged where not covered."""
    t = trace.t + alignment.offset_s
    dt = trace.interval_s
    prov = Provenance("board-external", f"external meter {trace.source}: whole-board power at its supply",
                      "sampled-power", dt, dt)
    out = []
    for t0, t1 in windows:
        joules, inside = integrate_mw(t, trace.watts * 1000.0, t0, t1)
        r = EnergyReading.from_window(joules, t1 - t0, inside, "external", "measured", prov)
        if t0 < t[0] or t1 > t[-1]:
            r = EnergyReading(r.joules, r.seconds, r.watts, r.samples, r.source, r.kind, r.provenance,
                              f"window not covered by the meter trace ({t[0]:.3f}..{t[-1]:.3f} on the host clock)")
        out.append(r)
    return out
