#!/usr/bin/env bash
# Check the TensorRT path on a machine with an NVIDIA GPU and TensorRT, in one command.
#
#   bash export/device_check.sh --checkpoint student.safetensors [--calib frames/] [--size 512x1024]
#       a workstation/server with torch: exports every variant here (labels, logits, dynamic, FP16,
#       INT8 for TensorRT), then checks them
#   bash export/device_check.sh --onnx-dir exported/ [--calib frames/]
#       a Jetson (no torch): takes labels.onnx, logits.onnx, dynamic.onnx, fp16.onnx, int8_trt.onnx
#       exported elsewhere (see export/README.md for the export commands)
#
# Prints the versions (TensorRT, CUDA driver, cuda-python, numpy, cv2, ONNX Runtime), checks each ONNX
# against the TensorRT 8.6 / 10.x operator tables and with TensorRT's own parser (errors printed), builds
# FP32 / FP16 / INT8 engines, compares their labels with ONNX Runtime CPU at two frame sizes (FP32/FP16 must
# agree on >= 99.9% of pixels), runs `edgeseg bench` on engine vs ONNX, and writes
# benchmarks/results/device_check_<host>_trt<version>.{json,md}. Exit 0: all passed, 1: a check failed,
# 2: could not run (no TensorRT, bad arguments). The logic lives in edgeseg/deploy/trt/device_check.py.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
# the source tree first (an installed edgeseg of another version must not answer), results into its benchmarks/
PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" exec python3 -m edgeseg.deploy.trt.device_check \
    --results-dir "$root/benchmarks/results" "$@"
