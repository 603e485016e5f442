"""Render runs and plots as Markdown and as one self-contained HTML page."""
from __future__ import annotations

import base64
import hashlib
import html
import json

from edgebranchy.report.main_table import main_columns, main_rows
from edgebranchy.report.figures import Plot, Skipped
from edgebranchy.report.plots import latency_unit
from edgebranchy.report.runs import Run
from edgebranchy.report.verdict import verdict_lines
from edgebranchy.report.details_table import (COLUMNS, SUMMARY_COLUMNS, Column, fmt_sig, fmt_thresholds, summary_notes,
                                        summary_rows)


def _compact(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _cores_text(cores: object) -> str:
    if cores is None:
        return "n/a"
    if isinstance(cores, dict):
        parts = [f"{cores[k]} {k}" for k in ("logical", "physical") if cores.get(k) is not None]
        return " / ".join(parts) if parts else _compact(cores)
    return str(cores)


def _power_mode_text(mode: object) -> str:
    if mode is None:
        return "n/a"
    if isinstance(mode, dict) and "name" in mode:
        return f"{mode['name']}" + (f" (id {mode['id']})" if mode.get("id") is not None else "")
    if isinstance(mode, dict) and "error" in mode:
        return f"unknown ({mode['error']})"
    return _compact(mode)


def _gpu_text(gpu: object) -> str:
    if gpu is None or gpu == []:
        return "none found"
    if isinstance(gpu, list) and all(isinstance(g, dict) and "name" in g for g in gpu):
        return "; ".join(
            g["name"] + "".join(f", {label} {g[k]}" for k, label in
                                (("driver", "driver"), ("memory_mib", "MiB")) if g.get(k) is not None)
            for g in gpu)
    if isinstance(gpu, dict) and "error" in gpu:
        return f"unknown ({gpu['error']})"
    return _compact(gpu)


def _environment_fields(run: Run) -> list[tuple[str, str]]:
    env, cfg, idle = run.env, run.data["config"], run.data["idle"]

    def opt(key: str) -> str:
        value = env.get(key)
        return "n/a" if value is None else _compact(value)

    profile = env["profile"] + (f" ({env['profile_source']})" if env.get("profile_source") else "")
    options = ", ".join(f"{k}={_compact(v)}" for k, v in sorted(env["backend_options"].items())) \
        or "defaults"
    versions = ", ".join(f"{k} {_compact(v)}" for k, v in sorted(env["versions"].items())
                         if v is not None) or "n/a"
    power = (env["power_source"] or "none") + (
        f" ({env['power_source_reason']})" if env.get("power_source_reason") else "")
    idle_text = "not recorded" if idle is None else (
        f"{idle['watts']:.3g} W over {idle['seconds']:.3g} s ({idle['kind']}, {idle['source']})")
    sha = env.get("artifact_sha256")
    return [
        ("Run label", run.label),
        ("Results file", run.path.name),
        ("Created", run.data["created"]),
        ("Model / dataset", f"{env['model']} / {env['dataset']}"),
        ("Device profile", profile),
        ("Hostname", opt("hostname")),
        ("CPU model", opt("cpu_model")),
        ("CPU cores", _cores_text(env["cpu_cores"])),
        ("Governor", opt("governor")),
        ("Power mode", _power_mode_text(env.get("power_mode"))),
        ("GPU", _gpu_text(env.get("gpu"))),
        ("Backend", env["backend"]),
        ("Backend options", options),
        ("Precision", env["precision"]),
        ("Versions", versions),
        ("Artifact sha256", sha[:12] if sha else "n/a"),
        ("Entropy thresholds", fmt_thresholds(env["thresholds"]) or "none"),
        ("Batch / samples / trials / warmup",
         f"{cfg['batch_size']} / {cfg['samples']} / {cfg['trials']} / {cfg['warmup']}"),
        ("Latency unit", latency_unit(run)),
        ("Throughput (samples/s)", f"baseline {fmt_sig(run.baseline['throughput_sps'])}, "
                                   f"branchy {fmt_sig(run.branchy['throughput_sps'])}"),
        ("Power source", power),
        ("Idle power", idle_text),
    ]


def environment_table(runs: list[Run]) -> tuple[list[str], list[list[str]]]:
    """Header and rows: one row per environment fact, one column per run."""
    per_run = [_environment_fields(r) for r in runs]
    header = [""] + [r.short_label for r in runs]
    rows = [[name] + [fields[i][1] for fields in per_run] for i, (name, _) in enumerate(per_run[0])]
    return header, rows


HOW_TO_READ = [
    "The verdict opens the report: one line per run (latency, energy and accuracy of the branchy network "
    "against its baseline), then the warnings that apply (slower than the baseline, no early exits, a worse "
    "tail, accuracy below the calibrated target, a gain far from the calibration's estimate); a set-up that makes "
    "the figures meaningless (a model near chance, a side exit beating the final exit, a baseline that looks "
    "untrained) leads the verdict line.",
    "Intervals [low, high] are 95%. Latency and energy intervals come from the trials (interleaved rounds of "
    "baseline and branchy), the replicates of a bench: calls within a trial are not independent, so a run "
    "of 2 trials has a wide interval and one of 1 trial none. The accuracy difference's interval comes from "
    "the test samples (points = percentage points).",
    "Gain = baseline / branchy: above 1.00x the branchy network is faster (latency) or uses less "
    "energy; below 1.00x it is slower. Gain p50 compares medians, gain mean compares means.",
    "Latency is in milliseconds at the batch size of the run, per sample or per batch as the "
    "'Latency per' column says; p99 is the tail (1 call in 100 is slower).",
    "Exit % is the share of samples answered by each exit, first to last; an entropy below the "
    "exit's threshold T lets a sample leave there. The baseline has no side exits.",
    "Energy kind 'measured' means read from a power sensor (e.g. tegrastats/INA3221, NVML, RAPL) over "
    "windows of many inferences; 'estimated' means computed from CPU time with the device profile's "
    "power model: an estimate, not a measurement. The source names the sensor or model.",
    "Energy is the median over trials with a 95% Student t interval over the trials; dynamic energy subtracts the "
    "idle power (taken with the model loaded; its kind and source are in the environment table) "
    "times the run time.",
    "Every figure comes from the results files named in the environment table.",
]


def default_title(runs: list[Run]) -> str:
    """'edgebranchy report: <models> on <profiles>'."""
    models = sorted({r.env["model"] for r in runs})
    profiles = sorted({r.env["profile"] for r in runs})
    return f"edgebranchy report: {', '.join(models)} on {', '.join(profiles)}"


# ---------------------------------------------------------------- Markdown

def _md(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(_md(h) for h in header) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_md(c) for c in row) + " |" for row in rows]
    return lines


