"""Bring your own model: a BranchyNet from any torch.fx-traceable module, split at named nodes.

The model is traced once; the graph is cut after each split node (in execution
order). A stage passes on exactly the values later stages read (the live set at
the cut: a residual block's skip input crosses with the main tensor), as one
tensor, or as a tuple whose first element is the split's main tensor (the one
the exit head reads). The last stage ends in the model's own output, so the
baseline network is the unmodified model.

Node names follow torchvision's feature-extraction convention: a leaf module's
qualified path ("layer1.0.conv1"), a function inside a module its path plus the
op ("layer1.0.add"), repeats numbered per module ("layer3.1.relu_1"); a module
path that is not a node names the last node inside it ("layer2").
"""
from __future__ import annotations

import operator
import re
import traceback
from pathlib import Path
from typing import Callable, Iterator, Sequence

import torch
from torch import fx, nn

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.models.branchynet import BranchyNet

HeadFactory = Callable[[tuple, int], nn.Module]
LeafSpec = Sequence["str | type[nn.Module]"]

_TORCH_DIR = str(Path(torch.__file__).parent)
_INPLACE_FUNCS = {operator.iadd, operator.isub, operator.imul, operator.itruediv, operator.ifloordiv,
                  operator.imod, operator.ipow, operator.iand, operator.ior, operator.ixor, operator.ilshift,
                  operator.irshift, operator.imatmul, operator.setitem}


class Stage(fx.GraphModule):
    """One trunk stage: a GraphModule cut from the traced model.

    Takes one tensor or a tuple of the tensors crossing the previous split; returns
    one tensor or a tuple whose first element is the split's main tensor. `len()`,
    iteration and indexing go over the modules it calls, in order.
    """

    def _called(self) -> list[nn.Module]:
        return [self.get_submodule(n.target) for n in self.graph.nodes if n.op == "call_module"]

    def __len__(self) -> int:
        return len(self._called())

    def __iter__(self) -> Iterator[nn.Module]:
        return iter(self._called())

    def __getitem__(self, i: int) -> nn.Module:
        return self._called()[i]


class MainHead(nn.Module):
    """An exit head on a stage that passes on several tensors: it reads the first (the split's main tensor)."""

    def __init__(self, head: nn.Module):
        super().__init__()
        self.head = head

    def forward(self, feats):
        return self.head(feats[0])


class _Tracer(fx.Tracer):
    """Records each node's torchvision-style name and the module being traced when tracing fails."""

    def __init__(self, leaf_names: set[str], leaf_types: tuple[type, ...]):
        super().__init__()
        self.leaf_names, self.leaf_types = leaf_names, leaf_types
        self._where = ""
        self.qualnames: dict[fx.Node, str] = {}
        self._counts: dict[str, int] = {}
        self.failed_in: tuple[str, str] | None = None

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        if qualname in self.leaf_names or (self.leaf_types and isinstance(m, self.leaf_types)):
            return True
        return super().is_leaf_module(m, qualname)

    def call_module(self, m, forward, args, kwargs):
        outer = self._where
        self._where = self.path_of_module(m)
        try:
            return super().call_module(m, forward, args, kwargs)
        except Exception:
            if self.failed_in is None:  # the innermost module: the first one the error passes through
                self.failed_in = (self._where, type(m).__name__)
            raise
        finally:
            self._where = outer

    def create_proxy(self, kind, target, args, kwargs, *rest, **kw):
        proxy = super().create_proxy(kind, target, args, kwargs, *rest, **kw)
        self.qualnames[proxy.node] = self._qualname(proxy.node)
        return proxy

    def _qualname(self, node: fx.Node) -> str:
        if node.op == "call_module":
            base = str(node.target)
        else:  # fx numbers repeated ops globally (relu_3); number them per module instead
            op = re.sub(r"_[0-9]+$", "", node.name)
            base = f"{self._where}.{op}" if self._where else op
        n = self._counts.get(base, 0)
        self._counts[base] = n + 1
        return base if n == 0 else f"{base}_{n}"


