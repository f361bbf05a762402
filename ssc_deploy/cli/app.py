"""The Typer application every command module registers on."""

import typer

app = typer.Typer(
    name="ssc-deploy",
    help="Train Super Sparse Convolutional networks (SSC-Nets), export them to ONNX, "
    "ExecuTorch and TFLite, and benchmark them against MobileNetV2 and IGCV3 on this host, "
    "ARM boards and Android phones.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
