"""A strict `tensorrt` double: builds "plans" from ONNX graphs and runs them with ONNX Runtime.

A plan is `MAGIC + JSON header + ONNX bytes`; the header carries the claimed
TensorRT version and GPU, so deserialising on another one fails as real engines do.
Engines run on the simulated device memory of fake_pycuda, on the stream given to
`execute_async_v3`, when that stream's work is forced.

Fails loudly (StrictDoubleError / AttributeError, recorded as violations) on: a
name the claimed version lacks; an 8.5 network without EXPLICIT_BATCH; unknown
network flags; FP16 builder flag on a strongly typed network; a missing or bad
optimisation profile; execute without every input shape and tensor address; the
default stream; one context used on two streams at once; DLA settings the device
cannot honour.
"""
from __future__ import annotations

import hashlib
import json
import types
import weakref

import numpy as np

from trt_double import fake_pycuda
from trt_double import state as st
from trt_double.strict import Strict, StrictModule, make_enum

MAGIC = b"FAKE-TRT-PLAN\n"
MODULE = __name__

_ONNX_TO_TRT = {1: "FLOAT", 10: "HALF", 6: "INT32", 3: "INT8", 9: "BOOL"}
_NP = {"FLOAT": np.float32, "HALF": np.float16, "INT32": np.int32, "INT8": np.int8, "BOOL": np.bool_}
#: ops the fake ONNX parser imports (what the artifact graphs use, and a few more)
SUPPORTED_OPS = frozenset({
    "Add", "AveragePool", "BatchNormalization", "Cast", "Concat", "Constant", "Conv", "Div", "Dropout", "Exp",
    "Flatten", "Gemm", "GlobalAveragePool", "Identity", "Log", "LogSoftmax", "MatMul", "MaxPool", "Mul", "Neg",
    "ReduceMax", "ReduceSum", "Relu", "Reshape", "Shape", "Softmax", "Squeeze", "Sub", "Transpose", "Unsqueeze",
})
_SESSIONS: dict = {}


def _session(model: bytes):
    key = hashlib.sha256(model).hexdigest()
    if key not in _SESSIONS:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.log_severity_level = 3
        so.intra_op_num_threads = 1
        _SESSIONS[key] = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    return _SESSIONS[key]


def engine_graph(header: dict, model: bytes) -> bytes:
    """The graph as the engine computes it: TensorRT's ONNX import (LogSoftmax -> Softmax, Log; see
    onnx_import.py) and, for a BuilderFlag.FP16 engine, every layer in float16 (ONNX Runtime in float16).
    Strongly typed engines keep the graph's own types (H10.3 STRONGLY_TYPED)."""
    from trt_double.onnx_import import trt_import

    return trt_import(model, fp16=header.get("mode") == "builder-flag" and header.get("precision") == "fp16")


def _io(model: bytes):
    """[(name, is_input, trt dtype name, dims with -1 for the batch)] of an ONNX graph."""
    import onnx

    g = onnx.load_from_string(model).graph
    inits = {i.name for i in g.initializer}
    out = []
    for is_input, vals in ((True, [v for v in g.input if v.name not in inits]), (False, list(g.output))):
        for v in vals:
            tt = v.type.tensor_type
            dims = tuple(-1 if (d.dim_param or not d.HasField("dim_value")) else int(d.dim_value)
                         for d in tt.shape.dim)
            if any(d < 0 for d in dims[1:]):
                raise st.StrictDoubleError(f"graph tensor {v.name} has a dynamic non-batch dimension {dims}")
            out.append((v.name, is_input, _ONNX_TO_TRT[tt.elem_type], dims))
    return out


def _graph_has_fp16(model: bytes) -> bool:
    import onnx

    g = onnx.load_from_string(model).graph
    if any(i.data_type == 10 for i in g.initializer):
        return True
    return any(v.type.tensor_type.elem_type == 10 for v in list(g.value_info) + list(g.input) + list(g.output))