def _leaves(model: nn.Module, leaf_modules: LeafSpec) -> tuple[set[str], tuple[type, ...]]:
    names, types = set(), []
    known = dict(model.named_modules())
    for leaf in leaf_modules:
        if isinstance(leaf, type) and issubclass(leaf, nn.Module):
            types.append(leaf)
        elif isinstance(leaf, str):
            if leaf not in known:
                raise EdgeBranchyError(f"leaf module {leaf!r} is not a submodule of {type(model).__name__}")
            names.add(leaf)
        else:
            raise EdgeBranchyError(f"leaf_modules takes submodule names or nn.Module classes, got {leaf!r}")
    return names, tuple(types)


def _user_frame(exc: BaseException) -> str:
    """'file:line: code' of the innermost frame outside torch and this file, or ''."""
    for fr in reversed(traceback.extract_tb(exc.__traceback__)):
        if not fr.filename.startswith(_TORCH_DIR) and fr.filename != __file__:
            return f"{fr.filename}:{fr.lineno}: {(fr.line or '').strip()}"
    return ""


def trace(model: nn.Module, leaf_modules: LeafSpec = ()) -> tuple[fx.GraphModule, dict[fx.Node, str]]:
    """Trace `model` with torch.fx; (GraphModule, node -> torchvision-style name). Clear error when it cannot."""
    if not isinstance(model, nn.Module):
        raise EdgeBranchyError(f"from_model needs an nn.Module, got {type(model).__name__}")
    tracer = _Tracer(*_leaves(model, leaf_modules))
    try:
        graph = tracer.trace(model)
    except Exception as e:  # noqa: BLE001 - TraceError, TypeError, RuntimeError ...: all mean "not traceable"
        where = ""
        if tracer.failed_in:
            path, kind = tracer.failed_in
            where = f" in module {path!r} ({kind})"
        frame = _user_frame(e)
        msg = (str(e).splitlines() or [type(e).__name__])[0][:200]
        leaf = f"leaf_modules=[{tracer.failed_in[0]!r}]" if tracer.failed_in else "leaf_modules=[...]"
        raise EdgeBranchyError(
            f"torch.fx cannot trace {type(model).__name__}{where}"
            + (f" at {frame}" if frame else "") + f": {type(e).__name__}: {msg}. "
            f"Split it by hand: pass {leaf} so the tracer keeps that module whole (no split inside it), "
            "or build an nn.Sequential of its parts and use from_sequential") from None
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    if len(placeholders) != 1:
        raise EdgeBranchyError(f"{type(model).__name__}.forward takes {len(placeholders)} inputs; from_model "
                               "needs a model with one tensor input")
    gm = fx.GraphModule(tracer.root, graph)
    return gm, {n: tracer.qualnames.get(n, n.name) for n in gm.graph.nodes}


def node_names(model: nn.Module, leaf_modules: LeafSpec = ()) -> list[str]:
    """The names from_model accepts as split points, in execution order: every node's torchvision-style
    name, and every module path that is not itself a node ("layer1", "layer2.0") right after the last
    node inside it, which is what it means (inner paths first). The model's output node is listed too
    (nothing can follow it); fx's own node names ("relu_3") are accepted as aliases, not listed."""
    gm, names = trace(model, leaf_modules)
    listed = [n for n in gm.graph.nodes if n.op not in ("placeholder", "get_attr", "output")]
    after = module_ends(gm, names)
    out = []
    for n in listed:
        out += [names[n]] + after.get(n, [])
    return out


def module_ends(gm: fx.GraphModule, names: dict[fx.Node, str]) -> dict[fx.Node, list[str]]:
    """Node -> the module paths that are not nodes themselves and end at it (its value is their output),
    inner paths first ("layer1.1", then "layer1")."""
    order = [n for n in gm.graph.nodes if n.op != "output"]  # what _resolve searches, in the same order
    taken = {names[n] for n in order if n.op not in ("placeholder", "get_attr")}
    last: dict[str, fx.Node] = {}
    for n in order:
        parts = names[n].split(".")
        for j in range(1, len(parts)):
            last[".".join(parts[:j])] = n
    after: dict[fx.Node, list[str]] = {}
    for path, n in last.items():
        if path not in taken and n.op not in ("placeholder", "get_attr"):
            after.setdefault(n, []).append(path)
    return {n: sorted(paths, key=lambda p: -p.count(".")) for n, paths in after.items()}


def live_after(order: list[fx.Node], pos: dict[fx.Node, int], c: int) -> list[fx.Node]:
    """The values computed up to position `c` that a node after it reads (what a cut there passes on)."""
    return [n for n in order[:c + 1] if n.op != "get_attr" and any(pos[u] > c for u in n.users)]


