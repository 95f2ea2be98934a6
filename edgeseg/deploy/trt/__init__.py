"""TensorRT on the device (engine build, plans per release, parser support, sidecars, CUDA): torch-free."""