def make_module(s: st.State) -> types.ModuleType:
    """A fresh fake `tensorrt` module claiming `s.version`."""
    major = int(s.version.split(".")[0])
    ver = tuple(int(p) for p in s.version.split(".")[:3])
    m = StrictModule("tensorrt")
    m.__version__ = s.version

    def enum(name, members):
        return make_enum(name, members, MODULE)

    flags = {"EXPLICIT_BATCH": 0} if major < 11 else {}
    if ver >= (9, 0, 0):
        flags["STRONGLY_TYPED"] = 1
    NetworkDefinitionCreationFlag = enum("NetworkDefinitionCreationFlag", flags)
    bflags = {"GPU_FALLBACK": 2, "TF32": 7, "REFIT": 3, "DEBUG": 4}
    if major < 11:
        bflags.update(FP16=0, INT8=1)
    BuilderFlag = enum("BuilderFlag", bflags)
    MemoryPoolType = enum("MemoryPoolType", {"WORKSPACE": 0, "DLA_MANAGED_SRAM": 1})
    # PreviewFeature members per version (names-8.5/8.6/10.3.src/11.1.src): PROFILE_SHARING_0806 from 8.6,
    # deprecated (always on) in 10.0, gone in 11
    pf = {"FASTER_DYNAMIC_SHAPES_0805": 0, "DISABLE_EXTERNAL_TACTIC_SOURCES_FOR_CORE_0805": 1} if major < 10 else {}
    if (8, 6, 0) <= ver < (11, 0, 0):
        pf["PROFILE_SHARING_0806"] = 2
    if major >= 10:
        pf["ALIASED_PLUGIN_IO_10_03"] = 3
    PreviewFeature = enum("PreviewFeature", pf)
    DeviceType = enum("DeviceType", {"GPU": 0, "DLA": 1})
    DataType = enum("DataType", {"FLOAT": 0, "HALF": 1, "INT8": 2, "INT32": 3, "BOOL": 4})
    TensorIOMode = enum("TensorIOMode", {"NONE": 0, "INPUT": 1, "OUTPUT": 2})
    ErrorCode = enum("ErrorCode", {"SUCCESS": 0, "INTERNAL_ERROR": 1, "INVALID_GRAPH": 4,
                                   "UNSUPPORTED_NODE": 8, "MODEL_DESERIALIZE_FAILED": 6})
    Severity = enum("Severity", {"INTERNAL_ERROR": 0, "ERROR": 1, "WARNING": 2, "INFO": 3, "VERBOSE": 4})

    class ILogger(Strict):
        __module__ = MODULE

        def __init__(self):
            pass

        def log(self, severity, msg):  # pragma: no cover - overridden
            pass

    ILogger.Severity = Severity
    for k in ("INTERNAL_ERROR", "ERROR", "WARNING", "INFO", "VERBOSE"):
        type.__setattr__(ILogger, k, type.__getattribute__(Severity, k))

    class Logger(ILogger):
        __module__ = MODULE

        def __init__(self, min_severity=None):
            self._min = min_severity

    def _log(logger, sev, msg):
        if logger is not None:
            logger.log(type.__getattribute__(Severity, sev), msg)

    # ------------------------------------------------------------ network, parser

    class ITensor(Strict):
        __module__ = MODULE

        def __init__(self, name, dims, dtype):
            self._name, self._dims, self._dtype = name, dims, dtype

        name = property(lambda self: self._name)
        shape = property(lambda self: tuple(self._dims))
        dtype = property(lambda self: type.__getattribute__(DataType, self._dtype))

    class INetworkDefinition(Strict):
        __module__ = MODULE

        def __init__(self, flags):
            known = 0
            for k, v in flags_members.items():
                known |= 1 << v
            if flags & ~known:
                s.fail(f"create_network({flags}): unknown flag bits for TensorRT {s.version}")
            self._explicit = bool(flags & (1 << flags_members.get("EXPLICIT_BATCH", 99))) if major < 11 else True
            self._typed = major >= 11 or bool(flags & (1 << flags_members.get("STRONGLY_TYPED", 99)))
            if major < 10 and not self._explicit:
                s.fail("TensorRT 8.x: an ONNX network must be created with the EXPLICIT_BATCH flag")
            self._model = None
            self._inputs = []

        @property
        def num_inputs(self):
            return len(self._inputs)

        def get_input(self, i):
            return self._inputs[i]

    flags_members = dict(flags)

    class ParserError(Strict):
        __module__ = MODULE

        def __init__(self, node, desc, code):
            self._node, self._desc, self._code = node, desc, code

        def node(self):
            return self._node

        def desc(self):
            return self._desc

        def code(self):
            return type.__getattribute__(ErrorCode, self._code)

    class OnnxParser(Strict):
        __module__ = MODULE

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
                if n.domain not in ("", "ai.onnx") or n.op_type not in SUPPORTED_OPS:
                    self._errors.append(ParserError(i, f"No importer registered for op: {n.op_type}",
                                                    "UNSUPPORTED_NODE"))
                    return False
            try:
                io = _io(data)
            except KeyError as e:
                self._errors.append(ParserError(-1, f"unsupported data type {e}", "INVALID_GRAPH"))
                return False
            self._network._model = data
            self._network._inputs = [ITensor(n, d, t) for n, is_in, t, d in io if is_in]
            return True

        def parse_from_file(self, path):
            with open(path, "rb") as f:
                return self.parse(f.read(), path)

        @property
        def num_errors(self):
            return len(self._errors)

        def get_error(self, i):
            return self._errors[i]

        def clear_errors(self):
            self._errors = []

    # ------------------------------------------------------------ builder

    class IOptimizationProfile(Strict):
        __module__ = MODULE

        def __init__(self):
            self._shapes = {}

        def set_shape(self, input, min, opt, max):  # noqa: A002 - TensorRT's parameter names
            mn, op, mx = (tuple(int(v) for v in d) for d in (min, opt, max))
            if not (len(mn) == len(op) == len(mx)) or any(not (a <= b <= c) for a, b, c in zip(mn, op, mx)) \
                    or any(a < 1 for a in mn):
                s.fail(f"set_shape({input!r}): need 1 <= min <= opt <= max per dimension, got {mn} {op} {mx}")
            self._shapes[input] = (mn, op, mx)

    class ITimingCache(Strict):
        __module__ = MODULE

        def __init__(self, entries, tag):
            self._entries, self._tag = dict(entries), tag

        def serialize(self):
            return IHostMemory(json.dumps({"tag": self._tag, "entries": self._entries}).encode())

    class IBuilderConfig(Strict):
        __module__ = MODULE

        def __init__(self):
            self._flags, self._pools, self._profiles = {"TF32"}, {}, []  # TF32 on by default (H8.5)
            self._level, self._device, self._dla, self._cache = 3, "GPU", -1, None

        def set_memory_pool_limit(self, pool, size):
            if type(pool).__name__ != "EnumValue" or pool._owner != "MemoryPoolType":
                s.fail(f"set_memory_pool_limit: {pool!r} is not a MemoryPoolType")
            self._pools[pool._name] = int(size)

        def set_flag(self, flag):
            if getattr(flag, "_owner", None) != "BuilderFlag":
                s.fail(f"set_flag: {flag!r} is not a BuilderFlag")
            self._flags.add(flag._name)

        def clear_flag(self, flag):
            self._flags.discard(flag._name)

        def get_flag(self, flag):
            return flag._name in self._flags

        def set_preview_feature(self, feature, enable):
            if getattr(feature, "_owner", None) != "PreviewFeature":
                s.fail(f"set_preview_feature: {feature!r} is not a PreviewFeature")
            (self._flags.add if enable else self._flags.discard)("preview:" + feature._name)

        def add_optimization_profile(self, profile):
            self._profiles.append(profile)
            return len(self._profiles) - 1

        def create_timing_cache(self, data):
            data = bytes(data)
            if not data:
                return ITimingCache({}, [s.version, s.gpu])
            try:
                d = json.loads(data)
                return ITimingCache(d["entries"], d["tag"])
            except (ValueError, KeyError):
                raise RuntimeError("timing cache: invalid data") from None

        def set_timing_cache(self, cache, ignore_mismatch):
            if cache._tag != [s.version, s.gpu] and not ignore_mismatch:
                return False
            self._cache = cache
            return True

        def _get_level(self):
            return self._level

        def _set_level(self, v):
            if not 0 <= int(v) <= 5:
                s.fail(f"builder_optimization_level {v} outside 0..5")
            object.__setattr__(self, "_level", int(v))

        builder_optimization_level = property(_get_level, _set_level)

        def _get_device(self):
            return type.__getattribute__(DeviceType, self._device)

        def _set_device(self, v):
            if getattr(v, "_owner", None) != "DeviceType":
                s.fail(f"default_device_type = {v!r}: not a DeviceType")
            object.__setattr__(self, "_device", v._name)

        default_device_type = property(_get_device, _set_device)

        def _get_dla(self):
            return self._dla

        def _set_dla(self, v):
            object.__setattr__(self, "_dla", int(v))

        DLA_core = property(_get_dla, _set_dla)

    class IHostMemory(bytes, Strict):
        __module__ = MODULE

        @property
        def nbytes(self):
            return len(self)

    class Builder(Strict):
        __module__ = MODULE

        def __init__(self, logger):
            self._logger = logger

        @property
        def num_DLA_cores(self):
            return s.dla_cores

        def create_network(self, flags=0):
            return INetworkDefinition(int(flags))

        def create_builder_config(self):
            return IBuilderConfig()

        def create_optimization_profile(self):
            return IOptimizationProfile()

        def build_serialized_network(self, network, config):
            net, cfg = network, config
            if net._model is None:
                s.fail("build_serialized_network: the network is empty (parse failed or never parsed)")
            if len(cfg._profiles) != 1:
                s.fail(f"build_serialized_network: {len(cfg._profiles)} optimisation profiles (the double wants one)")
            prof = cfg._profiles[0]._shapes
            for t in net._inputs:
                if t._name not in prof:
                    s.fail(f"build_serialized_network: no optimisation profile shapes for input {t._name!r}")
                for d in prof[t._name]:
                    if len(d) != len(t._dims) or tuple(d[1:]) != tuple(t._dims[1:]):
                        s.fail(f"profile shape {d} for {t._name!r} does not fit the network input {t._dims}")
            if net._typed:
                if cfg._flags & {"FP16", "INT8"}:
                    _log(self._logger, "ERROR", "precision builder flags are not allowed on a strongly typed network")
                    return None
                precision = "fp16" if _graph_has_fp16(net._model) else "fp32"
                mode = "strongly-typed"
            else:
                precision = "fp16" if "FP16" in cfg._flags else "fp32"
                mode = "builder-flag" if precision == "fp16" else "default"
            dla = None
            if cfg._device == "DLA" and any(not (d[0] == d[1] == d[2]) for d in prof.values()):
                # H8.5 addInput: on DLA only the leading dimension may vary, with min = opt = max
                _log(self._logger, "ERROR", f"DLA needs an optimisation profile with min = opt = max, got {prof}")
                return None
            if cfg._device == "DLA":
                if not 0 <= cfg._dla < s.dla_cores:
                    _log(self._logger, "ERROR", f"DLA core {cfg._dla} does not exist ({s.dla_cores} cores)")
                    return None
                if precision != "fp16":
                    _log(self._logger, "ERROR", "DLA needs FP16 or INT8")
                    return None
                dla = cfg._dla
            header = {"version": s.version, "gpu": s.gpu, "cc": list(s.cc), "precision": precision, "mode": mode,
                      "dla_core": dla, "gpu_fallback": "GPU_FALLBACK" in cfg._flags,
                      "profile": {k: [list(x) for x in v] for k, v in prof.items()},
                      "workspace": cfg._pools.get("WORKSPACE"),
                      "opt_level": cfg._level if ver >= (8, 6, 0) else None,
                      "timing_cache": cfg._cache is not None, "explicit_batch_flag": net._explicit and major < 10,
                      # H8.6 createExecutionContext: contexts share a profile only with PROFILE_SHARING_0806 on
                      # 8.6/9.x; from 10.0 always (tensorrt-semantics.md section 1)
                      "profile_sharing": major >= 10 or "preview:PROFILE_SHARING_0806" in cfg._flags,
                      "tf32": "TF32" in cfg._flags}
            if cfg._cache is not None:
                cfg._cache._entries[hashlib.sha256(net._model).hexdigest()[:16]] = precision
            s.builds.append(header)
            return IHostMemory(MAGIC + json.dumps(header).encode() + b"\n" + net._model)

    # ------------------------------------------------------------ runtime

    class ICudaEngine(Strict):
        __module__ = MODULE

        def __init__(self, header, model):
            self._header, self._model = header, model
            self._io = {n: (is_in, t, d) for n, is_in, t, d in _io(model)}
            self._names = list(self._io)
            self._holders = weakref.WeakSet()  # contexts holding profile 0

        @property
        def num_io_tensors(self):
            return len(self._names)

        def get_tensor_name(self, i):
            return self._names[i]

        def get_tensor_mode(self, name):
            return type.__getattribute__(TensorIOMode, "INPUT" if self._io[name][0] else "OUTPUT")

        def get_tensor_dtype(self, name):
            return type.__getattribute__(DataType, self._io[name][1])

        def get_tensor_shape(self, name):
            return tuple(self._io[name][2])

        def create_execution_context(self):
            ctx = IExecutionContext(self)
            # 8.5: the first context gets profile 0, later ones -1; 8.6/9.x: 0 if no live context holds it;
            # with sharing (10+, or PROFILE_SHARING_0806): always 0 (H8.5/H8.6 getOptimizationProfile; #1597)
            if self._header.get("profile_sharing") or not (self._holders or (ver < (8, 6, 0) and self._made)):
                object.__setattr__(ctx, "_profile", 0)
                self._holders.add(ctx)
            else:
                _log(_runtime_logger[0], "WARNING", "Profile 0 has been chosen by another IExecutionContext. Use "
                                                    "another profileIndex or destroy the IExecutionContext")
            object.__setattr__(self, "_made", True)
            return ctx

        _made = False

    class IExecutionContext(Strict):
        __module__ = MODULE

        def __init__(self, engine):
            self._engine, self._shapes, self._addr, self._last = engine, {}, {}, None
            self._profile = -1

        @property
        def active_optimization_profile(self):
            return self._profile

        def set_optimization_profile_async(self, index, stream_handle):
            e = self._engine
            fake_pycuda.stream_for_handle(stream_handle)
            if index != 0:
                raise RuntimeError(f"set_optimization_profile_async({index}): the engine has one profile")
            if not e._header.get("profile_sharing") and any(c is not self for c in e._holders):
                raise RuntimeError("profile 0 is held by another execution context (no profile sharing)")
            e._holders.add(self)
            self._profile = 0
            return True

        def set_input_shape(self, name, shape):
            e = self._engine
            if self._profile < 0:  # returns False, never raises (Py 8.5-11.1; tensorrt-semantics.md 7)
                _log(_runtime_logger[0], "ERROR", "set_input_shape: the context has no optimisation profile (-1)")
                return False
            if name not in e._io or not e._io[name][0]:
                s.fail(f"set_input_shape({name!r}): not an input of the engine")
            shape = tuple(int(v) for v in shape)
            mn, _, mx = e._header["profile"][name]
            if len(shape) != len(mn) or any(not (a <= b <= c) for a, b, c in zip(mn, shape, mx)):
                _log(_runtime_logger[0], "ERROR", f"set_input_shape: {shape} outside the optimisation profile "
                                                  f"[{mn}, {mx}] of {name!r}")
                self._shapes.pop(name, None)
                return False
            self._shapes[name] = shape
            return True

        def get_tensor_shape(self, name):
            e = self._engine
            is_in, _, dims = e._io[name]
            if is_in:
                return self._shapes.get(name, tuple(dims))
            b = next(iter(self._shapes.values()))[0] if self._shapes else -1
            return (b,) + tuple(dims[1:])

        def set_tensor_address(self, name, ptr):
            if name not in self._engine._io:
                s.fail(f"set_tensor_address({name!r}): no such tensor")
            self._addr[name] = int(ptr)
            return True

        def execute_async_v3(self, stream_handle):
            e = self._engine
            stream = fake_pycuda.stream_for_handle(stream_handle)
            if self._profile < 0:
                _log(_runtime_logger[0], "ERROR", "execute_async_v3: no optimisation profile selected")
                return False
            for n, (is_in, t, dims) in e._io.items():
                if is_in and n not in self._shapes:
                    s.fail(f"execute_async_v3: input shape of {n!r} not set (set_input_shape)")
                if not self._addr.get(n):
                    s.fail(f"execute_async_v3: address of {n!r} not set (set_tensor_address)")
            if self._last is not None and not self._last.done and self._last.stream is not stream:
                s.fail("execute_async_v3: this execution context still has work pending on another stream "
                       "(one context per stream)")
            b = next(iter(self._shapes.values()))[0]
            plan = {}
            for n, (is_in, t, dims) in e._io.items():
                shape = self._shapes[n] if is_in else (b,) + tuple(dims[1:])
                nbytes = int(np.prod(shape)) * np.dtype(_NP[t]).itemsize
                fake_pycuda._memory().view(self._addr[n], nbytes, f"execute_async_v3 ({n})")
                plan[n] = (is_in, np.dtype(_NP[t]), shape, self._addr[n], nbytes)
            sess = _session(engine_graph(e._header, e._model))

            def run():
                mem = fake_pycuda._memory()
                feeds = {n: mem.view(a, nb, n).view(dt).reshape(shp).copy()
                         for n, (is_in, dt, shp, a, nb) in plan.items() if is_in}
                names = [n for n, v in plan.items() if not v[0]]
                outs = sess.run(names, feeds)
                for n, o in zip(names, outs):
                    _, dt, shp, a, nb = plan[n]
                    o = np.ascontiguousarray(o)
                    if o.dtype != dt or o.shape != tuple(shp):
                        s.fail(f"engine output {n}: {o.shape} {o.dtype}, expected {shp} {dt}")
                    mem.view(a, nb, n)[:] = o.reshape(-1).view(np.uint8)

            self._last = stream._enqueue("execute", run, {"engine": e._header.get("name"), "batch": b,
                                                          "context": id(self)})
            return True

    _runtime_logger = [None]

    class Runtime(Strict):
        __module__ = MODULE

        def __init__(self, logger):
            self._logger = logger
            self._dla = -1
            _runtime_logger[0] = logger

        def _get_dla(self):
            return self._dla

        def _set_dla(self, v):
            object.__setattr__(self, "_dla", int(v))

        DLA_core = property(_get_dla, _set_dla)

        def deserialize_cuda_engine(self, data):
            data = bytes(data)
            if not data.startswith(MAGIC):
                _log(self._logger, "ERROR", "deserialize: not an engine plan")
                return None
            head, _, model = data[len(MAGIC):].partition(b"\n")
            header = json.loads(head)
            if header["version"] != s.version:
                _log(self._logger, "ERROR", f"The engine plan file is not compatible with this version of TensorRT, "
                                            f"expecting library version {s.version} got {header['version']}")
                return None
            if header["gpu"] != s.gpu or list(header["cc"]) != list(s.cc):
                _log(self._logger, "ERROR", f"The engine plan file is generated on an incompatible device "
                                            f"({header['gpu']} {header['cc']}, this is {s.gpu} {list(s.cc)})")
                return None
            if header.get("dla_core") is not None and self._dla != header["dla_core"]:
                # sampleEngines.cpp (8.5.2) sets runtime DLA_core before deserialising a DLA engine
                _log(self._logger, "ERROR", f"engine built for DLA core {header['dla_core']}; runtime.DLA_core is "
                                            f"{self._dla}")
                return None
            return ICudaEngine(header, model)

    for name, obj in list(locals().items()):
        if name[0].isupper() and isinstance(obj, type):
            setattr(m, name, obj)
    return m


def plan_header(data: bytes) -> dict:
    """The JSON header of a fake plan (for tests)."""
    data = bytes(data)
    assert data.startswith(MAGIC), "not a fake plan"
    return json.loads(data[len(MAGIC):].partition(b"\n")[0])
