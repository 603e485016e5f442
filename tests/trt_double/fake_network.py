"""The network side of the `tensorrt` double: ITensor, ILayer, INetworkDefinition, the ONNX parser.

A parsed network has one layer per node of the graph as TensorRT imports it (onnx_import.py: LogSoftmax is
two layers), with the node's name and its tensors, so code can walk it and set per-layer precision. A network
built through the API (`add_input`, `add_gather`, `mark_output`) is turned into an equivalent ONNX graph when
it is built, so the engine runs on ONNX Runtime like a parsed one.

Importers per version (onnx/onnx-tensorrt `docs/operators.md`; OX<b> = branch release/<b>):
- `IsInf`: none in 8.5 ("IsInf | N", OX8.5-GA operators.md:84), present from 8.6 (OX8.6-GA operators.md:85).
- `If`: imported by every version, but the 8.5/8.6 importer (OX8.6-GA ConditionalHelpers.cpp:149-214,
  `addIfOutputLayers`; OX8.5-GA :150) takes a branch's outputs from the tensors its layers produce and do not
  consume, in `unordered_map` order: an output made by a `Constant` node (weights, no layer) or a tensor that a
  later branch layer consumes is lost. The double refuses such a graph on 8.x (a violation: real TensorRT
  would build an engine whose outputs are wrong); 10.x imports the declared outputs (OX10.0-GA).
"""
from __future__ import annotations

from trt_double import state as st
from trt_double.strict import Strict

#: ops the fake ONNX parser imports (what the artifact graphs use, the single graph's, and a few more)
SUPPORTED_OPS = frozenset({
    "Add", "And", "ArgMax", "AveragePool", "BatchNormalization", "Cast", "Concat", "Constant", "Conv", "Div",
    "Dropout", "Equal", "Exp", "Flatten", "Gather", "Gemm", "GlobalAveragePool", "Greater", "Identity", "If",
    "IsInf", "LRN", "Less", "Log", "LogSoftmax", "MatMul", "MaxPool", "Mul", "Neg", "Not", "Pow", "ReduceMax",
    "ReduceSum", "Relu", "Reshape", "Shape", "Softmax", "Squeeze", "Sub", "Transpose", "Unsqueeze",
    "QuantizeLinear", "DequantizeLinear",
})


def qdq_error(g) -> str | None:
    """Why TensorRT's Q/DQ layers refuse a node of graph `g`, or None: a zero point must be int8 and all zero
    (symmetric quantization only: HI8.6.1:6026-6028 and 6112-6114, HI10.3.0:5329-5331), and a DequantizeLinear
    takes an int8 input (HI8.6.1:6104 and 6121-6122; 10.3 adds FP8 and INT4, not INT32 or UINT8)."""
    from onnx import TensorProto, numpy_helper

    inits = {i.name: i for i in g.initializer}
    for n in g.node:
        if n.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        zp = inits.get(n.input[2]) if len(n.input) > 2 and n.input[2] else None
        if zp is not None and (zp.data_type != TensorProto.INT8 or numpy_helper.to_array(zp).any()):
            return f"{n.op_type} {n.name!r}: only symmetric INT8 quantization is supported (zero point must be 0)"
        src = inits.get(n.input[0])
        if n.op_type == "DequantizeLinear" and src is not None and src.data_type != TensorProto.INT8:
            return f"{n.op_type} {n.name!r}: input type {TensorProto.DataType.Name(src.data_type)} (INT8 expected)"
    return None
#: ONNX element type -> TensorRT DataType member name
ONNX_TO_TRT = {1: "FLOAT", 10: "HALF", 6: "INT32", 3: "INT8", 9: "BOOL", 7: "INT64"}
TRT_TO_ONNX = {v: k for k, v in ONNX_TO_TRT.items()}


def importable(op: str, ver: tuple) -> bool:
    if op == "IsInf":
        return ver >= (8, 6, 0)
    return op in SUPPORTED_OPS