def _resolve(point: str, order: list[fx.Node], names: dict[fx.Node, str]) -> fx.Node:
    if not isinstance(point, str):
        raise EdgeBranchyError(f"split points of from_model are node or module names, got {point!r}")
    for n in order:  # an exact node name (torchvision style, then fx's own)
        if names[n] == point:
            return n
    for n in order:
        if n.name == point:
            return n
    inside = [n for n in order if names[n].startswith(point + ".")]
    if inside:  # a module path: its last node is its output
        return inside[-1]
    import difflib

    near = difflib.get_close_matches(point, [names[n] for n in order], n=5)
    raise EdgeBranchyError(f"split point {point!r} is not a node or module of the model"
                           + (f"; close: {', '.join(near)}" if near else "")
                           + " (edgebranchy.models.fx.node_names(model) lists them all)")


def resolve_points(gm: fx.GraphModule, names: dict[fx.Node, str], split_points: Sequence[str]) -> list[fx.Node]:
    """The node each split point names, refused (one line) where a split cannot go: the input, a constant,
    the model's output."""
    order = [n for n in gm.graph.nodes if n.op != "output"]
    pos = {n: i for i, n in enumerate(gm.graph.nodes)}
    cuts = [_resolve(p, order, names) for p in split_points]
    for p, c in zip(split_points, cuts):
        if c.op == "placeholder":
            raise EdgeBranchyError(f"split point {p!r} is the model's input: stage 0 would be empty")
        if c.op == "get_attr":
            raise EdgeBranchyError(f"split point {p!r} is a parameter or constant, not a computed value")
        if pos[c] >= pos[order[-1]] or all(u.op == "output" for u in c.users):
            raise EdgeBranchyError(f"split point {p!r} is the model's output: nothing would follow it")
    return cuts


def _mutates(node: fx.Node, arg: fx.Node, gm: fx.GraphModule) -> bool:
    """True when `node` writes into `arg` (its first argument) in place."""
    if not node.args or node.args[0] is not arg:
        return False
    if node.op == "call_module":
        return bool(getattr(gm.get_submodule(node.target), "inplace", False))
    if node.op == "call_function":
        return node.target in _INPLACE_FUNCS or bool(node.kwargs.get("inplace")) or \
            getattr(node.target, "__name__", "").endswith("_")
    if node.op == "call_method":
        return str(node.target).endswith("_") and not str(node.target).startswith("_")
    return False


def split_graph(gm: fx.GraphModule, cuts: list[fx.Node], names: dict[fx.Node, str]) -> list[Stage]:
    """Cut the traced graph after each node of `cuts` (in execution order) into len(cuts) + 1 stages."""
    order = [n for n in gm.graph.nodes]
    pos = {n: i for i, n in enumerate(order)}
    out_node = order[-1]
    bounds = [pos[c] for c in cuts]

    def crossing(c: int, main: fx.Node) -> list[fx.Node]:
        live = live_after(order, pos, c)
        if main not in live:
            raise EdgeBranchyError(f"split point {names[main]!r}: nothing after it reads its value; split at a "
                                   "node whose output the rest of the model uses")
        return [main] + [n for n in live if n is not main]

    carried = [crossing(c, m) for c, m in zip(bounds, cuts)]
    spans = list(zip([-1] + bounds, bounds + [pos[out_node] - 1]))
    stages = []
    for k, (lo, hi) in enumerate(spans):
        g = fx.Graph()
        env: dict[fx.Node, fx.Node] = {}
        if k == 0:
            env[order[0]] = g.placeholder("x")
        else:
            ins = carried[k - 1]
            if len(ins) == 1:
                env[ins[0]] = g.placeholder(ins[0].name)
            else:
                p = g.placeholder("feats")
                for i, v in enumerate(ins):
                    env[v] = g.call_function(operator.getitem, (p, i))
            body = order[lo + 1:hi + 1]
            for v in ins:  # never write into a tensor an earlier stage (or its exit head) still holds
                if any(_mutates(u, v, gm) for u in v.users if u in body):
                    env[v] = g.call_method("clone", (env[v],))

        def value(a: fx.Node) -> fx.Node:
            if a not in env:
                if a.op != "get_attr":
                    raise EdgeBranchyError(f"internal: value {a.name} does not reach stage {k}")
                env[a] = g.node_copy(a)
            return env[a]

        for n in order[lo + 1:hi + 1]:
            if n.op in ("placeholder", "get_attr"):
                continue
            env[n] = g.node_copy(n, value)
        if k < len(spans) - 1:
            outs = [value(v) for v in carried[k]]
            g.output(outs[0] if len(outs) == 1 else tuple(outs))
        else:
            g.output(fx.node.map_arg(out_node.args[0], value))
        g.lint()
        stages.append(Stage(gm, g, class_name=f"Stage{k}"))
    return stages


