"""The verdict of one run: a line a person can act on, then the warnings that apply.

    branchy is 1.15x faster at p50 (mean 1.04x, p99 +37%), uses 1.03x less energy (estimated),
    accuracy -0.28 points [-2.2, +1.7] on 360 test samples
    warning: the tail is worse: p99 0.0924 ms vs 0.0674 ms (+37% [+34%, +41%]) ...

Built on `artifact.gains` (the gains a run stores, else computed); bench, predict and the report print it.
"""
from __future__ import annotations

from edgebranchy.artifact.gains import gains_of
from edgebranchy.artifact.replicates import FEW_TRIALS
from edgebranchy.artifact.plausibility import setup_problems

WARN = "warning: "
FAR = 1.5          # measured vs expected speedup: a factor beyond this is "far"
P99_WORSE = 0.05   # a p99 change above +5% (beyond its interval) is flagged


def fmt_x(g: float | None, digits: int = 2) -> str:
    """A ratio as '1.15x' ('n/a' when there is none)."""
    return "n/a" if g is None else f"{g:.{digits}f}x"


def fmt_pct(change: float | None, digits: int = 0) -> str:
    """A relative change as '+6%' / '-3%' (never 'nan%': 'n/a' when there is none)."""
    if change is None or change != change:
        return "n/a"
    return f"{100 * change:+.{digits}f}%"


def fmt_points(p: float, digits: int | None = None) -> str:
    if digits is None:
        digits = 2 if abs(p) < 10 else 1
    return f"{p:+.{digits}f}"


def fmt_ms(v: float) -> str:
    return f"{v:.3g} ms"


def fmt_exits(fractions: list[float]) -> str:
    """Exit fractions as '96.9% / 3.1%'."""
    return " / ".join(f"{100 * f:.1f}%" for f in fractions)


#: how each kind of figure is written, and at what scale its decimals count: (formatter, scale, decimals)
_KINDS = {"x": (fmt_x, 1.0, 2), "pct": (fmt_pct, 100.0, 0), "points": (fmt_points, 1.0, 2)}


def decimals_for(values: list[float], start: int, scale: float = 1.0, most: int = 6) -> int:
    """The fewest decimals (at least `start`, at most `most`) at which numbers that differ are written
    differently: an interval never collapses onto its point when the data vary."""
    vals = [scale * v for v in values if v is not None]
    for d in range(start, most + 1):
        texts = [f"{v:.{d}f}" for v in vals]
        if all(texts[i] != texts[j] or vals[i] == vals[j]
               for i in range(len(vals)) for j in range(i + 1, len(vals))):
            return d
    return most


def with_interval(value: float | None, ci: list[float] | None, kind: str = "x",
                  start: int | None = None) -> tuple[str, str]:
    """(value, ' [lo, hi]' or '') written with the same decimals (at least `start`, default the kind's), enough
    to keep the three apart."""
    fmt, scale, first = _KINDS[kind]
    start = first if start is None else start
    if value is None:
        return fmt(None) if kind != "points" else "n/a", ""
    if not ci:
        return fmt(value, start), ""
    d = decimals_for([value, ci[0], ci[1]], start, scale)
    return fmt(value, d), f" [{fmt(ci[0], d)}, {fmt(ci[1], d)}]"


def _unit(g: dict) -> str:
    return f"per batch of {g['batch_size']}" if g["latency_per"] == "batch" else ""


def headline(g: dict) -> str:
    """Line 1: latency, energy and accuracy of branchy against the baseline."""
    p50, mean, p99 = g["p50"], g["mean"], g["p99"]
    unit = _unit(g)
    at = f"at p50{' ' + unit if unit else ''}"
    tail = f"mean {fmt_x(mean['gain'])}, p99 {fmt_pct(p99['change'])}"
    value, ci = with_interval(p50["gain"], p50.get("ci95"), "x")
    spread = _trials_words(p50, ci)
    if p50["gain"] is not None and p50["gain"] >= 1.0:
        lat = f"branchy is {value} faster {at}{spread} ({tail})"
    else:
        lat = f"branchy is SLOWER than the baseline {at}: {value}{spread} ({tail})"
    e = g.get("energy")
    if e is None or e.get("gain") is None:
        energy = "energy not recorded"
    else:
        kind = e.get("kind") or "?"
        kind = "mixed kinds: one measured, one estimated" if kind == "mixed" else kind
        if e["gain"] >= 1.0:
            energy = f"uses {fmt_x(e['gain'])} less energy ({kind})"
        else:
            energy = f"uses {fmt_x(1 / e['gain'])} more energy ({kind})"
    a = g["accuracy"]
    value, ci = with_interval(a["diff_points"], a["ci95_points"], "points")
    acc = f"accuracy {value} points{ci} on {a['n']:,} test samples"
    return f"{lat}, {energy}, {acc}"


