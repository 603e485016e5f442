"""`edgebranchy doctor`: what works on this device, checked for real, with what to do about each failure.

Runs without torch. Every check returns a row (name, status, detail, advice);
statuses are "ok", "absent" (optional and not here: not a failure) and
"fail". TensorRT's engine check builds a tiny engine from the ONNX graph
shipped in the package (tensorrt/data/doctor.onnx), runs it through pycuda and
compares it with ONNX Runtime.
"""
from __future__ import annotations

import platform
import sys
import time
from typing import Any, Callable, List

import numpy as np

from edgebranchy.errors import EdgeBranchyError

GRAPH = "doctor.onnx"
TOL = 1e-3
#: attributes this module uses on TensorRT objects (the tiny engine build and run)
TRT_OBJECT_API = frozenset({
    "create_network", "create_builder_config", "create_optimization_profile", "build_serialized_network",
    "parse", "set_shape", "add_optimization_profile", "deserialize_cuda_engine", "create_execution_context",
    "set_input_shape", "set_tensor_address", "execute_async_v3", "num_DLA_cores",
})


def _row(check: str, status: str, detail: str, advice: str = "", **data: Any) -> dict:
    return {"check": check, "status": status, "detail": detail, "advice": advice, "data": data}


def graph_bytes() -> bytes:
    """The tiny ONNX graph shipped with the package (x: N x 8 -> y: N x 4, Gemm + Relu)."""
    try:
        from importlib.resources import files  # novermin (guarded; 3.8 takes the backport below)
    except ImportError:
        from importlib_resources import files  # a dependency on Python 3.8 only
    return files("edgebranchy.tensorrt").joinpath("data", GRAPH).read_bytes()


def check_python() -> List[dict]:
    rows = [_row("python", "ok", f"{platform.python_implementation()} {platform.python_version()} "
                               f"({sys.executable})", version=platform.python_version()),
            _row("numpy", "ok", np.__version__, version=np.__version__)]
    try:
        import onnxruntime as ort
    except ImportError as e:
        rows.append(_row("onnxruntime", "fail", f"cannot import: {e}", "pip install onnxruntime"))
        return rows
    providers = ort.get_available_providers()
    rows.append(_row("onnxruntime", "ok", f"{ort.__version__}; providers {', '.join(providers)}",
                     version=ort.__version__, providers=providers))
    return rows


