"""The runs of one `bench`: every combination of its batch sizes, backends and batch-1 forms, in order."""
from __future__ import annotations

from dataclasses import dataclass

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.vocab import FORMS


@dataclass(frozen=True)
class RunSpec:
    """One run of a sweep: its id and the combination it measures."""

    id: str
    batch_size: int
    backend: str
    form: str  # auto | segments | single-graph (batch 1); segments at larger batches

    def to_dict(self) -> dict:
        return {"id": self.id, "batch_size": self.batch_size, "backend": self.backend, "form": self.form}

    def describe(self) -> str:
        return f"batch {self.batch_size} · {self.backend} · {self.form}"


def as_list(value) -> list:
    """A single value or a sequence of them, as a list (duplicates dropped, order kept)."""
    items = [value] if isinstance(value, (str, int)) else list(value)
    out = []
    for v in items:
        if v not in out:
            out.append(v)
    return out


def plan_runs(batch_sizes, backends, forms, single_graph: bool = True) -> tuple[list[RunSpec], list[str]]:
    """Every combination, in order (batch size, then backend, then form), and a line per combination skipped:
    the batch-1 forms apply only at batch 1 (larger batches always run per segment), and an artifact without
    a single graph cannot run form single-graph."""
    forms = as_list(forms)
    bad = [f for f in forms if f not in FORMS]
    if bad:
        raise EdgeBranchyError(f"`form` {bad[0]!r} is not a form; choose from {', '.join(FORMS)} (comma list)")
    specs, skipped = [], []
    for bs in as_list(batch_sizes):
        for backend in as_list(backends):
            if bs == 1:
                todo = []
                for f in forms:
                    if f == "single-graph" and not single_graph:
                        skipped.append(f"batch 1 · {backend} · single-graph skipped: the artifact has no single "
                                       "graph (exported with --no-single-graph)")
                    else:
                        todo.append(f)
            else:
                todo = ["segments"]
                for f in forms:
                    if f == "single-graph":
                        skipped.append(f"batch {bs} · {backend} · single-graph skipped: the single graph answers "
                                       "batch 1 only (batches run per segment)")
            for f in todo:
                specs.append(RunSpec(f"r{len(specs) + 1}", bs, backend, f))
    return specs, skipped