def _md_alt(text: str) -> str:
    return text.replace("[", "(").replace("]", ")").replace("\n", " ")


def _sources(runs: list[Run], code) -> str:
    n_files = len({r.path for r in runs})
    return (f"Built from {len(runs)} run{'s' if len(runs) != 1 else ''} in {n_files} results "
            f"file{'s' if n_files != 1 else ''}: " + "; ".join(f"R{r.index} = {r.label} ({code(r.path.name)})"
                                                              for r in runs) + ".")


def render_markdown(runs: list[Run], plots: list[Plot | Skipped], title: str | None = None) -> str:
    """The report as Markdown; plots are referenced as PNG files next to it."""
    out = [f"# {title or default_title(runs)}", "", _sources(runs, lambda n: f"`{n}`"), "", "## Verdict", ""]
    for r in runs:
        lines = verdict_lines(r.data)
        out += [f"**R{r.index}: {_md(r.label)}**: {_md(lines[0])}", ""]
        out += [f"- {_md(w)}" for w in lines[1:]] + ([""] if lines[1:] else [])
    out += ["## Summary: branchy vs baseline", ""]
    out += _md_table([c.title for c in main_columns(runs)], [[c.text for c in row] for row in main_rows(runs)])
    notes = summary_notes(runs)
    if notes:
        out += [""] + [f"- {n}" for n in notes]
    out += ["", "## Details per variant", ""]
    out += _md_table(SUMMARY_COLUMNS, [[c.text for c in row.cells] for row in summary_rows(runs)])
    out += ["", "## Plots", ""]
    n = 0
    for p in plots:
        out.append(f"### {p.title}")
        out.append("")
        if isinstance(p, Skipped):
            out += [f"Not drawn: {p.reason}.", ""]
            continue
        n += 1
        out += [f"![{_md_alt(p.alt)}]({p.filename})", "", f"*Figure {n}. {p.caption}*", ""]
    header, rows = environment_table(runs)
    out += ["## Environment", ""] + _md_table(header, rows)
    out += ["", "## How to read this", ""] + [f"- {line}" for line in HOW_TO_READ] + [""]
    return "\n".join(out)