def make_classes(s: st.State, ver: tuple, module: str, DataType, ErrorCode) -> dict:
    """The network-side classes of one fake module."""
    major = ver[0]

    def dtype_member(name):
        return type.__getattribute__(DataType, name)

    class ITensor(Strict):
        __module__ = module

        def __init__(self, name, dims, dtype, dim_names=()):
            self._name, self._dims, self._dtype = name, tuple(dims), dtype
            # the ONNX import names each dimension after its dim_param (ITensor.setDimensionName; onnx-tensorrt
            # 7583da4 ModelImporter.cpp:266-299): equal names must be equal at run time (HI8.5.2:490)
            self._dim_names = tuple(dim_names) or ("",) * len(self._dims)

        def _get_name(self):
            return self._name

        def _set_name(self, v):
            object.__setattr__(self, "_name", str(v))

        name = property(_get_name, _set_name)
        shape = property(lambda self: tuple(self._dims))
        dtype = property(lambda self: dtype_member(self._dtype))

    class ILayer(Strict):
        __module__ = module

        def __init__(self, network, name, kind, inputs, outputs):
            self._network, self._name, self._kind = network, name, kind
            self._inputs, self._outputs = list(inputs), list(outputs)
            self._precision, self._output_types = None, {}

        name = property(lambda self: self._name)
        num_inputs = property(lambda self: len(self._inputs))
        num_outputs = property(lambda self: len(self._outputs))

        def get_input(self, index):
            return self._inputs[index]

        def get_output(self, index):
            return self._outputs[index]

        def _strongly_typed(self, what):
            if self._network._typed:  # H10.3 NvInfer.h:661 "Strongly-typed networks reject calls to method setPrecision"
                s.fail(f"ILayer.{what} on a strongly typed network (TensorRT rejects it: types come from the graph)")

        def _get_precision(self):
            return dtype_member(self._precision or "FLOAT")

        def _set_precision(self, v):
            self._strongly_typed("precision")
            if getattr(v, "_owner", None) != "DataType":
                s.fail(f"ILayer.precision = {v!r}: not a DataType")
            object.__setattr__(self, "_precision", v._name)

        precision = property(_get_precision, _set_precision)
        precision_is_set = property(lambda self: self._precision is not None)

        def set_output_type(self, index, dtype):
            self._strongly_typed("set_output_type")
            if getattr(dtype, "_owner", None) != "DataType":
                s.fail(f"set_output_type({index}, {dtype!r}): not a DataType")
            self._output_types[int(index)] = dtype._name

    class IGatherLayer(ILayer):
        __module__ = module

    class INetworkDefinition(Strict):
        __module__ = module

        def __init__(self, flags, flag_bits):
            known = 0
            for v in flag_bits.values():
                known |= 1 << v
            if flags & ~known:
                s.fail(f"create_network({flags}): unknown flag bits for TensorRT {s.version}")
            self._explicit = bool(flags & (1 << flag_bits.get("EXPLICIT_BATCH", 99))) if major < 11 else True
            self._typed = major >= 11 or bool(flags & (1 << flag_bits.get("STRONGLY_TYPED", 99)))
            if major < 10 and not self._explicit:
                s.fail("TensorRT 8.x: an ONNX network must be created with the EXPLICIT_BATCH flag")
            self._model = None          # ONNX bytes: parsed, or made from the API layers at build time
            self._inputs, self._layers, self._outputs = [], [], []

        @property
        def num_inputs(self):
            return len(self._inputs)

        def get_input(self, index):
            return self._inputs[index]

        @property
        def num_layers(self):
            return len(self._layers)

        def get_layer(self, index):
            return self._layers[index]

        def add_input(self, name, dtype, shape):
            if getattr(dtype, "_owner", None) != "DataType":
                s.fail(f"add_input({name!r}): {dtype!r} is not a DataType")
            t = ITensor(name, tuple(int(d) for d in shape), dtype._name)
            self._inputs.append(t)
            return t

        def add_gather(self, input, indices, axis):  # noqa: A002 - TensorRT's parameter name
            for t in (input, indices):
                if not isinstance(t, ITensor):
                    s.fail(f"add_gather: {t!r} is not an ITensor of this network")
            if int(axis) != 0 or indices._dtype not in ("INT32", "INT64"):
                s.fail(f"add_gather: the double gathers rows (axis 0) with integer indices, got axis {axis}, "
                       f"{indices._dtype}")
            out = ITensor(f"(Unnamed Layer* {len(self._layers)}) [Gather]_output",
                          tuple(indices._dims) + tuple(input._dims[1:]), input._dtype)
            layer = IGatherLayer(self, f"(Unnamed Layer* {len(self._layers)}) [Gather]", "Gather",
                                 [input, indices], [out])
            self._layers.append(layer)
            return layer

        def mark_output(self, tensor):
            if not isinstance(tensor, ITensor):
                s.fail(f"mark_output: {tensor!r} is not an ITensor")
            self._outputs.append(tensor)

        def _load(self, data: bytes) -> None:
            """The layers and tensors of a parsed graph."""
            import onnx
            from trt_double.onnx_import import trt_import

            m = onnx.shape_inference.infer_shapes(onnx.load_from_string(trt_import(data)))
            g = m.graph
            inits = {i.name for i in g.initializer}
            tensors = {}

            def tensor(name, vi=None):
                if name not in tensors:
                    tt = vi.type.tensor_type if vi is not None else None
                    dims = tuple(-1 if (d.dim_param or not d.HasField("dim_value")) else int(d.dim_value)
                                 for d in tt.shape.dim) if tt is not None else ()
                    dim_names = tuple(d.dim_param for d in tt.shape.dim) if tt is not None else ()
                    dt = ONNX_TO_TRT.get(tt.elem_type, "FLOAT") if tt else "FLOAT"
                    tensors[name] = ITensor(name, dims, "INT32" if dt == "INT64" and major < 10 else dt, dim_names)
                return tensors[name]

            infos = {v.name: v for v in list(g.value_info) + list(g.input) + list(g.output)}
            self._inputs = [tensor(v.name, v) for v in g.input if v.name not in inits]
            self._layers = [ILayer(self, n.name or f"node{i}", n.op_type,
                                   [tensor(x, infos.get(x)) if x and x not in inits else None for x in n.input],
                                   [tensor(y, infos.get(y)) for y in n.output]) for i, n in enumerate(g.node)]
            self._outputs = [tensor(v.name, v) for v in g.output]
            self._model = data

        def _api_graph(self) -> bytes:
            """An ONNX graph equal to the layers added through the API (rows gathered on axis 0)."""
            from onnx import helper

            def info(t, batch):
                dims = [batch if i == 0 and d < 0 else (f"{batch}{i}" if d < 0 else d) for i, d in enumerate(t._dims)]
                return helper.make_tensor_value_info(t._name, TRT_TO_ONNX[t._dtype], dims)

            syms = {id(t): f"B{i}" for i, t in enumerate(self._inputs)}
            nodes = []
            for layer in self._layers:
                x, idx = layer._inputs
                nodes.append(helper.make_node("Gather", [x._name, idx._name], [layer._outputs[0]._name],
                                              name=layer._name, axis=0))
                syms[id(layer._outputs[0])] = syms[id(idx)]
            g = helper.make_graph(nodes, "api", [info(t, syms[id(t)]) for t in self._inputs],
                                  [info(t, syms[id(t)]) for t in self._outputs])
            return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()

        def _pinned(self, honoured: bool) -> list:
            """Names of the layers whose precision is pinned to FP32 and binding (H8.5 NvInfer.h:633-656)."""
            if not honoured:
                return []
            return sorted(layer._name for layer in self._layers if layer._precision == "FLOAT")

    class ParserError(Strict):
        __module__ = module

        def __init__(self, node, desc, code):
            self._node, self._desc, self._code = node, desc, code

        def node(self):
            return self._node

        def desc(self):
            return self._desc

        def code(self):
            return type.__getattribute__(ErrorCode, self._code)

    class OnnxParser(Strict):
        __module__ = module

        def __init__(self, network, logger):
            if not isinstance(network, INetworkDefinition):
                s.fail("OnnxParser(network, logger): network is not an INetworkDefinition")
            self._network, self._logger, self._errors = network, logger, []

        def parse(self, model, path=None):
            import onnx

            data = bytes(model)
            self._errors = []
            try:
                g = onnx.load_from_string(data).graph
            except Exception as e:  # noqa: BLE001
                self._errors.append(ParserError(-1, f"Failed to parse ONNX model: {e}", "MODEL_DESERIALIZE_FAILED"))
                return False
            for i, n in enumerate(g.node):
                if n.domain not in ("", "ai.onnx") or not importable(n.op_type, ver):
                    self._errors.append(ParserError(i, f"No importer registered for op: {n.op_type}",
                                                    "UNSUPPORTED_NODE"))
                    return False
                if n.op_type == "If" and major < 10:
                    s.fail(f"TensorRT {s.version} imports If node {n.name!r} with the 8.5/8.6 importer, which loses "
                           "branch outputs made by Constant nodes or consumed inside the branch (onnx-tensorrt "
                           "ConditionalHelpers.cpp addIfOutputLayers): the engine would answer wrongly")
            why = qdq_error(g)
            if why is not None:
                self._errors.append(ParserError(-1, why, "UNSUPPORTED_NODE"))
                return False
            for v in list(g.input) + list(g.output):
                if v.type.tensor_type.elem_type not in ONNX_TO_TRT or (
                        v.type.tensor_type.elem_type == 7 and major < 10):
                    self._errors.append(ParserError(-1, f"unsupported data type of {v.name}", "INVALID_GRAPH"))
                    return False
            self._network._load(data)
            return True

        def parse_from_file(self, model):
            with open(model, "rb") as f:
                return self.parse(f.read(), model)

        @property
        def num_errors(self):
            return len(self._errors)

        def get_error(self, index):
            return self._errors[index]

        def clear_errors(self):
            self._errors = []

    return {"ITensor": ITensor, "ILayer": ILayer, "IGatherLayer": IGatherLayer,
            "INetworkDefinition": INetworkDefinition, "ParserError": ParserError, "OnnxParser": OnnxParser}
