"""Running models on the device, torch-free: the `Segmenter` interface (`segmenter`), the one table of
runtime backends (`backends.BACKENDS`), one `<name>_backend` module per backend, pre/post-processing,
ONNX metadata and calibration frames."""
