"""Deployment: ONNX export, INT8 quantisation, TensorRT engines and the runtime interface.

Importing this package is cheap and torch-free. `runtimes`, `preprocess`, `onnx_meta`, `engine_meta`,
`calibration`, `targets`, `tensorrt`, `trt_plan`, `trt_support`, `trt_runtime` and `device_check` never
import torch (the device side runs without it; device_check imports the exporter only when asked to export);
`export_model`, `onnx_export` and `parity` do, and are only imported by the export commands.
"""
