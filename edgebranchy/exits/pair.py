"""The exact search over the last two thresholds (the first K-3 held fixed): the Pareto frontier of every pair.

Rows are the candidates for T_a (exit K-3), columns those for T_b (exit K-2). For each row one packed
cumulative sum over the samples ranked by exit-b entropy (highest first) gives, for every column, how many
stay to the last exit and (correct at last - correct at b) among them. Within a row cost rises with the
number that stay, so only columns that beat every cheaper column of their row, and no point found earlier,
are kept. Time proportional to N^2, memory to N (blocks of about CHUNK_ELEMENTS cells).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.exits.points import SLACK, Points, Problem, Running, above, cost_sum, line_points
from edgebranchy.exits.rule import assign_exits

FIELD = 21                      # bits per count packed into one int64 cumulative sum
FIELD_MASK = (1 << FIELD) - 1
CHUNK_ELEMENTS = 1 << 20        # cells of the [rows, samples] block processed at once


def pair_points(prob: Problem, outer: Sequence[float]) -> Points:
    """The Pareto frontier over every candidate pair for the last two thresholds, the first K-3 held at `outer`."""
    search = _PairSearch(prob, outer)
    for span in search.spans():
        part = search.block(*span)
        if part is not None:
            search.running.offer(part)
    return search.running.points()


class _PairSearch:
    """What every block of one pair search shares: the samples that reach exit a, ranked for rows and columns."""

    def __init__(self, prob: Problem, outer: Sequence[float]):
        k = prob.k
        self.prob, self.a, self.b, self.c = prob, k - 3, k - 2, k - 1
        self.running = Running(prob.n, prob.reach_cost)
        thr0 = list(outer) + [0.0, 0.0]
        self.running.offer(line_points(prob, self.a, thr0))                # seeds: T_b = 0, and T_a = 0
        self.running.offer(line_points(prob, self.b, thr0))
        act = self._reach(thr0)
        ea, eb = prob.entropy[self.a, act], prob.entropy[self.b, act]
        ca = prob.correct[self.a, act].astype(np.int64)
        cb = prob.correct[self.b, act].astype(np.int64)
        cc = prob.correct[self.c, act].astype(np.int64)
        self._rows(ea, ca, cb)
        self._columns(eb, cb, cc)
        self.outer_arr = np.asarray(list(outer), dtype=np.float64)
        # reused work space (fresh large arrays each block would cost page faults)
        size = max(CHUNK_ELEMENTS, self.n_act + 1)   # at least one row
        self.bufs = (np.empty(size, np.int64), np.empty(size, np.int64), np.empty(size, np.int64),
                     np.empty(size, bool))

    def _reach(self, thr0: list) -> np.ndarray:
        """The samples that reach exit a with T_a = T_b = 0 (the active ones); the others' counts and answers."""
        prob = self.prob
        fate = assign_exits(prob.entropy.T, thr0)
        active = fate == self.c
        gone = np.nonzero(~active)[0]
        self.base_counts = np.bincount(fate[gone], minlength=prob.k)
        self.base_correct = int(prob.correct[fate[gone], gone].sum())
        act = np.nonzero(active)[0]
        self.n_act = act.size
        if self.n_act > FIELD_MASK:
            raise EdgeBranchyError(
                f"exact threshold search supports at most {FIELD_MASK} samples, got {self.n_act}; "
                "calibrate on a subsample")
        return act

    def _rows(self, ea: np.ndarray, ca: np.ndarray, cb: np.ndarray) -> None:
        """Rows: T_a = 0 (row 0) or just above the j-th smallest distinct finite exit-a entropy (row j)."""
        prob, a, b, c = self.prob, self.a, self.b, self.c
        fa = np.isfinite(ea)
        va = np.unique(ea[fa])
        m = self.m = va.size
        rank_a = self.rank_a = np.full(self.n_act, m + 1, dtype=np.int64)      # non-finite: never leaves at a
        rank_a[fa] = np.searchsorted(va, ea[fa]) + 1
        n0 = self.n0 = np.cumsum(np.bincount(rank_a, minlength=m + 2))[: m + 1]
        corr0 = np.cumsum(np.bincount(rank_a, weights=ca, minlength=m + 2))[: m + 1].astype(np.int64)
        cb_rest = np.cumsum(np.bincount(rank_a, weights=cb, minlength=m + 2))[: m + 1].astype(np.int64)
        self.row_correct = self.base_correct + corr0 + (int(cb.sum()) - cb_rest)   # + gain of the column
        self.t_a = np.zeros(m + 1)
        self.t_a[1:] = above(va)
        # cost of row j if every remaining sample left at b (a lower bound for the row), and
        # what each sample that stays to the last exit adds
        base_cost = float(cost_sum(self.base_counts, prob.reach_cost))
        self.row_low = base_cost + n0 * prob.reach_cost[a] + (self.n_act - n0) * prob.reach_cost[b]
        self.stay_cost = prob.reach_cost[c] - prob.reach_cost[b]

    def _columns(self, eb: np.ndarray, cb: np.ndarray, cc: np.ndarray) -> None:
        """Columns: samples by exit-b entropy, highest first (non-finite first: they never leave at b)."""
        eb_key = np.where(np.isfinite(eb), eb, np.inf)
        order = np.argsort(-eb_key, kind="stable")
        self.rank_o = self.rank_a[order]
        self.eb_o = eb_key[order]
        self.packed_o = 1 + ((cc - cb)[order] << FIELD)

    def spans(self) -> list:
        """Row blocks of about CHUNK_ELEMENTS cells; rows narrow as j grows."""
        spans, j0 = [], 0
        while j0 <= self.m:
            j1 = min(self.m + 1, j0 + max(1, CHUNK_ELEMENTS // (self.n_act - int(self.n0[j0]) + 1)))
            spans.append((j0, j1))
            j0 = j1
        return spans

    def block(self, j0: int, j1: int) -> Points | None:
        """The points of rows j0..j1-1 that no cheaper cell of their row and no earlier point beats."""
        return self._exact(j0, *self._cells(j0, j1))

    def _cells(self, j0: int, j1: int) -> tuple:
        """The cells of rows j0..j1-1 that beat every cheaper cell of their row and every earlier point at least
        as cheap as their row can be: (flat index, row, how many stay, correct answers, columns, entropies,
        width, table shape)."""
        rows = np.arange(j0, j1)
        sel = self.rank_o > j0                  # samples still present in some row of this block
        r, w, v = self.rank_o[sel], self.packed_o[sel], self.eb_o[sel]
        width = r.size
        # q = how many of these stay to the last exit; valid where the exit-b entropy drops
        valid = np.ones(width + 1, dtype=bool)
        if width:
            valid[0] = np.isfinite(v[0])
            valid[1:width] = v[:-1] > v[1:]
        cols = np.nonzero(valid)[0]
        shape, tshape = (rows.size, width + 1), (rows.size, cols.size)
        buf_x, buf_y, buf_z, buf_b = self.bufs
        block = buf_x[: shape[0] * shape[1]].reshape(shape)
        block[:, 0] = 0
        below = buf_b[: rows.size * width].reshape(rows.size, width)
        np.greater(r[None, :], rows[:, None], out=below)
        np.multiply(below, w[None, :], out=block[:, 1:])
        np.cumsum(block, axis=1, out=block)
        if cols.size == width + 1:
            prefix, gain = block, buf_y[: block.size].reshape(tshape)
        else:
            prefix = buf_y[: tshape[0] * tshape[1]].reshape(tshape)
            np.take(block, cols, axis=1, out=prefix)
            gain = buf_x[: prefix.size].reshape(tshape)
        np.right_shift(prefix, FIELD, out=gain)   # (correct at last) - (correct at b) among who stay
        best_cheaper = buf_z[: gain.size].reshape(tshape)
        np.maximum.accumulate(gain, axis=1, out=best_cheaper)
        # a cell must beat every cheaper cell of its row and every earlier point at least as cheap
        # as its row can be (row_low): correct > floor_row
        beaten = np.searchsorted(self.running.least, self.row_low[rows] * (1 - SLACK), side="right") - 1
        floor = (beaten - self.row_correct[rows])[:, None]
        np.maximum(best_cheaper, floor, out=best_cheaper)
        keep = buf_b[: gain.size].reshape(tshape)
        np.greater(gain[:, 1:], best_cheaper[:, :-1], out=keep[:, 1:])
        np.greater(gain[:, :1], floor, out=keep[:, :1])
        flat = np.flatnonzero(keep)
        j = j0 + flat // tshape[1]
        stay = prefix.reshape(-1)[flat] & FIELD_MASK
        correct = self.row_correct[j] + gain.reshape(-1)[flat]
        return flat, j, stay, correct, cols, v, width, tshape

    def _exact(self, j0: int, flat, j, stay, correct, cols, v, width, tshape) -> Points | None:
        """Of the cells kept, those on the frontier at their exact cost that no earlier point beats."""
        prob, a, b, c, k = self.prob, self.a, self.b, self.c, self.prob.k
        # prefilter on a cheap cost estimate, then decide on the exact one
        approx = self.row_low[j] + stay * self.stay_cost
        margin = SLACK * np.abs(approx) + 1e-300
        least = np.full(prob.n + 1, np.inf)
        np.minimum.at(least, correct, approx)
        least = np.minimum.accumulate(least[::-1])[::-1]
        near = (approx <= least[correct] + margin) & (approx < self.running.least[correct] + margin)
        flat, j, stay, correct = flat[near], j[near], stay[near], correct[near]
        counts = np.empty((j.size, k), dtype=np.int64)
        counts[:] = self.base_counts
        counts[:, a] = self.n0[j]
        counts[:, b] = self.n_act - self.n0[j] - stay
        counts[:, c] = stay
        cost = cost_sum(counts, prob.reach_cost)
        # the block's own frontier, then only what no earlier block beats
        least = np.full(prob.n + 1, np.inf)
        np.minimum.at(least, correct, cost)
        least = np.minimum.accumulate(least[::-1])[::-1]
        useful = (cost <= least[correct]) & self.running.useful(correct, cost)
        if not useful.any():
            return None
        j, q = j[useful], cols[flat[useful] % tshape[1]]
        thr = np.empty((j.size, k - 1), dtype=np.float64)
        thr[:, :a] = self.outer_arr
        thr[:, a] = self.t_a[j]
        thr[:, b] = 0.0
        inside = q < width
        thr[inside, b] = above(v[q[inside]])
        return Points(counts[useful], correct[useful], thr)
