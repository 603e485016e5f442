"""A strict `tensorrt` double: builds "plans" from ONNX graphs and runs them with ONNX Runtime.

A plan is `MAGIC + JSON header + ONNX bytes`; the header carries the claimed TensorRT version, its build
and the GPU, so deserialising on another one fails as real engines do. Engines run on the simulated device
memory of fake_pycuda, on the stream given to `execute_async_v3`, when that stream's work is forced.

Fails loudly (StrictDoubleError / AttributeError, recorded as violations) on: a name the claimed version
lacks; an 8.x network without EXPLICIT_BATCH; unknown network flags; a precision builder flag or per-layer
precision on a strongly typed network; a missing or bad optimisation profile; execute without every input
shape and tensor address; the default stream; one context used on two streams at once; DLA settings the
device cannot honour.

Behaviour by version (H<v> = `include/NvInferRuntime.h`, HI<v> = `include/NvInfer.h` of NVIDIA/TensorRT at
tag <v>; Py<v> = `python/src/infer/pyCore.cpp`; tensorrt-semantics.md is ../shared/reference/):

| rule | 8.5 | 8.6, 9.x | 10.x, 11.x | source |
|---|---|---|---|---|
| a new execution context's profile | the first context created gets 0, later ones -1 | 0 if no live context holds profile 0, else -1 (also with PROFILE_SHARING_0806) | always 0 | H8.5.2:1589-1591; H8.6.1:1749-1752 and 2793-2797; H9.3.0:2001-2004; H10.3.0:2611-2615; H11.1:3077-3081 |
| `set_optimization_profile_async(i)` on a profile another context holds | RuntimeError ("unique profile index") | RuntimeError unless the engine was built with PROFILE_SHARING_0806 | allowed (sharing always on) | H8.5.2:1590-1591; HI8.6.1:9033-9037; HI9.3.0:9350-9354; HI10.3.0:8600-8604; Py8.6.1:353-357 (raises) |
| a context whose profile is -1 | `set_input_shape` and `execute_async_v3` return False | same | (not reachable) | H8.6.1:2793-2795; tensorrt-semantics.md 1, 7 |
| `layer.precision` / `set_output_type` | bind only with OBEY_/PREFER_PRECISION_CONSTRAINTS, else ignored (the double: all FP16 under BuilderFlag.FP16) | same | rejected on strongly typed networks (10.x); gone in 11 | HI8.5.2:633-656, 695-728; HI10.3.0:661 |
| BuilderFlag.FP16 | permits FP16 per layer | same | deprecated from 10.12, gone in 11 | HI10.12.0:8849-8850; tensorrt-semantics.md 4 |
| NetworkDefinitionCreationFlag.STRONGLY_TYPED | absent | from 9.x | present | HI9.3.0:10371; HI10.3.0:9620 |
| another build of the same version | deserialize_cuda_engine returns None ("not compatible with this version") | same | same | tensorrt-semantics.md 5 (public logs) |
| a Q/DQ graph (explicit quantization) | runs INT8 only with BuilderFlag.INT8; without it the build fails ("Int8 precision has been set for a layer or layer output, but int8 is not configured in the builder") | same | strongly typed: the Q/DQ layers give the types, no flag (a precision flag is an error); 11 has no INT8 flag | HI8.6.1:8773; microsoft/onnxruntime#13381 (8.x log); HI10.3.0:5283, 5345 |
| Q/DQ zero points and DequantizeLinear inputs | int8, zero points all 0 (parse error otherwise) | same | same (10.3 adds FP8/INT4) | HI8.6.1:6026-6028, 6104, 6112-6114, 6121-6122; HI10.3.0:5329-5331 |

The engine of a Q/DQ graph runs that graph through ONNX Runtime, its QuantizeLinear/DequantizeLinear included, so a
wrong scale gives wrong answers here as on the device.
"""
from __future__ import annotations

import hashlib
import json
import types
import weakref

import numpy as np

from trt_double import fake_network, fake_pycuda
from trt_double import state as st
from trt_double.strict import Strict, StrictModule, make_enum

MAGIC = b"FAKE-TRT-PLAN\n"
MODULE = __name__
SUPPORTED_OPS = fake_network.SUPPORTED_OPS

