"""The report of `bench --streams` files: throughput and p99 latency against the number of concurrent streams,
baseline and branchy, one line per file, and the table behind the plots (gain and scaling at each N)."""
from __future__ import annotations

import base64
import html

from edgebranchy.report.figures import BASELINE_COLOR, BRANCHY_COLOR, Plot, png, pyplot
from edgebranchy.report.render import _CSS, _SCRIPT, _csp_hash, _md_table

STREAM_PLOTS = ("streams_throughput.png", "streams_p99.png")
_STYLES = ("-", "--", ":", "-.")
HEADER = ["file", "N", "threads/session", "baseline answers/s", "branchy answers/s", "gain", "baseline scaling",
          "branchy scaling", "baseline p99 ms", "branchy p99 ms", "worst stream p99 ms (branchy)"]


def _name(doc: dict, path: str) -> str:
    return f"{(doc['environment'].get('model') or {}).get('name', '?')} ({path})"


def stream_rows(docs: list[tuple[str, dict]]) -> list[list[str]]:
    rows = []
    for path, doc in docs:
        for p in doc["points"]:
            b, y = p["variants"]["baseline"], p["variants"]["branchy"]
            sc = p.get("scaling") or {}
            rows.append([path, str(p["streams"]), str(p.get("threads_per_session", "?")),
                         f"{b['throughput_sps']:.0f}", f"{y['throughput_sps']:.0f}",
                         f"{p['gain']:.2f}x" if p.get("gain") else "-",
                         f"{sc['baseline']:.2f}x" if sc else "-", f"{sc['branchy']:.2f}x" if sc else "-",
                         f"{b['p99_ms']:.3f}", f"{y['p99_ms']:.3f}",
                         f"{max(s['p99_ms'] for s in y['per_stream']):.3f}"])
    return rows


def stream_plots(docs: list[tuple[str, dict]]) -> list[Plot]:
    """Throughput against N and p99 against N, baseline and branchy of every file."""
    plt = pyplot()
    out = []
    for filename, key, ylabel, title in ((STREAM_PLOTS[0], "throughput_sps", "answers per second (all streams)",
                                          "Throughput against concurrent streams"),
                                         (STREAM_PLOTS[1], "p99_ms", "p99 latency (ms)",
                                          "p99 latency against concurrent streams")):
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        for i, (path, doc) in enumerate(docs):
            ns = [p["streams"] for p in doc["points"]]
            for variant, color in (("baseline", BASELINE_COLOR), ("branchy", BRANCHY_COLOR)):
                ax.plot(ns, [p["variants"][variant][key] for p in doc["points"]], _STYLES[i % 4], marker="o",
                        color=color, label=f"{variant}: {_name(doc, path)}")
        ax.set_xlabel("concurrent streams N")
        ax.set_ylabel(ylabel)
        ax.set_xticks(sorted({p["streams"] for _, d in docs for p in d["points"]}))
        ax.grid(alpha=.3)
        ax.legend(fontsize=7)
        rate = {d["config"]["rate"] for _, d in docs}
        how = "requests back to back" if rate == {None} else "fixed-rate requests (latency includes queueing)"
        caption = f"{title}, batch 1, {how}; one line per variant and file."
        out.append(Plot(filename, title, caption, f"{title}: {', '.join(p for p, _ in docs)}", png(fig)))
    return out


def streams_markdown(docs: list[tuple[str, dict]], plots: list[Plot], title: str | None) -> str:
    out = [f"# {title or 'Concurrent streams'}", "", _intro(docs), ""]
    out += _md_table(HEADER, stream_rows(docs)) + [""]
    for n, p in enumerate(plots, start=1):
        out += [f"### {p.title}", "", f"![{p.alt}]({p.filename})", "", f"*Figure {n}. {p.caption}*", ""]
    return "\n".join(out)


def streams_html(docs: list[tuple[str, dict]], plots: list[Plot], title: str | None) -> str:
    esc = html.escape
    title = title or "Concurrent streams"
    csp = (f"default-src 'none'; img-src data:; style-src {_csp_hash(_CSS)}; script-src {_csp_hash(_SCRIPT)}; "
           "base-uri 'none'; form-action 'none'")
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           f'<meta http-equiv="Content-Security-Policy" content="{esc(csp, quote=False)}">',
           f"<title>{esc(title)}</title>", f"<style>{_CSS}</style>", "</head>", "<body>", f"<h1>{esc(title)}</h1>",
           f"<p>{esc(_intro(docs))}</p>", '<div class="scroll"><table><thead><tr>']
    out += [f"<th>{esc(h)}</th>" for h in HEADER] + ["</tr></thead><tbody>"]
    out += ["<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in stream_rows(docs)]
    out.append("</tbody></table></div>")
    for n, p in enumerate(plots, start=1):
        data = base64.b64encode(p.png).decode("ascii")
        out.append(f'<h3>{esc(p.title)}</h3><figure><img src="data:image/png;base64,{data}" alt="{esc(p.alt)}">'
                   f"<figcaption>Figure {n}. {esc(p.caption)}</figcaption></figure>")
    out += [f"<script>{_SCRIPT}</script>", "</body>", "</html>", ""]
    return "\n".join(out)


def _intro(docs: list[tuple[str, dict]]) -> str:
    parts = []
    for path, doc in docs:
        c, cpus = doc["config"], doc["environment"]["cpus"]
        how = "back to back" if c["rate"] is None else f"{c['rate']:g}/s per stream, latency including queueing"
        parts.append(f"{path}: {_name(doc, path)}, {c['backend']}, {c['clients']} as clients, {how}, "
                     f"{c['trials']} trials of {c['seconds']:g} s per variant and N, {cpus['count']} usable CPUs")
    return ("Throughput is every stream's answers per second of wall time; gain = branchy over baseline at that N; "
            "scaling = throughput over the same variant's N=1. " + "; ".join(parts) + ".")
