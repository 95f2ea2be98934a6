"""Operation counts: multiply-accumulates (MACs) of convs, linears and attention matmuls (elementwise ops,
norms and resizes excluded). Papers mix conventions: SegFormer/mmcv call MACs "FLOPs"; others count 2 FLOPs per
MAC. edgeseg always prints both, labelled."""

from __future__ import annotations

from typing import Any


def count_gmacs(model: Any, height: int, width: int) -> float:
    """Billions of multiply-accumulates for one (1,3,H,W) forward pass (GFLOPs = 2 x this)."""
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    x = torch.zeros(1, 3, height, width)
    counter = FlopCounterMode(display=False)
    # The fused CPU attention kernel is invisible to FlopCounterMode: count on the plain math path.
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), counter:
        model(x)
    model.train(was_training)
    return counter.get_total_flops() / 2 / 1e9  # FlopCounterMode counts 2 per MAC


def count_parameters(module: Any) -> int:
    return sum(p.numel() for p in module.parameters())