def _trials_words(entry: dict, ci: str) -> str:
    """' [lo, hi] over 5 trials', ' (1 trial: no interval)', ' [lo, hi] over 2 trials: wide', or ''."""
    n, note = entry.get("trials"), entry.get("note")
    if ci:
        return f"{ci[:-1]} over {n} trials{': wide' if note else ''}]"
    return f" ({note})" if note else ""


def _cost_cause(run: dict, g: dict) -> str:
    """Why measured latency differs from the cost model: per-call floor, a side head's cost, or the model."""
    cal = run.get("calibration") or {}
    seg_ms = run["variants"]["branchy"].get("segment_latency_ms") or []
    costs, base_cost = cal.get("segment_costs") or [], cal.get("baseline_cost")
    base_ms = g["p50"]["baseline"]
    causes = []
    if seg_ms and len(seg_ms) == len(costs) and base_cost and base_ms > 0:
        lat0, mac0 = seg_ms[0] / base_ms, costs[0] / base_cost
        if lat0 > 2 * mac0:
            causes.append(f"segment 0 alone takes {fmt_ms(seg_ms[0])}, {100 * lat0:.0f}% of the baseline's "
                          f"{fmt_ms(base_ms)}, for {100 * mac0:.0f}% of its MACs: a per-call floor (a fixed cost "
                          "per graph call: launch, copies, the exit test) dominates at this size")
        total = sum(seg_ms)
        if total > 1.2 * base_ms:
            causes.append(f"the {len(seg_ms)} segments in a row take {fmt_ms(total)} against the baseline's "
                          f"{fmt_ms(base_ms)} in one call")
    heads = cal.get("head_costs") or []
    for k, (h, c) in enumerate(zip(heads[:-1], costs[:-1])):
        if c and h / c > 0.25:
            causes.append(f"exit {k}'s head is {100 * h / c:.0f}% of segment {k}'s MACs")
    if not causes:
        causes.append("the cost model does not match this device; calibrate with measured costs "
                      "(edgebranchy calibrate ... --cost RESULTS.json)")
    return "; ".join(causes)


def warnings_of(run: dict, g: dict) -> list[str]:
    """The warnings that apply to this run (each a sentence starting with 'warning: ')."""
    out = []
    p50, mean, p99, a = g["p50"], g["mean"], g["p99"], g["accuracy"]
    fr = g["exit_fractions"]
    if (p50["gain"] is not None and p50["gain"] < 1.0) or (mean["gain"] is not None and mean["gain"] < 1.0):
        ci = p50.get("ci95")
        noise = " (within noise)" if ci and ci[0] <= 1.0 <= ci[1] else ""
        why = (f"only {100 * g['early_fraction']:.1f}% of samples leave early"
               if g["early_fraction"] < 0.5 else "the side exits cost more than the early samples save")
        out.append(f"{WARN}early exit does not pay here: branchy is "
                   f"{''.join(with_interval(p50['gain'], ci, 'x'))} the baseline's speed at p50{noise}, mean {fmt_x(mean['gain'])}: {why}; keep the baseline "
                   "on this device, or re-calibrate for more early exits (edgebranchy calibrate --budget)")
    n = g.get("trials")
    if n is not None and n < FEW_TRIALS:
        out.append(f"{WARN}{'only ' if n > 1 else ''}{n} trial{'s' if n != 1 else ''} per variant: "
                   f"{'the intervals are wide' if n > 1 else 'no interval can be given'} (trials are the replicates, "
                   "not calls); bench with --trials 5 or more")
    if not g["calibrated"]:
        out.append(f"{WARN}the artifact is uncalibrated (no calibration record): its thresholds were not chosen "
                   "for this model; run edgebranchy calibrate on the checkpoint or the artifact")
    if len(fr) > 1 and g["early_fraction"] == 0.0:
        out.append(f"{WARN}no sample leaves early (exits {fmt_exits(fr)}): branchy only adds the side heads' "
                   "cost; calibrate the thresholds (edgebranchy calibrate)")
    ch, ci = p99.get("change"), p99.get("ci95")
    if ch is not None and ch > P99_WORSE and (ci is None or ci[0] > 0):
        out.append(f"{WARN}the tail is worse: p99 {fmt_ms(p99['branchy'])} vs {fmt_ms(p99['baseline'])} "
                   f"({''.join(with_interval(ch, ci, 'pct'))}): a sample that reaches the last exit also pays "
                   "for every side exit it passed")
    cal = run.get("calibration") or {}
    if cal.get("method") == "max-accuracy-drop" and cal.get("target") is not None:
        allowed = float(cal["target"])
        if a["ci95_points"][1] < -allowed:
            out.append(f"{WARN}accuracy is below the calibrated target: "
                       f"{'{} points{}'.format(*with_interval(a['diff_points'], a['ci95_points'], 'points'))} against an allowed drop of {allowed:g} points "
                       f"(calibrated on the validation split against the {cal.get('reference', 'final exit')}): "
                       "re-calibrate on data like this")
    exp = g.get("expected")
    if exp and mean["gain"]:
        want = (exp.get("at_run_exits") or exp)["speedup"]
        got = mean["gain"]
        if got * FAR < want or got > want * FAR:
            out.append(f"{WARN}measured gain {fmt_x(got)} (mean) is far from the {fmt_x(want)} expected from "
                       f"{exp['source']} at these exit rates: {_cost_cause(run, g)}")
    return out


