"""The runs of one `bench`: every combination of its batch sizes, backends, precisions and batch-1 forms, in order."""
from __future__ import annotations

from dataclasses import dataclass

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.vocab import FORMS, PRECISIONS


@dataclass(frozen=True)
class RunSpec:
    """One run of a sweep: its id and the combination it measures."""

    id: str
    batch_size: int
    backend: str
    form: str  # auto | segments | single-graph (batch 1); segments at larger batches
    precision: str | None = None  # which graphs (engines) the backend runs; None: its own setting

    def to_dict(self) -> dict:
        d = {"id": self.id, "batch_size": self.batch_size, "backend": self.backend, "form": self.form}
        return {**d, "precision": self.precision} if self.precision else d

    def describe(self) -> str:
        backend = f"{self.backend}/{self.precision}" if self.precision else self.backend
        return f"batch {self.batch_size} · {backend} · {self.form}"


def as_list(value) -> list:
    """A single value or a sequence of them, as a list (duplicates dropped, order kept)."""
    items = [value] if isinstance(value, (str, int)) else list(value)
    out = []
    for v in items:
        if v not in out:
            out.append(v)
    return out


def plan_runs(batch_sizes, backends, forms, single_graph: bool = True,
              precisions=None) -> tuple[list[RunSpec], list[str]]:
    """Every combination, in order (batch size, then backend, then precision, then form), and a line per
    combination skipped: the batch-1 forms apply only at batch 1 (larger batches always run per segment), and an
    artifact without a single graph cannot run form single-graph (nor can a backend on int8 graphs).
    `precisions` None: each backend's own setting."""
    from edgebranchy.vocab import PRECISION_AUTO, check_precision

    precs = [None] if precisions is None else [p if p == PRECISION_AUTO else check_precision(p, "`precision`")
                                               for p in as_list(precisions)]
    specs, skipped = [], []
    for bs in as_list(batch_sizes):
        for backend in as_list(backends):
            for prec in precs:
                single = single_graph and prec in (None, PRECISIONS[0], PRECISION_AUTO)
                more, why = _forms(bs, backend if prec is None else f"{backend}/{prec}", forms, single,
                                   single_graph)
                specs += [RunSpec(f"r{len(specs) + i + 1}", bs, backend, f, prec) for i, f in enumerate(more)]
                skipped += why
    return specs, skipped


def _forms(bs: int, label: str, forms, single: bool, exported: bool) -> tuple[list[str], list[str]]:
    """The forms one (batch size, backend, precision) runs, and a line per form skipped."""
    forms = as_list(forms)
    bad = [f for f in forms if f not in FORMS]
    if bad:
        raise EdgeBranchyError(f"`form` {bad[0]!r} is not a form; choose from {', '.join(FORMS)} (comma list)")
    todo, skipped = [], []
    if bs == 1:
        for f in forms:
            if f == "single-graph" and not single:
                why = ("the artifact has no single graph (exported with --no-single-graph)" if not exported else
                       "the single graph is made of the fp32 segments")
                skipped.append(f"batch 1 · {label} · single-graph skipped: {why}")
            elif f not in todo:
                todo.append(f)
    else:
        todo = ["segments"]
        for f in forms:
            if f == "single-graph":
                skipped.append(f"batch {bs} · {label} · single-graph skipped: the single graph answers "
                               "batch 1 only (batches run per segment)")
    return todo, skipped
