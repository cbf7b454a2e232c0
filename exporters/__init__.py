"""Checkpoint -> artifact exporters (ONNX, TorchScript) behind ``profiler export`` and the sweep.

A package apart from ``profiler`` because it needs torch tracing and onnx, which serving does not:
the server reads what they write only through the manifest in :mod:`profiler.artifact`.
"""
