"""The workstation side of deployment: ONNX export, parity with PyTorch, INT8, graph edits, merge-export.

Modules here may import torch; the device side (`runtime/`, `trt/`) never imports from this package.
"""
