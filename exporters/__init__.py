"""Checkpoint -> artifact exporters (ONNX, TorchScript). Not built yet: no command exposes them."""
