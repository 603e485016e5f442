"""The text of `edgebranchy doctor ARTIFACT`: the agreement table, the samples that answer differently, the verdict."""
from __future__ import annotations

from typing import List, Optional

SHOWN = 20  # differing samples listed in the text (--json lists all)


def _g(v: Optional[float]) -> str:
    return "non-finite" if v is None else f"{v:.3g}"


def _e(v: Optional[float]) -> str:
    """An entropy: enough digits to see it against a threshold."""
    return "non-finite" if v is None else f"{v:.6g}"


def _exit_rows(rep: dict) -> List[str]:
    head = f"{'':<9}  {'max |dlogit|':>12}  {'tolerance':>10}  {'mean |dlogit|':>13}  {'max |dentropy|':>14}  " \
           f"{'tolerance':>10}"
    lines = [head]
    for r in rep["exits"]:
        state = "identical" if r["identical"] else "ok" if r["within"] else "EXCEEDS"
        lines.append(f"{'exit ' + str(r['exit']):<9}  {_g(r['max_abs_logit_diff']):>12}  {_g(r['logit_tolerance']):>10}  "
                     f"{_g(r['mean_abs_logit_diff']):>13}  {_g(r['max_abs_entropy_diff']):>14}  "
                     f"{_g(r['entropy_tolerance']):>10}  {state}")
    b = rep.get("baseline")
    if b:
        state = "identical" if b["max_abs_logit_diff"] == 0 else "ok" if b["within"] else "EXCEEDS"
        lines.append(f"{'baseline':<9}  {_g(b['max_abs_logit_diff']):>12}  {_g(b['logit_tolerance']):>10}  "
                     f"{_g(b['mean_abs_logit_diff']):>13}  {'-':>14}  {'-':>10}  {state}")
    return lines


def _why(s: dict) -> str:
    verdict = "precision" if s["explained"] else "BEYOND precision"
    if s["kind"] == "exit":
        return (f"exit {s['at_exit']}: reference entropy {_e(s['entropy_reference'])}, here "
                f"{_e(s['entropy_candidate'])}, threshold {s['threshold']:.6g}: {_g(s['distance'])} from it, "
                f"band {_g(s['band'])}: {verdict}")
    return f"exit {s['at_exit']}: top-2 logit margin {_g(s['margin'])}, band 2 x {_g(s['band'] / 2)}: {verdict}"


def _sample_rows(rep: dict) -> List[str]:
    samples = rep["samples"]
    if not samples:
        return []
    arith = rep["arithmetic"]
    lines = [f"{len(samples)} sample(s) answer differently ({rep['unexplained']} beyond what {arith} explains)"
             + (f"; the first {SHOWN} (--json lists all):" if len(samples) > SHOWN else ":"),
             f"{'sample':>7}  {'exit ref->here':<15} {'label ref->here':<16} why"]
    for s in samples[:SHOWN]:
        ex = f"{s['exit_reference']} -> {s['exit_candidate']}"
        lab = f"{s['label_reference']} -> {s['label_candidate']}"
        lines.append(f"{s['index']:>7}  {ex:<15} {lab:<16} {_why(s)}")
    return lines


def _latency(rep: dict) -> str:
    lat = rep["latency_ms"]

    def one(rows: list) -> str:
        return " | ".join(f"{r['host_ms']:.3g}" + (f" (engine {r['gpu_ms']:.3g})" if r.get("gpu_ms") is not None
                                                   else "") for r in rows)

    return (f"latency per segment, ms (median of {lat['repeats']} calls at batch {lat['batch']}; not a benchmark): "
            f"here {one(lat['candidate'])}; reference {one(lat['reference'])}")


def failures(rep: dict) -> List[str]:
    """Why the run failed, one phrase each (empty when it passed)."""
    out = [f"exit {r['exit']}: max |dlogit| {_g(r['max_abs_logit_diff'])} (tolerance {_g(r['logit_tolerance'])}), "
           f"max |dentropy| {_g(r['max_abs_entropy_diff'])} (tolerance {_g(r['entropy_tolerance'])})"
           for r in rep["exits"] if not r["within"]]
    b = rep.get("baseline")
    if b and not b["within"]:
        out.append(f"baseline: max |dlogit| {_g(b['max_abs_logit_diff'])} (tolerance {_g(b['logit_tolerance'])}), "
                   f"{len(b['unexplained'])} label(s) beyond the margin rule")
    if rep["unexplained"]:
        bad = [str(s["index"]) for s in rep["samples"] if not s["explained"]]
        more = f" (+{len(bad) - SHOWN} more)" if len(bad) > SHOWN else ""
        out.append(f"samples {', '.join(bad[:SHOWN])}{more} answer differently beyond what {rep['arithmetic']} "
                   "explains")
    return out


def format_report(rep: dict) -> str:
    here = f"{rep['backend']}/{rep['arithmetic']}"
    inp = rep["inputs"]
    lines = [f"doctor {rep['artifact']}: {here} against onnxruntime/fp32 (the reference) on {inp['samples']} "
             f"samples, {inp['what']}, batch {rep['batch_size']}"]
    if inp["kind"] == "synthetic":
        lines.append(f"note: no data set ({inp['reason']}): synthetic inputs check the numbers, not the accuracy")
    emax = "1 (normalised)" if rep["entropy_max"] == 1.0 else f"ln {len(rep['classes'])} nats"
    lines.append(f"tolerance ({rep['rtol_source']}): |dlogit| <= {rep['rtol']:g} x the exit's max |logit|, "
                 f"|dentropy| <= {rep['rtol']:g} x {emax}")
    lines.append("an exit may differ only within the entropy band of its threshold, a label only within twice the "
                 "logit band (band: the observed max difference, at most the tolerance)")
    lines += [""] + _exit_rows(rep) + [""]
    n = rep["n"]
    counts = rep["exit_counts"]
    lines.append(f"answers: labels equal on {rep['labels_equal']}/{n}, exits on {rep['exits_equal']}/{n}; exits taken "
                 f"{'/'.join(map(str, counts['candidate']))} here, {'/'.join(map(str, counts['reference']))} on the "
                 f"reference")
    if rep.get("accuracy"):
        a = rep["accuracy"]
        lines.append(f"accuracy {a['candidate'] * 100:.2f}% here, {a['reference'] * 100:.2f}% on the reference")
    lines.append(_latency(rep))
    rows = _sample_rows(rep)
    if rows:
        lines += [""] + rows
    lines.append("")
    if rep["passed"]:
        lines.append(f"PASS: {here} gives the reference's answers within what {rep['arithmetic']} explains")
    else:
        lines.append(f"FAIL: {here} disagrees with the reference beyond what {rep['arithmetic']} explains: "
                     + "; ".join(failures(rep)))
    return "\n".join(lines)