def _shapes(stages: Sequence[nn.Module], input_shape: tuple[int, ...]) -> tuple[list, object]:
    """(per cut: the tensors crossing it for one zero input, the model's output) in eval mode."""
    was = [s.training for s in stages]
    feats, crossing = torch.zeros(1, *input_shape), []
    try:
        with torch.no_grad():
            for s in stages:
                s.eval()
                feats = s(feats)
                crossing.append(feats)
    except Exception as e:  # noqa: BLE001 - a wrong input shape surfaces as any of several errors
        raise EdgeBranchyError(f"the model cannot run on an input of shape {tuple(input_shape)}: "
                               f"{(str(e).splitlines() or [type(e).__name__])[0][:200]}") from None
    finally:
        for s, w in zip(stages, was):
            s.train(w)
    return crossing[:-1], crossing[-1]


def assemble(stages: Sequence[nn.Module], input_shape: Sequence[int], num_classes: int,
             head_factory: HeadFactory | None, names: Sequence[str]) -> BranchyNet:
    """Attach an exit head to every stage but the last, check the last ends in the classifier."""
    from edgebranchy.models.custom import default_head

    head_factory = head_factory or default_head
    shape = tuple(int(v) for v in input_shape)
    crossing, final = _shapes(stages, shape)
    exits: list[nn.Module] = []
    for name, feats in zip(names, crossing):
        main = feats[0] if isinstance(feats, tuple) else feats
        if not isinstance(main, torch.Tensor) or main.dim() < 2:
            raise EdgeBranchyError(f"split point {name!r} yields {type(main).__name__}, not a batched tensor")
        if isinstance(feats, tuple):
            bad = [i for i, t in enumerate(feats) if not isinstance(t, torch.Tensor)]
            if bad:
                raise EdgeBranchyError(f"a non-tensor value ({type(feats[bad[0]]).__name__}) crosses split point "
                                       f"{name!r}; only tensors may cross a split: move the split point")
        head = head_factory(tuple(main.shape[1:]), num_classes)
        exits.append(MainHead(head) if isinstance(feats, tuple) else head)
    got = tuple(final.shape[1:]) if isinstance(final, torch.Tensor) else type(final).__name__
    if got != (num_classes,):
        raise EdgeBranchyError(f"the backbone must end with its classifier: its output is {got}, "
                               f"expected ({num_classes},)")
    exits.append(nn.Identity())
    return BranchyNet(stages, exits)


def from_model(model: nn.Module, split_points: Sequence[str], input_shape: Sequence[int], num_classes: int,
               head_factory: HeadFactory | None = None, leaf_modules: LeafSpec = ()) -> BranchyNet:
    """Split a torch.fx-traceable `model` after each named node or module and attach one exit head per split.

    `leaf_modules` (submodule names or classes) are kept whole by the tracer: use it for
    parts torch.fx cannot trace. The stages share the model's modules (no copies), so the
    BranchyNet's main branch is the model itself.
    """
    gm, names = trace(model, leaf_modules)
    if not split_points:
        raise EdgeBranchyError("split points must be strictly increasing and non-empty, got []")
    cuts = resolve_points(gm, names, split_points)
    pos = {n: i for i, n in enumerate(gm.graph.nodes)}
    if [pos[c] for c in cuts] != sorted(set(pos[c] for c in cuts)):
        raise EdgeBranchyError(f"split points must be strictly increasing (in the model's execution order) "
                               f"and non-empty, got {list(split_points)}")
    stages = split_graph(gm, cuts, names)
    return assemble(stages, input_shape, num_classes, head_factory, [str(p) for p in split_points])
