"""Instructions per inference of onnxruntime's probe files on arm64-emulated (the runtime table's
``arm_counts_module`` of onnx; read by ``export/lowerings/selection/arm.py``).

Counted 2026-12-02 (qemu 7.2 TCG plugin; aarch64 onnxruntime 1.32.0), the lowering probe
(ssc-net-1-9 @ 32 px, untrained, seed 0), 1 thread: profile -> precision -> lowering -> count.
"""

INSTRUCTIONS: dict[str, dict[str, dict[str, float]]] = {
    "cortex-a76": {
        "fp32": {"pad-slice": 25.97e6, "dwconv-aligned": 26.59e6, "dwconv": 29.27e6},
        # the merge/bmm rows: issue 22, the same net (BatchNorms randomised, seed 0) exported u8s8 on x86
        "int8": {"dwconv-nhwc": 24.88e6, "dwconv": 31.84e6, "dwconv-nhwc-merge3": 23.94e6,
                 "dwconv-nhwc-merge9": 28.78e6, "dwconv-nhwc-bmm": 29.90e6},
    },
    "cortex-a53": {
        "fp32": {"pad-slice": 25.97e6, "dwconv-aligned": 26.61e6, "dwconv": 29.20e6},
        "int8": {"dwconv-nhwc": 38.78e6, "dwconv": 45.49e6},
    },
}