# ---------------------------------------------------------------- HTML

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem auto;
       max-width: 1400px; padding: 0 1rem; color: #222; line-height: 1.45; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: .2rem; margin-top: 2rem; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: .82rem; margin: .5rem 0; }
th, td { border: 1px solid #ccc; padding: .25rem .45rem; text-align: right; vertical-align: top; }
th { background: #f2f2f2; position: sticky; top: 0; }
td.text, th.text { text-align: left; }
td.num { white-space: nowrap; }
tr.branchy td { background: #fff8f1; }
span.measured { color: #1b5e20; font-weight: 600; }
span.estimated { color: #8a4b00; font-style: italic; background: #fff1cc; padding: 0 .2rem; }
figure { margin: 1.2rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: .9rem; color: #444; }
.skipped { color: #666; font-style: italic; }
ul.notes { font-size: .88rem; }
span.ci { color: #555; font-size: .75rem; }
span.loss { color: #b71c1c; font-weight: 600; background: #fde0e0; padding: 0 .2rem; }
span.win { color: #1b5e20; font-weight: 600; }
p.verdict { margin: .4rem 0; }
p.verdict.warn { border-left: 4px solid #c62828; padding-left: .5rem; }
ul.warnings li { color: #8e1b1b; font-size: .9rem; }
nav a { margin-right: 1rem; }
"""

# Sets <body data-images-loaded="N/M"> once the page has loaded: N images decoded out of M.
_SCRIPT = """
window.addEventListener("load", function () {
  var imgs = document.images, ok = 0;
  for (var i = 0; i < imgs.length; i++) {
    if (imgs[i].complete && imgs[i].naturalWidth > 0) { ok++; }
  }
  document.body.setAttribute("data-images-loaded", ok + "/" + imgs.length);
});
"""


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode() + "'"


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def _cls(col: Column) -> str:
    return "text" if col.text else "num"


def _cell_html(c) -> str:
    body = f'<span class="{c.cls}">{_esc(c.value)}</span>' if c.cls else _esc(c.value)
    if c.interval is not None:   # value [CI]: the CI on its own line
        body += f'<br><span class="ci">[{_esc(c.interval[0])}, {_esc(c.interval[1])}]</span>'
    return body


def _html_main(runs: list[Run]) -> list[str]:
    cols = main_columns(runs)
    out = ['<div class="scroll"><table class="main">', "<thead><tr>"]
    out += [f'<th class="{_cls(col)}">{_esc(col.title)}</th>' for col in cols] + ["</tr></thead><tbody>"]
    for row in main_rows(runs):
        out.append("<tr>" + "".join(f'<td class="{_cls(col)}">{_cell_html(c)}</td>' for col, c in zip(cols, row))
                   + "</tr>")
    out.append("</tbody></table></div>")
    return out


def _html_verdict(runs: list[Run]) -> list[str]:
    out = ['<section id="verdict"><h2>Verdict</h2>']
    for r in runs:
        lines = verdict_lines(r.data)
        cls = "verdict warn" if lines[1:] else "verdict"
        out.append(f'<p class="{cls}"><strong>R{r.index}: {_esc(r.label)}</strong>: {_esc(lines[0])}</p>')
        if lines[1:]:
            out += ['<ul class="warnings">'] + [f"<li>{_esc(w)}</li>" for w in lines[1:]] + ["</ul>"]
    out.append("</section>")
    return out


def _html_summary(runs: list[Run]) -> list[str]:
    cls = _cls

    out = ['<div class="scroll"><table>', "<thead><tr>"]
    out += [f'<th class="{cls(col)}">{_esc(col.title)}</th>' for col in COLUMNS]
    out.append("</tr></thead><tbody>")
    for n, row in enumerate(summary_rows(runs)):
        cells = []
        for i, (col, c) in enumerate(zip(COLUMNS, row.cells)):
            if i == 0 and n % 2 == 1:
                continue  # the run label spans its two rows
            span = ' rowspan="2"' if i == 0 else ""
            cells.append(f'<td class="{cls(col)}"{span}>{_cell_html(c)}</td>')
        out.append(f'<tr class="{row.variant}">' + "".join(cells) + "</tr>")
    out.append("</tbody></table></div>")
    return out


def render_html(runs: list[Run], plots: list[Plot | Skipped], title: str | None = None) -> str:
    """The report as one HTML page: inline CSS, plots as data URIs, nothing fetched from anywhere."""
    title = title or default_title(runs)
    csp = (f"default-src 'none'; img-src data:; style-src {_csp_hash(_CSS)}; "
           f"script-src {_csp_hash(_SCRIPT)}; base-uri 'none'; form-action 'none'")
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           f'<meta http-equiv="Content-Security-Policy" content="{html.escape(csp, quote=False)}">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>{_esc(title)}</title>", f"<style>{_CSS}</style>", "</head>", "<body>",
           f"<h1>{_esc(title)}</h1>",
           "<p>" + _esc(_sources(runs, lambda n: n)) + "</p>",
           '<nav><a href="#verdict">Verdict</a><a href="#summary">Summary</a><a href="#details">Details</a>'
           '<a href="#plots">Plots</a><a href="#environment">Environment</a><a href="#how-to-read">How to read '
           'this</a></nav>']
    out += _html_verdict(runs)
    out += ['<section id="summary"><h2>Summary: branchy vs baseline</h2>'] + _html_main(runs)
    notes = summary_notes(runs)
    if notes:
        out += ['<ul class="notes">'] + [f"<li>{_esc(n)}</li>" for n in notes] + ["</ul>"]
    out += ["</section>", '<section id="details"><h2>Details per variant</h2>'] + _html_summary(runs)
    out += ["</section>", '<section id="plots"><h2>Plots</h2>']
    n = 0
    for p in plots:
        if isinstance(p, Skipped):
            out.append(f'<h3>{_esc(p.title)}</h3><p class="skipped">Not drawn: {_esc(p.reason)}.</p>')
            continue
        n += 1
        data = base64.b64encode(p.png).decode("ascii")
        out.append(f"<h3>{_esc(p.title)}</h3><figure>"
                   f'<img src="data:image/png;base64,{data}" alt="{_esc(p.alt)}">'
                   f"<figcaption>Figure {n}. {_esc(p.caption)}</figcaption></figure>")
    out.append("</section>")
    header, rows = environment_table(runs)
    out += ['<section id="environment"><h2>Environment</h2><div class="scroll"><table>', "<thead><tr>"]
    out += [f'<th class="text">{_esc(h)}</th>' for h in header] + ["</tr></thead><tbody>"]
    for row in rows:
        out.append("<tr>" + f'<th class="text">{_esc(row[0])}</th>'
                   + "".join(f'<td class="text">{_esc(c)}</td>' for c in row[1:]) + "</tr>")
    out += ["</tbody></table></div></section>",
            '<section id="how-to-read"><h2>How to read this</h2><ul>']
    out += [f"<li>{_esc(line)}</li>" for line in HOW_TO_READ]
    out += ["</ul></section>", f"<script>{_SCRIPT}</script>", "</body>", "</html>", ""]
    return "\n".join(out)