_NP = {"FLOAT": np.float32, "HALF": np.float16, "INT32": np.int32, "INT8": np.int8, "BOOL": np.bool_,
       "INT64": np.int64}
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
    onnx_import.py) and, for a BuilderFlag.FP16 engine, every layer in float16 but those pinned to FP32 with a
    binding precision constraint. Strongly typed engines keep the graph's own types (HI10.3.0:661)."""
    from trt_double.onnx_import import trt_import

    return trt_import(model, fp16=header.get("mode") == "builder-flag" and header.get("precision") == "fp16",
                      keep_fp32=header.get("fp32_layers") or ())


def _io(model: bytes):
    """[(name, is_input, trt dtype name, dims with -1 for the batch, batch symbol)] of an ONNX graph."""
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
            sym = tt.shape.dim[0].dim_param if dims and dims[0] < 0 else None
            out.append((v.name, is_input, fake_network.ONNX_TO_TRT[tt.elem_type], dims, sym))
    return out


def _graph_has_qdq(model: bytes) -> bool:
    import onnx

    return any(n.op_type == "QuantizeLinear" for n in onnx.load_from_string(model).graph.node)


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
    build = s.build or s.version
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
        bflags.update(FP16=0, INT8=1, OBEY_PRECISION_CONSTRAINTS=10, PREFER_PRECISION_CONSTRAINTS=11)
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
    dtypes = {"FLOAT": 0, "HALF": 1, "INT8": 2, "INT32": 3, "BOOL": 4}
    if major >= 10:
        dtypes["INT64"] = 5
    DataType = enum("DataType", dtypes)
    TensorIOMode = enum("TensorIOMode", {"NONE": 0, "INPUT": 1, "OUTPUT": 2})
    ErrorCode = enum("ErrorCode", {"SUCCESS": 0, "INTERNAL_ERROR": 1, "INVALID_GRAPH": 4,
                                   "UNSUPPORTED_NODE": 8, "MODEL_DESERIALIZE_FAILED": 6})
    Severity = enum("Severity", {"INTERNAL_ERROR": 0, "ERROR": 1, "WARNING": 2, "INFO": 3, "VERBOSE": 4})
    if major >= 10:
        ExecutionContextAllocationStrategy = enum("ExecutionContextAllocationStrategy",  # noqa: F841 - exported
                                                  {"STATIC": 0, "ON_PROFILE_CHANGE": 1, "USER_MANAGED": 2})

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

    net = fake_network.make_classes(s, ver, MODULE, DataType, ErrorCode)
    INetworkDefinition = net["INetworkDefinition"]

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
            self._flags, self._pools, self._profiles = {"TF32"}, {}, []  # TF32 on by default (HI8.5.2)
            self._level, self._device, self._dla, self._cache = 3, "GPU", -1, None

        def set_memory_pool_limit(self, pool, pool_size):
            if type(pool).__name__ != "EnumValue" or pool._owner != "MemoryPoolType":
                s.fail(f"set_memory_pool_limit: {pool!r} is not a MemoryPoolType")
            self._pools[pool._name] = int(pool_size)

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

        def create_timing_cache(self, serialized_timing_cache):
            data = bytes(serialized_timing_cache)
            if not data:
                return ITimingCache({}, [build, s.gpu])
            try:
                d = json.loads(data)
                return ITimingCache(d["entries"], d["tag"])
            except (ValueError, KeyError):
                raise RuntimeError("timing cache: invalid data") from None

        def set_timing_cache(self, cache, ignore_mismatch):
            if cache._tag != [build, s.gpu] and not ignore_mismatch:
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

    def _check_profiles(network, cfg):
        """Every optimisation profile gives shapes for every dynamic input, fitting its fixed dimensions."""
        if not cfg._profiles:
            s.fail("build_serialized_network: no optimisation profile (the network has dynamic inputs)")
        out = []
        for p in cfg._profiles:
            prof = p._shapes
            for t in network._inputs:
                if -1 not in t._dims:
                    continue
                if t._name not in prof:
                    s.fail(f"build_serialized_network: no optimisation profile shapes for input {t._name!r}")
                for d in prof[t._name]:
                    if len(d) != len(t._dims) or any(w >= 0 and w != v for w, v in zip(t._dims, d)):
                        s.fail(f"profile shape {d} for {t._name!r} does not fit the network input {t._dims}")
            _check_named_dims(network, prof)
            out.append({k: [list(x) for x in v] for k, v in prof.items()})
        return out

    def _check_named_dims(network, prof):
        """Dimensions with the same name must be equal at run time (HI8.5.2:490, HI10.3.0:500; the ONNX import
        names them after their dim_param): a profile whose ranges for them differ admits shapes no run can have.
        Real TensorRT's reaction is not documented; the double refuses it at build (stricter)."""
        seen = {}
        for t in network._inputs:
            for i, dim_name in enumerate(t._dim_names):
                if not dim_name or t._name not in prof:
                    continue
                got = tuple(d[i] for d in prof[t._name])
                other = seen.setdefault(dim_name, (t._name, got))
                if other[1] != got:
                    s.fail(f"profile: dimension {dim_name!r} of {t._name!r} has min/opt/max {got}, of "
                           f"{other[0]!r} {other[1]}; dimensions with the same name must be equal at run time")

    class Builder(Strict):
        __module__ = MODULE

        def __init__(self, logger):
            self._logger = logger

        @property
        def num_DLA_cores(self):
            return s.dla_cores

        def create_network(self, flags=0):
            return INetworkDefinition(int(flags), flags_members)

        def create_builder_config(self):
            return IBuilderConfig()

        def create_optimization_profile(self):
            return IOptimizationProfile()

        def build_serialized_network(self, network, config):
            net_, cfg = network, config
            if net_._model is None and not net_._layers:
                s.fail("build_serialized_network: the network is empty (parse failed or never parsed)")
            if net_._model is None:
                net_._model = net_._api_graph()
            profiles = _check_profiles(net_, cfg)
            constrained = bool(cfg._flags & {"OBEY_PRECISION_CONSTRAINTS", "PREFER_PRECISION_CONSTRAINTS"})
            if net_._typed:
                if cfg._flags & {"FP16", "INT8"}:
                    _log(self._logger, "ERROR", "precision builder flags are not allowed on a strongly typed network")
                    return None
                precision = ("int8" if _graph_has_qdq(net_._model) else
                             "fp16" if _graph_has_fp16(net_._model) else "fp32")
                mode = "strongly-typed"
            elif _graph_has_qdq(net_._model):
                if "INT8" not in cfg._flags:  # HI8.6.1:8773; the 8.x build log in microsoft/onnxruntime#13381
                    _log(self._logger, "ERROR", "Error Code 4: Internal Error (Int8 precision has been set for a "
                                                "layer or layer output, but int8 is not configured in the builder)")
                    return None
                precision, mode = "int8", "builder-flag"
            else:
                precision = "fp16" if "FP16" in cfg._flags else "fp32"
                mode = "builder-flag" if precision == "fp16" else "default"
            dla = None
            fixed = all(d[0][0] == d[1][0] == d[2][0] for p in profiles for d in p.values())
            if cfg._device == "DLA" and not fixed:
                # HI8.5.2 addInput: on DLA only the leading dimension may vary, with min = opt = max
                _log(self._logger, "ERROR", f"DLA needs an optimisation profile with min = opt = max, got {profiles}")
                return None
            if cfg._device == "DLA":
                if not 0 <= cfg._dla < s.dla_cores:
                    _log(self._logger, "ERROR", f"DLA core {cfg._dla} does not exist ({s.dla_cores} cores)")
                    return None
                if precision == "fp32":
                    _log(self._logger, "ERROR", "DLA needs FP16 or INT8")
                    return None
                dla = cfg._dla
            header = {"version": s.version, "build": build, "gpu": s.gpu, "cc": list(s.cc), "precision": precision,
                      "mode": mode, "dla_core": dla, "gpu_fallback": "GPU_FALLBACK" in cfg._flags,
                      "profile": profiles[0], "profiles": profiles,
                      "fp32_layers": net_._pinned(constrained and mode == "builder-flag"),
                      "workspace": cfg._pools.get("WORKSPACE"),
                      "opt_level": cfg._level if ver >= (8, 6, 0) else None,
                      "timing_cache": cfg._cache is not None, "explicit_batch_flag": net_._explicit and major < 10,
                      # HI8.6.1:9033-9037: PROFILE_SHARING_0806 lets contexts share a profile; from 10.0 always on
                      "profile_sharing": major >= 10 or "preview:PROFILE_SHARING_0806" in cfg._flags,
                      "tf32": "TF32" in cfg._flags}
            if cfg._cache is not None:
                cfg._cache._entries[hashlib.sha256(net_._model).hexdigest()[:16]] = precision
            s.builds.append(header)
            return IHostMemory(MAGIC + json.dumps(header).encode() + b"\n" + net_._model)

    flags_members = dict(flags)

    # ------------------------------------------------------------ runtime

    class ICudaEngine(Strict):
        __module__ = MODULE

        def __init__(self, header, model):
            self._header, self._model = header, model
            self._io = {n: (is_in, t, d, sym) for n, is_in, t, d, sym in _io(model)}
            self._names = list(self._io)
            self._holders = {i: weakref.WeakSet() for i in range(len(header["profiles"]))}

        @property
        def num_io_tensors(self):
            return len(self._names)

        @property
        def num_optimization_profiles(self):
            return len(self._holders)

        def get_tensor_name(self, index):
            return self._names[index]

        def get_tensor_mode(self, name):
            return type.__getattribute__(TensorIOMode, "INPUT" if self._io[name][0] else "OUTPUT")

        def get_tensor_dtype(self, name):
            return type.__getattribute__(DataType, self._io[name][1])

        def get_tensor_shape(self, name):
            return tuple(self._io[name][2])

        def _sharing(self):
            return bool(self._header.get("profile_sharing"))

        def _new_context(self):
            ctx = IExecutionContext(self)
            # the module docstring's first row: which profile a new context gets, by version
            if major >= 10:
                implicit = 0
            elif ver >= (8, 6, 0):
                implicit = -1 if len(self._holders[0]) else 0
            else:
                implicit = -1 if self._made else 0
            if implicit == 0:
                object.__setattr__(ctx, "_profile", 0)
                self._holders[0].add(ctx)
            else:
                _log(_runtime_logger[0], "WARNING", "Profile 0 has been chosen by another IExecutionContext. Use "
                                                    "another profileIndex or destroy the IExecutionContext")
            object.__setattr__(self, "_made", True)
            return ctx

        _made = False

        if major >= 10:
            def create_execution_context(self, strategy=None):
                return self._new_context()
        else:
            def create_execution_context(self):
                return self._new_context()

    class IExecutionContext(Strict):
        __module__ = MODULE

        def __init__(self, engine):
            self._engine, self._shapes, self._addr, self._last = engine, {}, {}, None
            self._profile = -1

        @property
        def active_optimization_profile(self):
            return self._profile

        def set_optimization_profile_async(self, profile_index, stream_handle):
            e = self._engine
            stream = fake_pycuda.stream_for_handle(stream_handle)
            if not 0 <= int(profile_index) < len(e._holders):  # Py8.6.1:353-357: raises, never returns False
                raise RuntimeError(f"Error in set optimization profile async: index {profile_index} of "
                                   f"{len(e._holders)} profiles")
            held = [c for c in e._holders[int(profile_index)] if c is not self]
            if held and not e._sharing():
                raise RuntimeError(f"Error in set optimization profile async: profile {profile_index} is held by "
                                   "another execution context (no profile sharing)")
            for holders in e._holders.values():
                holders.discard(self)
            e._holders[int(profile_index)].add(self)
            self._profile = int(profile_index)
            self._shapes = {}
            stream._enqueue("profile", lambda: None, {"context": id(self), "profile": self._profile})
            return True

        def set_input_shape(self, name, shape):
            e = self._engine
            if self._profile < 0:  # returns False, never raises (Py 8.5-11.1; tensorrt-semantics.md 7)
                _log(_runtime_logger[0], "ERROR", "set_input_shape: the context has no optimisation profile (-1)")
                return False
            if name not in e._io or not e._io[name][0]:
                s.fail(f"set_input_shape({name!r}): not an input of the engine")
            shape = tuple(int(v) for v in shape)
            dims = e._io[name][2]
            if -1 not in dims:
                ok = shape == tuple(dims)
                mn = mx = dims
            else:
                mn, _, mx = e._header["profiles"][self._profile][name]
                ok = len(shape) == len(mn) and all(a <= b <= c for a, b, c in zip(mn, shape, mx))
            if not ok:
                _log(_runtime_logger[0], "ERROR", f"set_input_shape: {shape} outside the optimisation profile "
                                                  f"{self._profile} [{mn}, {mx}] of {name!r}")
                self._shapes.pop(name, None)
                return False
            self._shapes[name] = shape
            return True

        def _out_shape(self, name):
            is_in, _, dims, sym = self._engine._io[name]
            if is_in:
                return self._shapes.get(name, tuple(dims))
            src = [n for n, v in self._engine._io.items() if v[0] and v[3] == sym and n in self._shapes]
            b = self._shapes[src[0]][0] if src else -1
            return (b,) + tuple(dims[1:]) if dims and dims[0] < 0 else tuple(dims)

        def get_tensor_shape(self, name):
            return self._out_shape(name)

        def set_tensor_address(self, name, memory):
            if name not in self._engine._io:
                s.fail(f"set_tensor_address({name!r}): no such tensor")
            self._addr[name] = int(memory)
            return True

        def execute_async_v3(self, stream_handle):
            e = self._engine
            stream = fake_pycuda.stream_for_handle(stream_handle)
            if self._profile < 0:
                _log(_runtime_logger[0], "ERROR", "execute_async_v3: no optimisation profile selected")
                return False
            for n, (is_in, t, dims, _) in e._io.items():
                if is_in and -1 in dims and n not in self._shapes:
                    s.fail(f"execute_async_v3: input shape of {n!r} not set (set_input_shape)")
                if not self._addr.get(n):
                    s.fail(f"execute_async_v3: address of {n!r} not set (set_tensor_address)")
            batches = {}
            for n, (is_in, _, dims, sym) in e._io.items():
                if is_in and sym and n in self._shapes:
                    batches.setdefault(sym, {})[n] = self._shapes[n][0]
            for sym, got in batches.items():  # named dimensions are equal at run time (HI8.5.2:490)
                if len(set(got.values())) > 1:
                    s.fail(f"execute_async_v3: inputs {got} differ in dimension {sym!r}, which TensorRT requires "
                           "to be equal (the same name)")
            if self._last is not None and not self._last.done and self._last.stream is not stream:
                s.fail("execute_async_v3: this execution context still has work pending on another stream "
                       "(one context per stream)")
            plan = {}
            for n, (is_in, t, dims, _) in e._io.items():
                shape = self._out_shape(n)
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

            batch = next((v[2][0] for v in plan.values() if v[0] and v[2]), 1)
            self._last = stream._enqueue("execute", run, {"engine": e._header.get("name"), "batch": batch,
                                                          "context": id(self), "profile": self._profile,
                                                          "inputs": sorted(n for n, v in plan.items() if v[0])})
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

        def deserialize_cuda_engine(self, serialized_engine):
            data = bytes(serialized_engine)
            if not data.startswith(MAGIC):
                _log(self._logger, "ERROR", "deserialize: not an engine plan")
                return None
            head, _, model = data[len(MAGIC):].partition(b"\n")
            header = json.loads(head)
            made_by = header.get("build", header["version"])
            if made_by != build:
                _log(self._logger, "ERROR", f"The engine plan file is not compatible with this version of TensorRT, "
                                            f"expecting library version {build} got {made_by}, please rebuild.")
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
            header.setdefault("profiles", [header.get("profile", {})])
            return ICudaEngine(header, model)

    for name, obj in list(locals().items()):
        if name[0].isupper() and isinstance(obj, type) and name != "Severity":  # that one is ILogger.Severity only
            setattr(m, name, obj)
    for name, obj in net.items():
        setattr(m, name, obj)
    return m


def plan_header(data: bytes) -> dict:
    """The JSON header of a fake plan (for tests)."""
    data = bytes(data)
    assert data.startswith(MAGIC), "not a fake plan"
    return json.loads(data[len(MAGIC):].partition(b"\n")[0])


def plan_graph(data: bytes) -> bytes:
    """The ONNX graph as the engine of a fake plan computes it (for tests)."""
    data = bytes(data)
    return engine_graph(plan_header(data), data[len(MAGIC):].partition(b"\n")[2])
