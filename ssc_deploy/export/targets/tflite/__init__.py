"""TFLite (LiteRT): the fp32 export, its int8 and fp16 exports and what a .tflite graph says."""
