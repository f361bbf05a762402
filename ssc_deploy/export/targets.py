"""The export targets by name (each module imports its heavy packages lazily)."""

from . import executorch_target, onnx_target, tflite_target

TARGETS = {"onnx": onnx_target, "executorch": executorch_target, "tflite": tflite_target}
