"""Deployment, split along the torch boundary (the folders are the architecture):

- `runtime/`  the device side: the `Segmenter` interface, the backend table (`runtime.backends`), one module
              per backend, pre/post-processing, ONNX metadata, calibration frames. Never imports torch at
              import time (only the "torch" backend does, when it opens a checkpoint).
- `trt/`      TensorRT on the device: engine build, build plan per release, parser support tables, engine
              sidecar metadata, CUDA helpers and the device check. Never imports torch.
- `export/`   the workstation side: ONNX export of a checkpoint, parity with PyTorch, INT8 (ORT QDQ), graph
              edits, merge-and-export. May import torch, and anything from `runtime/` and `trt/`.
- `targets.py` deployment target profiles (export/targets/*.toml), torch-free.

`runtime/` and `trt/` never import from `export/`. Importing this package is cheap and torch-free.
"""
