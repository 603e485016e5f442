"""What `plan` prints (the candidates, the frontier of placements) and its plot."""
from __future__ import annotations

from pathlib import Path


def _cost(v: float, unit: str) -> str:
    return f"{v:.1f} µs" if unit == "us" else f"{v / 1e6:.2f} M MACs"


def candidate_table(doc: dict) -> str:
    c = doc["costs"]
    base = float(c["baseline"])
    lines = [f"candidates (costs: {c['source']}; whole model {_cost(base, c['unit'])}; final exit "
             f"{doc['final_accuracy'] * 100:.2f}% on validation)",
             f"{'split point':<22}{'one tensor':>11}{'features':>16}{'prefix':>14}{'of model':>9}{'head':>12}"
             f"{'head acc':>9}"]
    for r in doc["candidates"]:
        lines.append(f"{r['name']:<22}{'yes' if r['single_tensor'] else 'no':>11}"
                     f"{'x'.join(map(str, r['feature_shape'])):>16}{_cost(r['prefix_cost'], c['unit']):>14}"
                     f"{r['prefix_cost'] / base:>9.1%}{_cost(r['head_cost'], c['unit']):>12}"
                     f"{r['head_accuracy'] * 100:>8.2f}%")
    return "\n".join(lines)


def frontier_table(doc: dict) -> str:
    t = doc["target"]
    aim = (f"accuracy within {t['max_accuracy_drop']:g} points of the final exit" if t["budget"] is None
           else f"cost within {t['budget']:.0%} of the whole model")
    rows = [("chosen", doc["expected"])] + [("frontier", r) for r in doc["frontier"]]
    if doc.get("reference") and "error" not in doc["reference"]:
        rows.append(("reference", doc["reference"]))
    lines = [f"placements of at most {t['max_exits']} exit(s), {aim} ({doc['placements_feasible']} meet it, "
             f"{doc['placements_infeasible']} do not); expected on the validation split:",
             f"{'':<10}{'split points':<30}{'speedup':>8}{'accuracy':>10}  exit fractions"]
    for label, r in rows:
        sp = f"{r['speedup']:.2f}x" if r.get("speedup") else "-"
        lines.append(f"{label:<10}{', '.join(r['split_points']):<30}{sp:>8}{r['accuracy'] * 100:>9.2f}%  "
                     + " / ".join(f"{f:.0%}" for f in r["exit_fractions"]))
    ref = doc.get("reference")
    if ref and "error" in ref:
        lines.append(f"reference {', '.join(ref['split_points'])}: {ref['error']}")
    return "\n".join(lines)


def plot(doc: dict, path: str | Path) -> None:
    """Expected speedup against validation accuracy of the frontier, the chosen and the reference placement."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from edgebranchy.util.files import atomic_write_bytes

    fig, ax = plt.subplots(figsize=(6, 4))
    fr = doc["frontier"]
    ax.plot([r["accuracy"] * 100 for r in fr], [r["speedup"] or 0 for r in fr], "o-", label="frontier")
    for label, r, mark in (("chosen", doc["expected"], "*"), ("reference", doc.get("reference"), "s")):
        if r and "error" not in r:
            ax.plot([r["accuracy"] * 100], [r["speedup"] or 0], mark, markersize=12,
                    label=f"{label}: {', '.join(r['split_points'])}")
    ax.set_xlabel("validation accuracy (%)")
    ax.set_ylabel("expected speedup (x)")
    ax.set_title(f"{doc['backbone']}: exit placements")
    ax.legend(fontsize=8)
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
