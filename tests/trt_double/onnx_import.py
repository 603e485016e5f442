"""What TensorRT's ONNX parser and FP16 builder do to a graph, as an ONNX graph ONNX Runtime can run.

- LogSoftmax is imported as Softmax then Log (onnx-tensorrt `LogSoftmax` importer, 7583da4 for 8.5.2,
  7ecb49a for 10.x: "log(softmax(x))"), so an underflowed probability gives log(0) = -inf.
- ReduceLogSumExp is imported as Exp, ReduceSum, Log without subtracting the maximum (same importers).
- `BuilderFlag.FP16` lets every layer run in half precision (NvInfer.h 8.5 `BuilderFlag::kFP16`); the
  double takes the worst case: every float tensor inside the graph is float16, network inputs and
  outputs keep their declared type (casts at the edges), as TensorRT does unless `tensor.dtype` is set.
  Layers pinned to FP32 under a precision constraint (`keep_fp32`: node names) compute in float32 with
  float32 weights, their float16 inputs cast up (NvInfer.h 8.5 `ILayer::setPrecision`, lines 633-656).
"""
from __future__ import annotations

FLOAT, FLOAT16 = 1, 10


def _decompose(g, helper) -> None:
    nodes = []
    for n in g.node:
        if n.op_type == "LogSoftmax":
            mid = n.output[0] + "__trt_softmax"
            nodes.append(helper.make_node("Softmax", list(n.input), [mid], name=n.name + "/softmax",
                                          **{a.name: helper.get_attribute_value(a) for a in n.attribute}))
            nodes.append(helper.make_node("Log", [mid], list(n.output), name=n.name + "/log"))
        elif n.op_type == "ReduceLogSumExp":
            e, s = n.output[0] + "__trt_exp", n.output[0] + "__trt_sum"
            nodes.append(helper.make_node("Exp", [n.input[0]], [e], name=n.name + "/exp"))
            nodes.append(helper.make_node("ReduceSum", [e] + list(n.input[1:]), [s], name=n.name + "/sum",
                                          **{a.name: helper.get_attribute_value(a) for a in n.attribute}))
            nodes.append(helper.make_node("Log", [s], list(n.output), name=n.name + "/log"))
        else:
            nodes.append(n)
    del g.node[:]
    g.node.extend(nodes)


def _to_fp16(g, helper, numpy_helper, keep=frozenset(), floats=frozenset()) -> None:
    import numpy as np

    pinned = [n for n in g.node if n.name in keep]
    pinned_ids = {id(n) for n in pinned}
    fp32_out = {y for n in pinned for y in n.output}           # tensors that stay float32
    by_pinned = {x for n in pinned for x in n.input}
    by_other = {x for n in g.node if id(n) not in pinned_ids for x in n.input}
    for init in list(g.initializer):
        if init.data_type != FLOAT:
            continue
        if init.name in by_pinned:  # a pinned layer keeps float32 weights; others get their own half copy
            if init.name in by_other:
                half = numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), init.name + "__half")
                g.initializer.append(half)
                for n in g.node:
                    if id(n) not in pinned_ids:
                        n.input[:] = [init.name + "__half" if x == init.name else x for x in n.input]
            fp32_out.add(init.name)
            continue
        init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), init.name))
    for n in g.node:
        if id(n) in pinned_ids:
            continue
        for a in n.attribute:
            if n.op_type == "Cast" and a.name == "to" and a.i == FLOAT:
                a.i = FLOAT16
            if n.op_type == "Constant" and a.name == "value" and a.t.data_type == FLOAT:
                a.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(a.t).astype(np.float16)))
    head, tail, nodes = [], [], []
    for v in g.input:
        if v.type.tensor_type.elem_type == FLOAT:
            inner = v.name + "__trt_half"
            head.append(helper.make_node("Cast", [v.name], [inner], to=FLOAT16, name=v.name + "/to_half"))
            for n in g.node:
                if id(n) not in pinned_ids:
                    n.input[:] = [inner if x == v.name else x for x in n.input]
            fp32_out.add(v.name)
    for n in g.node:
        if id(n) in pinned_ids:  # float16 inputs of a pinned layer are cast up first
            for i, x in enumerate(n.input):
                if x and x in floats and x not in fp32_out:
                    up = f"{x}__to_f32_{n.name}"
                    nodes.append(helper.make_node("Cast", [x], [up], to=FLOAT, name=up))
                    n.input[i] = up
        else:  # float32 outputs of pinned layers read by a half layer are cast down
            for i, x in enumerate(n.input):
                if x in fp32_out and x in floats and x not in {v.name for v in g.input}:
                    down = f"{x}__to_f16_{n.name}"
                    nodes.append(helper.make_node("Cast", [x], [down], to=FLOAT16, name=down))
                    n.input[i] = down
        nodes.append(n)
    for v in g.output:
        if v.type.tensor_type.elem_type == FLOAT and v.name not in fp32_out:
            inner = v.name + "__trt_half"
            for n in nodes:
                n.output[:] = [inner if x == v.name else x for x in n.output]
                n.input[:] = [inner if x == v.name else x for x in n.input]
            tail.append(helper.make_node("Cast", [inner], [v.name], to=FLOAT, name=v.name + "/to_float"))
    del g.node[:]
    g.node.extend(head + nodes + tail)
    del g.value_info[:]


def _float_tensors(m) -> set:
    """Names of the float32 tensors of a model (shape inference on a copy)."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(m).graph
    vals = list(inferred.value_info) + list(inferred.input) + list(inferred.output)
    out = {v.name for v in vals if v.type.tensor_type.elem_type == FLOAT}
    return out | {i.name for i in m.graph.initializer if i.data_type == FLOAT}


def trt_import(model: bytes, fp16: bool = False, keep_fp32=()) -> bytes:
    """The graph as the engine computes it: TensorRT's decompositions, and float16 inside with `fp16` (but in
    the nodes named in `keep_fp32`)."""
    import onnx
    from onnx import helper, numpy_helper

    m = onnx.load_from_string(bytes(model))
    _decompose(m.graph, helper)
    if fp16:
        keep = frozenset(keep_fp32)
        _to_fp16(m.graph, helper, numpy_helper, keep, _float_tensors(m) if keep else frozenset())
    return m.SerializeToString()