def verdict_lines(run: dict) -> list[str]:
    """Line 1: the verdict; then one line per warning that applies. `run` is one results run (a v1 body).

    When the set-up makes the headline meaningless (a model near chance, a side exit beating the final exit,
    a baseline that looks untrained: `artifact.plausibility`), line 1 starts with that warning and the
    figures follow it ("measured anyway: ..."); the other such problems come first among the warnings."""
    g = gains_of(run)
    problems = setup_problems(run.get("accuracy_context"), float(run["variants"]["baseline"]["accuracy"]),
                              difference=g["accuracy"])
    return lead_with(problems, headline(g)) + warnings_of(run, g)


def lead_with(problems: list[str], line: str) -> list[str]:
    """The verdict line, led by the first set-up problem when there is one, then the other problems."""
    if not problems:
        return [line]
    return [f"{WARN}{problems[0]}; measured anyway: {line}"] + [WARN + p for p in problems[1:]]


def predict_lines(base_correct, branchy_correct, exit_fractions: list[float], base_s: float, branchy_s: float,
                  calibrated: bool, context: dict | None = None) -> list[str]:
    """`edgebranchy predict`'s verdict: accuracy against the baseline (paired, same samples), where samples left,
    and the wall time of this one pass (labelled: not a benchmark), then the warnings that apply; led by a
    set-up problem when there is one (`context`: `artifact.plausibility.accuracy_context`)."""
    import numpy as np

    from edgebranchy.artifact.gains import discordant, paired_difference

    a = paired_difference(float(np.mean(base_correct)), float(np.mean(branchy_correct)),
                          discordant(base_correct, branchy_correct))
    early = 1.0 - exit_fractions[-1]
    speed = base_s / branchy_s if branchy_s > 0 and base_s > 0 else None
    wall = ("n/a more or less" if speed is None else f"{fmt_x(speed)} less" if speed >= 1.0
            else f"{fmt_x(1 / speed)} MORE")
    line = (f"branchy accuracy {'{} points{}'.format(*with_interval(a['diff_points'], a['ci95_points'], 'points'))} "
            f"against the baseline on {a['n']:,} test samples; {100 * early:.1f}% left early (exits "
            f"{fmt_exits(exit_fractions)}); this pass took {wall} wall time than the baseline's "
            "(one pass, not a benchmark: edgebranchy bench measures)")
    out = lead_with(setup_problems(context, float(np.mean(base_correct)), difference=a), line)
    if not calibrated:
        out.append(f"{WARN}the artifact is uncalibrated (no calibration record): run edgebranchy calibrate")
    if len(exit_fractions) > 1 and early == 0.0:
        out.append(f"{WARN}no sample leaves early: branchy only adds the side heads' cost; calibrate the thresholds")
    return out
