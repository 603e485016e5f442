"""What TensorRT's ONNX parser and FP16 builder do to a graph, as an ONNX graph ONNX Runtime can run.

- LogSoftmax is imported as Softmax then Log (onnx-tensorrt `LogSoftmax` importer, 7583da4 for 8.5.2,
  7ecb49a for 10.x: "log(softmax(x))"), so an underflowed probability gives log(0) = -inf.
- ReduceLogSumExp is imported as Exp, ReduceSum, Log without subtracting the maximum (same importers).
- `BuilderFlag.FP16` lets every layer run in half precision (NvInfer.h 8.5 `BuilderFlag::kFP16`); the
  double takes the worst case: every float tensor inside the graph is float16, network inputs and
  outputs keep their declared type (casts at the edges), as TensorRT does unless `tensor.dtype` is set.
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


def _to_fp16(g, helper, numpy_helper) -> None:
    import numpy as np

    for init in g.initializer:
        if init.data_type == FLOAT:
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), init.name))
    for n in g.node:
        for a in n.attribute:
            if n.op_type == "Cast" and a.name == "to" and a.i == FLOAT:
                a.i = FLOAT16
            if n.op_type == "Constant" and a.name == "value" and a.t.data_type == FLOAT:
                a.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(a.t).astype(np.float16)))
    head, tail = [], []
    for v in g.input:
        if v.type.tensor_type.elem_type == FLOAT:
            inner = v.name + "__trt_half"
            head.append(helper.make_node("Cast", [v.name], [inner], to=FLOAT16, name=v.name + "/to_half"))
            for n in g.node:
                for i, x in enumerate(n.input):
                    if x == v.name:
                        n.input[i] = inner
    for v in g.output:
        if v.type.tensor_type.elem_type == FLOAT:
            inner = v.name + "__trt_half"
            for n in g.node:
                for i, x in enumerate(n.output):
                    if x == v.name:
                        n.output[i] = inner
                for i, x in enumerate(n.input):
                    if x == v.name:
                        n.input[i] = inner
            tail.append(helper.make_node("Cast", [inner], [v.name], to=FLOAT, name=v.name + "/to_float"))
    nodes = head + list(g.node) + tail
    del g.node[:]
    g.node.extend(nodes)
    del g.value_info[:]


def trt_import(model: bytes, fp16: bool = False) -> bytes:
    """The graph as the engine computes it: TensorRT's decompositions, and float16 inside with `fp16`."""
    import onnx
    from onnx import helper, numpy_helper

    m = onnx.load_from_string(bytes(model))
    _decompose(m.graph, helper)
    if fp16:
        _to_fp16(m.graph, helper, numpy_helper)
    return m.SerializeToString()
