"""Post-training quantization of the deployment net: int8 (static, calibrated) and fp16 artifacts.

One module per job: ``layers`` (which layers can be quantized, ``--keep-float`` names),
``calibration`` (the calibration images), ``gate`` (the accuracy gate), ``layer_error`` (the
per-layer error table) and one ``<target>_int8`` module per target.
"""

PRECISIONS: tuple[str, ...] = ("fp32", "int8", "fp16")
