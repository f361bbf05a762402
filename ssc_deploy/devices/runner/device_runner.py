#!/usr/bin/env python3
"""Standalone device runner: time and check one exported model with one runtime.

This file is copied as-is to phones, ARM boards and emulated devices and run there, so it
imports only the Python standard library, numpy and the one runtime asked for (never torch
directly, never ssc_deploy). Host and device measurements share this one code path.

Protocol (stable; the device transports depend on it)
-----------------------------------------------------
::

    python device_runner.py --artifact FILE --runtime onnxruntime|executorch|tflite
        --threads N --warmup N --runs N [--inputs FILE.npz] [--layout NCHW|NHWC] [--n-eval N] [--logits]

``--inputs`` is an ``.npz`` holding ``x`` (float32, N x C x H x W, normalised), optionally
``labels`` (int64, N) and ``reference`` (float32, N x classes: the PyTorch logits). Without
it the runner times a random input of the model's own shape and reports no accuracy.
``--layout NHWC`` transposes ``x`` to N x H x W x C before feeding (channels-last exports).
``--n-eval N`` evaluates only the first N images of ``x`` (0, the default: all of them).
``--logits`` adds ``"logits"`` (N x classes, the model's outputs on the evaluated images) to the
result, so the same file's outputs on two devices can be compared.

The LAST line of stdout is one JSON object. On success (exit code 0)::

    {"ok": true, "runtime", "runtime_version", "threads", "load_ms",
     "latency_ms": {"median", "p10", "p90", "min", "mean"}, "runs", "warmup",
     "throughput_ips", "peak_rss_mb", "model_rss_mb", "planned_activation_bytes", "top1", "top5", "n_eval",
     "parity": {"max_abs_diff", "top1_agreement", "n", "reference_top1", "right_to_wrong", "wrong_to_right"},
     "predictions", "machine", "python", ...}

``top1``/``top5``/``n_eval`` are null without labels, ``parity`` is null without
``reference``. ``predictions`` is the top-1 class of each evaluated image (a list of ints, null
without labels and reference): the host pairs two rows' predictions on the same images.
``right_to_wrong``/``wrong_to_right`` count the images PyTorch gets right and the model wrong, and
the reverse (null without labels). On failure (exit code 1)::

    {"ok": false, "error": "one line naming the problem", "runtime": ..., "artifact": ...}

Method
------
- Batch 1: artifacts are exported at batch 1; accuracy loops over the images one by one.
- Threads are pinned: onnxruntime ``intra_op_num_threads=N`` and ``inter_op_num_threads=1``
  (sequential execution); LiteRT ``num_threads=N``; ExecuTorch resets its XNNPACK
  threadpool to N (its Python runtime otherwise uses every core).
- Load time is wall time from opening the file to a runnable session/method; importing the
  runtime library is timed apart (``import_ms``).
- ``--warmup`` untimed inferences, then ``--runs`` timed ones with ``time.perf_counter_ns``
  on the first input image; the latency figures summarise those runs (median, p10, p90,
  min, mean). Throughput is images per second at batch 1 (1000 / mean latency).
- Peak memory is the process's peak resident set size (``VmHWM`` from /proc, else
  ``getrusage``), taken after all runs: the runner runs in its own process per
  measurement, so the figure belongs to this model and runtime alone (plus the Python
  interpreter, numpy and the runtime's own libraries).
- The model's own memory (``model_rss_mb``) is the resident set after loading the model
  and running it (warm-up and timed runs) minus the resident set just before loading,
  with the runtime's libraries already imported: the figure LiteRT's ``benchmark_model``
  reports as its footprint delta. Null where /proc/self/status has no ``VmRSS``.
- ``planned_activation_bytes`` (``.pte`` only, else null) is what ExecuTorch's memory
  planning reserved for the method's non-constant tensors: the sum of the ``forward``
  execution plan's ``non_const_buffer_sizes`` except entry 0 (reserved), read from the
  program's flatbuffer. Memory a delegate (XNNPACK) allocates for itself is not in it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

try:  # imported as ssc_deploy.devices.runner.device_runner (the tests)
    from .runner_support import (RunnerError, dist_version, first_line, flips_vs_reference, load_inputs, peak_rss_mb,
                                 pte_planned_bytes, rss_mb, summarize_latency)
except ImportError:  # run as a script (``python device_runner.py``, runpy): runner_support.py is beside it
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from runner_support import (RunnerError, dist_version, first_line, flips_vs_reference, load_inputs,  # type: ignore
                                peak_rss_mb, pte_planned_bytes, rss_mb, summarize_latency)

# The runner's own copy of ssc_deploy/runtimes.py (it cannot import it); tests/test_runtimes.py
# checks that these names and the distributions below agree with that table.
RUNTIMES = ("onnxruntime", "executorch", "tflite")
# LiteRT's interpreter module and the distribution that provides it, preferred first.
TFLITE_INTERPRETERS = (("ai_edge_litert.interpreter", "ai-edge-litert"), ("tflite_runtime.interpreter", "tflite-runtime"))


# --- runtimes: each returns (predict(x) -> logits ndarray, input shape, version) -------------


def _load_onnxruntime(path: str, threads: int):
    try:
        import onnxruntime as ort
    except ImportError:
        raise RunnerError("runtime 'onnxruntime' is not installed here (pip install onnxruntime)") from None
    import numpy as np

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    try:
        sess = ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as err:  # noqa: BLE001 - the runtime's own exception types vary
        raise RunnerError(f"onnxruntime could not load {os.path.basename(path)}: {first_line(err)}") from None
    inp = sess.get_inputs()[0]
    out_name = sess.get_outputs()[0].name
    shape = [d if isinstance(d, int) and d > 0 else 1 for d in inp.shape]

    def predict(x):
        return np.asarray(sess.run([out_name], {inp.name: x})[0])

    return predict, shape, ort.__version__


def _load_tflite(path: str, threads: int):
    import importlib

    for module, dist in TFLITE_INTERPRETERS:
        try:
            Interpreter = importlib.import_module(module).Interpreter
        except ImportError:
            continue
        version = dist_version(dist)
        break
    else:
        dists = ", or ".join(dist for _, dist in TFLITE_INTERPRETERS)
        raise RunnerError(f"runtime 'tflite' is not installed here (pip install {dists})")
    import numpy as np

    try:
        interp = Interpreter(model_path=path, num_threads=threads)
        interp.allocate_tensors()
    except Exception as err:  # noqa: BLE001
        raise RunnerError(f"LiteRT could not load {os.path.basename(path)}: {first_line(err)}") from None
    inp = interp.get_input_details()[0]
    out = interp.get_output_details()[0]
    in_scale, in_zero = inp.get("quantization", (0.0, 0))
    out_scale, out_zero = out.get("quantization", (0.0, 0))
    in_dtype = inp["dtype"]

    def predict(x):
        if np.issubdtype(in_dtype, np.integer) and in_scale:
            info = np.iinfo(in_dtype)
            x = np.clip(np.rint(x / in_scale + in_zero), info.min, info.max).astype(in_dtype)
        interp.set_tensor(inp["index"], x.astype(in_dtype, copy=False))
        interp.invoke()
        y = interp.get_tensor(out["index"])
        if np.issubdtype(y.dtype, np.integer) and out_scale:
            y = (y.astype(np.float32) - out_zero) * out_scale
        return np.array(y, copy=True)

    return predict, [int(d) for d in inp["shape"]], version


def _load_executorch(path: str, threads: int):
    try:
        from executorch.runtime import Runtime
    except ImportError:
        raise RunnerError("runtime 'executorch' is not installed here (pip install executorch)") from None
    import numpy as np

    try:
        from executorch.extension.pybindings import portable_lib

        reset = getattr(portable_lib, "_unsafe_reset_threadpool", None)
        if reset is not None:
            reset(threads)
    except ImportError:
        pass
    try:
        program = Runtime.get().load_program(path)
        method = program.load_method("forward")
    except Exception as err:  # noqa: BLE001
        raise RunnerError(f"ExecuTorch could not load {os.path.basename(path)}: {first_line(err)}") from None
    meta = method.metadata.input_tensor_meta(0)
    shape = [int(d) for d in meta.sizes()]
    # ExecuTorch's Python runtime takes torch tensors; it already depends on torch.
    import torch

    def predict(x):
        out = method.execute([torch.from_numpy(np.ascontiguousarray(x))])[0]
        return out.detach().numpy().copy() if hasattr(out, "detach") else np.asarray(out)

    return predict, shape, dist_version("executorch")


LOADERS = {"onnxruntime": _load_onnxruntime, "tflite": _load_tflite, "executorch": _load_executorch}
# Imported before the load clock starts, so load_ms is the model's load, not the library's.
PREIMPORTS = {
    "onnxruntime": ("onnxruntime",),
    "tflite": tuple(module for module, _ in TFLITE_INTERPRETERS),
    "executorch": ("executorch.runtime", "executorch.extension.pybindings.portable_lib", "torch"),
}


def preimport(runtime: str) -> float:
    """Import the runtime's modules (missing ones are reported later by the loader); return ms."""
    import importlib

    t0 = time.perf_counter_ns()
    for mod in PREIMPORTS.get(runtime, ()):
        try:
            importlib.import_module(mod)
        except ImportError:
            continue
    return (time.perf_counter_ns() - t0) / 1e6


