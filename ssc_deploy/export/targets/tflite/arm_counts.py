"""Instructions per inference of LiteRT's probe files on arm64-emulated (the runtime table's
``arm_counts_module`` of tflite; read by ``export/lowerings/selection/arm.py``).

Counted 2026-12-02 (qemu 7.2 TCG plugin; aarch64 LiteRT 2.3.0), the lowering probe
(ssc-net-1-9 @ 32 px, untrained, seed 0), 1 thread: profile -> precision -> lowering -> count.
"""

INSTRUCTIONS: dict[str, dict[str, dict[str, float]]] = {
    "cortex-a76": {
        "fp32": {"dwconv-nhwc": 32.88e6, "dwconv": 32.92e6, "pad-slice": 33.74e6},
        "int8": {"dwconv": 15.12e6, "dwconv-nhwc": 15.36e6, "dwconv-merge3": 14.18e6, "dwconv-merge9": 19.02e6},
    },
    "cortex-a53": {
        "fp32": {"pad-slice": 37.51e6, "dwconv-nhwc": 40.47e6, "dwconv": 40.50e6},
        "int8": {"dwconv": 30.58e6, "dwconv-nhwc": 30.83e6},
    },
}
