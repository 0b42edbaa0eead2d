"""`tflite_runtime.interpreter.Interpreter` is LiteRT's (see the package docstring)."""

from ai_edge_litert.interpreter import Interpreter  # noqa: F401