def measure(artifact: str, runtime: str, threads: int, warmup: int, runs: int,
            inputs: str | None = None, layout: str = "NCHW", n_eval: int = 0, logits: bool = False) -> dict:
    """Load, time and evaluate one artifact (the first ``n_eval`` images, 0: all); return the result
    dict (raises RunnerError)."""
    import numpy as np

    if runtime not in LOADERS:
        raise RunnerError(f"unknown runtime '{runtime}' (use {', '.join(RUNTIMES)})")
    if not os.path.isfile(artifact):
        raise RunnerError(f"{artifact}: no such artifact file")
    if os.path.getsize(artifact) == 0:
        raise RunnerError(f"{artifact}: empty file, not a model")
    if threads < 1 or runs < 1 or warmup < 0 or n_eval < 0:
        raise RunnerError("--threads and --runs must be >= 1, --warmup and --n-eval >= 0")
    x, labels, ref = load_inputs(inputs, layout)
    if x is not None and n_eval:
        x = x[:n_eval]
        labels = None if labels is None else labels[:n_eval]
        ref = None if ref is None else ref[:n_eval]

    import_ms = preimport(runtime)
    rss_before = rss_mb()
    t0 = time.perf_counter_ns()
    predict, shape, version = LOADERS[runtime](artifact, threads)
    load_ms = (time.perf_counter_ns() - t0) / 1e6

    if x is None:
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    if list(x.shape[1:]) != list(shape[1:]):
        raise RunnerError(
            f"input shape {[1] + list(x.shape[1:])} does not match the model's {shape} "
            f"(layout {layout}: check --layout)"
        )
    one = np.ascontiguousarray(x[:1])
    try:
        for _ in range(warmup):
            predict(one)
        times = []
        for _ in range(runs):
            t = time.perf_counter_ns()
            predict(one)
            times.append((time.perf_counter_ns() - t) / 1e6)
    except Exception as err:  # noqa: BLE001
        raise RunnerError(f"{runtime} failed running the model: {first_line(err)}") from None
    lat = summarize_latency(times)
    rss_after = rss_mb()
    model_rss = rss_after - rss_before if rss_after is not None and rss_before is not None else None

    top1 = top5 = None
    n_eval = None
    parity = None
    if labels is not None or ref is not None:
        outs = np.stack([predict(np.ascontiguousarray(x[i : i + 1])).reshape(-1) for i in range(x.shape[0])])
        if labels is not None:
            n_eval = int(min(len(labels), outs.shape[0]))
            order = np.argsort(-outs[:n_eval], axis=1)
            top1 = float(np.mean(order[:, 0] == labels[:n_eval]))
            k = min(5, outs.shape[1])
            top5 = float(np.mean((order[:, :k] == labels[:n_eval, None]).any(axis=1)))
        if ref is not None:
            if ref.reshape(ref.shape[0], -1).shape[1] != outs.shape[1]:
                raise RunnerError(
                    f"reference logits have {ref.reshape(ref.shape[0], -1).shape[1]} classes, the model outputs {outs.shape[1]}"
                )
            m = min(ref.shape[0], outs.shape[0])
            r = ref.reshape(ref.shape[0], -1)[:m]
            parity = {
                "max_abs_diff": float(np.max(np.abs(outs[:m] - r))),
                "top1_agreement": float(np.mean(outs[:m].argmax(1) == r.argmax(1))),
                "n": int(m),
                # PyTorch's own top-1 on the same images: what a quantized file's top-1 is checked against
                "reference_top1": float(np.mean(r[:n_eval].argmax(1) == labels[:n_eval])) if labels is not None else None,
                **flips_vs_reference(outs[:m].argmax(1), r.argmax(1), labels),
            }

    return {
        "ok": True,
        "artifact": os.path.basename(artifact),
        "runtime": runtime,
        "runtime_version": version,
        "threads": threads,
        "load_ms": load_ms,
        "import_ms": import_ms,
        "latency_ms": lat,
        "runs": runs,
        "warmup": warmup,
        "throughput_ips": 1000.0 / lat["mean"] if lat["mean"] > 0 else None,
        "peak_rss_mb": peak_rss_mb(),
        "model_rss_mb": model_rss,
        "planned_activation_bytes": pte_planned_bytes(artifact) if runtime == "executorch" else None,
        "top1": top1,
        "top5": top5,
        "n_eval": n_eval,
        "parity": parity,
        "predictions": None if top1 is None and parity is None else [int(c) for c in outs.argmax(1)],
        "input_shape": [int(d) for d in shape],
        "layout": layout,
        "machine": platform.machine(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        **({"logits": outs.tolist()} if logits and (labels is not None or ref is not None) else {}),
    }


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Time and check one exported model with one runtime; "
                                "prints one JSON object on the last stdout line.")
    p.add_argument("--artifact", required=True, help="model file (.onnx, .pte, .tflite)")
    p.add_argument("--runtime", required=True, help=" | ".join(RUNTIMES))
    p.add_argument("--threads", type=int, default=1, help="CPU threads the runtime may use")
    p.add_argument("--warmup", type=int, default=10, help="untimed inferences before timing")
    p.add_argument("--runs", type=int, default=50, help="timed inferences")
    p.add_argument("--inputs", default=None, help=".npz with x, optional labels and reference")
    p.add_argument("--layout", default="NCHW", choices=("NCHW", "NHWC"), help="input layout the model takes")
    p.add_argument("--n-eval", type=int, default=0, help="evaluate only the first N input images (0: all)")
    p.add_argument("--logits", action="store_true", help="include the logits on the evaluated images in the result")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run one measurement; print the JSON result as the last stdout line."""
    args = build_parser().parse_args(argv)
    try:
        result = measure(args.artifact, args.runtime, args.threads, args.warmup, args.runs,
                         args.inputs, args.layout, args.n_eval, args.logits)
    except RunnerError as err:
        result = {"ok": False, "error": str(err), "runtime": args.runtime, "artifact": os.path.basename(args.artifact)}
    except MemoryError:
        result = {"ok": False, "error": "out of memory", "runtime": args.runtime, "artifact": os.path.basename(args.artifact)}
    except Exception as err:  # noqa: BLE001 - the protocol promises JSON, never a traceback
        result = {"ok": False, "error": f"{type(err).__name__}: {first_line(err)}", "runtime": args.runtime,
                  "artifact": os.path.basename(args.artifact)}
    sys.stdout.flush()
    print(json.dumps(result), flush=True)
    return 0 if result.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
