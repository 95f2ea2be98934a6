"""Running models on the device (the Segmenter interface and its backends): torch-free."""
