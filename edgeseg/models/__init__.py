"""Model family: Mix Transformer encoders (MiT-B0..B5), SegFormer / DAFormer heads, a registry."""
