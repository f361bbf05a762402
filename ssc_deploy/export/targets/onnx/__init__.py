"""ONNX (onnxruntime): the fp32 export and its int8 (QDQ) export."""
