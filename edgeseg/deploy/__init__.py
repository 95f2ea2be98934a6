"""Deployment: ONNX export, INT8 quantisation, TensorRT engines and the runtime interface.

Importing this package is cheap and torch-free. `runtimes`, `preprocess`, `onnx_meta`, `engine_meta`,
`calibration`, `targets` and `tensorrt` never import torch (the device side runs without it);
`export_model`, `onnx_export` and `parity` do, and are only imported by the export commands.
"""