def _ort_reference(x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    return ort.InferenceSession(graph_bytes(), so, providers=["CPUExecutionProvider"]).run(["y"], {"x": x})[0]


def check_tensorrt(log: Callable[[str], None] = lambda s: None) -> List[dict]:
    """TensorRT and pycuda: import, versions, CUDA context, GPU facts, DLA cores, and the tiny engine."""
    from edgebranchy.tensorrt import compat
    from edgebranchy.tensorrt.device import describe_device, import_tensorrt

    rows: List[dict] = []
    try:
        trt = import_tensorrt()
        rows.append(_row("tensorrt", "ok", f"TensorRT {trt.__version__}", version=str(trt.__version__)))
    except EdgeBranchyError as e:
        trt = None
        rows.append(_row("tensorrt", "absent", str(e), "only needed for the tensorrt backend; on Jetson install "
                         "JetPack's python3-libnvinfer and use a venv with --system-site-packages"))
    try:
        import pycuda
        import pycuda.driver as cuda
        rows.append(_row("pycuda", "ok", f"pycuda {getattr(pycuda, 'VERSION_TEXT', '?')}",
                         version=getattr(pycuda, "VERSION_TEXT", None)))
    except ImportError as e:
        rows.append(_row("pycuda", "absent" if trt is None else "fail", f"cannot import pycuda: {e}",
                         "pip install pycuda (needs nvcc and cuda.h: a CUDA -devel image or the CUDA toolkit)"))
        return rows
    if trt is None:
        return rows
    try:  # the primary context (TensorRT's), retained and pushed only while the doctor works: pycuda aborts a
        # thread that ends with a context pushed, and `pycuda.autoprimaryctx` would push it here for good
        cuda.init()
        device = cuda.Device(0)
        gpu = describe_device(cuda, device)
        context = device.retain_primary_context()
        context.push()
    except Exception as e:  # noqa: BLE001 - reported, with the advice
        rows.append(_row("cuda", "fail", f"no CUDA context: {type(e).__name__}: {e}",
                         "check the driver (nvidia-smi / tegrastats) and that the GPU is visible in the container "
                         "(--runtime nvidia)"))
        return rows
    try:
        rows += _with_context(trt, cuda, gpu, compat, log)
    finally:
        cuda.Context.pop()
    return rows


def _with_context(trt: Any, cuda: Any, gpu: tuple, compat: Any, log: Callable[[str], None]) -> List[dict]:
    """The GPU facts and the tiny engine, with the primary context current."""
    from edgebranchy.tensorrt.device import make_logger

    rows: List[dict] = []
    name, cc, sms = gpu
    logger = make_logger(trt, log)
    builder = trt.Builder(logger)
    dla = int(builder.num_DLA_cores)
    rows.append(_row("cuda", "ok", f"{name}, compute capability {cc[0]}.{cc[1]}, {sms} SMs, {dla} DLA core(s); "
                                   f"pycuda primary context retained", gpu=name,
                     compute_capability=f"{cc[0]}.{cc[1]}", sm_count=sms, dla_cores=dla))
    try:
        rows.append(_tiny_engine(trt, cuda, builder, logger, compat))
    except Exception as e:  # noqa: BLE001 - reported, with the advice
        rows.append(_row("engine", "fail", f"{type(e).__name__}: {e}", "see the TensorRT errors above; "
                         "`edgebranchy build ART` would fail the same way"))
    return rows


def _tiny_engine(trt: Any, cuda: Any, builder: Any, logger: Any, compat: Any) -> dict:
    plan = compat.plan_build(compat.parse_version(trt.__version__), "fp32", 3)
    network = builder.create_network(compat.network_flags(trt, plan))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(graph_bytes()):
        raise EdgeBranchyError("the ONNX parser refused the doctor graph: " + "; ".join(logger.errors))
    config = builder.create_builder_config()
    compat.configure(trt, builder, config, plan, 64 << 20)
    profile = builder.create_optimization_profile()
    profile.set_shape("x", (1, 8), (1, 8), (4, 8))
    config.add_optimization_profile(profile)
    t0 = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EdgeBranchyError("build_serialized_network returned None: " + "; ".join(logger.errors))
    runtime = trt.Runtime(logger)
    engine = runtime.deserialize_cuda_engine(bytes(serialized))
    if engine is None:
        raise EdgeBranchyError("deserialize_cuda_engine returned None: " + "; ".join(logger.errors))
    build_s = time.perf_counter() - t0
    x = np.random.default_rng(0).standard_normal((3, 8)).astype(np.float32)
    ctx = engine.create_execution_context()
    stream = cuda.Stream()
    d_x, d_y = cuda.mem_alloc(x.nbytes), cuda.mem_alloc(3 * 4 * 4)
    h_x, h_y = cuda.pagelocked_empty((3, 8), np.float32), cuda.pagelocked_empty((3, 4), np.float32)
    try:
        h_x[...] = x
        if not ctx.set_input_shape("x", (3, 8)):
            raise EdgeBranchyError("set_input_shape((3, 8)) refused")
        ctx.set_tensor_address("x", int(d_x))
        ctx.set_tensor_address("y", int(d_y))
        cuda.memcpy_htod_async(d_x, h_x, stream)
        if not ctx.execute_async_v3(stream.handle):
            raise EdgeBranchyError("execute_async_v3 returned False")
        cuda.memcpy_dtoh_async(h_y, d_y, stream)
        stream.synchronize()
        got = np.array(h_y)
    finally:
        d_x.free()
        d_y.free()
        for h in (h_x, h_y):
            h.base.free()  # pinned memory: freed now, on this thread (not by the GC elsewhere)
    diff = float(np.max(np.abs(got - _ort_reference(x))))
    status = "ok" if diff <= TOL else "fail"
    return _row("engine", status, f"tiny engine built in {build_s:.2f} s and run; max |TensorRT - ONNX Runtime| "
                                  f"= {diff:.2g} (tolerance {TOL})", "" if status == "ok" else
                "TensorRT computes something else than ONNX Runtime: report it with this output",
                max_abs_diff=diff, build_seconds=round(build_s, 3))


def check_power(prof: Any, sample_s: float = 0.2) -> List[dict]:
    """Every power source: available or why not, and one short reading from each available one."""
    from edgebranchy.measure.power.select import SOURCES, check_source, meter_class, meter_options

    rows = []
    for source in SOURCES:
        try:
            options = meter_options(source, prof)
            ok, why = check_source(source, options)
        except EdgeBranchyError as e:
            ok, why = False, str(e)
        if not ok:
            rows.append(_row(f"power:{source}", "absent", why, f"--power {source} cannot be used here"))
            continue
        try:
            with meter_class(source)(**options) as meter:
                meter.start()
                time.sleep(sample_s)
                r = meter.stop()
            rows.append(_row(f"power:{source}", "ok", f"{why}; {r.watts:.2f} W over {r.seconds:.2f} s ({r.kind})",
                             watts=r.watts, kind=r.kind))
        except EdgeBranchyError as e:
            rows.append(_row(f"power:{source}", "fail", f"available, but the sample failed: {e}",
                             "choose another source with --power"))
    return rows


def check_profile() -> tuple:
    """(rows, the detected Profile or None)."""
    from edgebranchy.device.detection import resolve_profile

    try:
        prof, why = resolve_profile("auto")
    except EdgeBranchyError as e:
        return [_row("profile", "fail", str(e), "pass --profile NAME (see `edgebranchy profiles`)")], None
    return [_row("profile", "ok", why, name=prof.name)], prof


def run_doctor(log: Callable[[str], None] = lambda s: None, power_sample_s: float = 0.2) -> dict:
    rows = check_python()
    rows += check_tensorrt(log)
    prow, prof = check_profile()
    rows += prow
    if prof is None:
        from edgebranchy.device.profile_loading import load_profile

        prof = load_profile("x86-cpu")  # for the power sources' options only
    rows += check_power(prof, power_sample_s)
    return {"schema": "edgebranchy.doctor", "schema_version": 1, "checks": rows,
            "failures": sum(r["status"] == "fail" for r in rows)}


def format_table(report: dict) -> str:
    rows = report["checks"]
    w = max(len(r["check"]) for r in rows)
    lines = [f"{'check':<{w}}  {'status':<6}  detail", f"{'-' * w}  ------  ------"]
    for r in rows:
        lines.append(f"{r['check']:<{w}}  {r['status']:<6}  {r['detail']}")
        if r["advice"] and r["status"] != "ok":
            lines.append(f"{'':<{w}}  {'':<6}  -> {r['advice']}")
    return "\n".join(lines)
