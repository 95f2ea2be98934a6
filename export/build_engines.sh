#!/usr/bin/env bash
# Build TensorRT engines ON THE DEVICE from the ONNX files that `edgeseg merge-export` wrote.
#
#   export/build_engines.sh DEPLOY_DIR TARGET [CALIB_DIR]
#     DEPLOY_DIR  the --out folder of `edgeseg merge-export` (holds merged*.onnx)
#     TARGET      a profile in export/targets/ (orin-nano, orin-agx, x86-cuda) or a .toml path
#     CALIB_DIR   target-domain images for INT8 profiles (optional otherwise)
#
# Engines go next to their ONNX file as NAME.<target>.engine with a sidecar NAME.<target>.engine.json that
# records the TensorRT version, GPU and precision; edgeseg refuses to load an engine built elsewhere. A
# timing cache per target (DEPLOY_DIR/timing.<target>.cache) makes rebuilds fast.
set -euo pipefail

if [ $# -lt 2 ]; then
    echo "usage: $0 DEPLOY_DIR TARGET [CALIB_DIR]" >&2
    exit 2
fi
deploy_dir=$1
target=$2
calib=${3:-}

if ! python3 -c "import tensorrt" 2>/dev/null; then
    echo "error: TensorRT's Python bindings are not importable here; run this on the device (JetPack ships them)" >&2
    exit 2
fi

shopt -s nullglob
onnx_files=("$deploy_dir"/merged*.onnx)
if [ ${#onnx_files[@]} -eq 0 ]; then
    echo "error: no merged*.onnx in '$deploy_dir'; run edgeseg merge-export first" >&2
    exit 2
fi

for onnx in "${onnx_files[@]}"; do
    case "$onnx" in
        # ONNX Runtime's INT8 graph (uint8 zero points, int32 biases) is not TensorRT Q/DQ: INT8 engines come
        # from the FP32 graph with CALIB_DIR (TensorRT < 11) or from `edgeseg export --int8 --int8-for tensorrt`
        *_int8.onnx) continue ;;
    esac
    engine="${onnx%.onnx}.${target##*/}.engine"
    args=(build-engine "$onnx" --out "$engine" --target "$target" --timing-cache "$deploy_dir/timing.${target##*/}.cache")
    if [ -n "$calib" ]; then
        args+=(--calib "$calib")
    fi
    echo "building $engine"
    edgeseg "${args[@]}"
done
