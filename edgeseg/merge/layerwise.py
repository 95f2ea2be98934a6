"""Layer-wise anchor merging (Alcover-Couso et al., "Layer-wise Model Merging for Unsupervised Domain
Adaptation in Segmentation Tasks").

Early layers extract generic features and are merged with the base weights (uniform by default); deeper
layers are increasingly task-specific, so the weight of one chosen *anchor* model grows with depth and the
last layers stay close to it. Depth is the true position in the network, not the order of the keys:

    encoder.patch_embeds.{s}  ->  before the blocks of stage s
    encoder.stages.{s}.{b}    ->  block b of stage s
    encoder.norms.{s}         ->  after the blocks of stage s
    head.*                    ->  last (the decode head is one layer of the schedule)

(the depth order is the model contract's, edgeseg.models.layout.layer_id: merging does not parse names itself)

Layer l of L gets the normalised depth t = l / (L - 1) in [0, 1] and the anchor weight

    a(t) = w_a                                  for t <= start
    a(t) = w_a + (final - w_a) * ramp(u)         for t >  start,  u = (t - start) / (1 - start)
    ramp(u) = u | (1 - cos(pi u)) / 2 | 1       (shape linear | cosine | step)

where w_a is the anchor's base weight (1/N by default). The other models share 1 - a(t) in proportion to
their base weights. The paper does not publish numeric schedule values; the defaults below (ramp from the
middle of the network, linear, anchor alone at the last layer) are this project's choice.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

from edgeseg.errors import ConfigError
from edgeseg.models.layout import layer_id, layer_name  # noqa: F401  (layer_name: re-exported for reports)

SHAPES = ("linear", "cosine", "step")


@dataclass(frozen=True)
class LayerwiseSchedule:
    start: float = 0.5  # normalised depth where the anchor's weight starts to grow
    shape: str = "linear"  # linear | cosine | step
    final: float = 1.0  # the anchor's weight at the last layer

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            raise ConfigError(f"ramp shape '{self.shape}' is not one of: {', '.join(SHAPES)}")
        for name in ("start", "final"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0.0 <= value <= 1.0):
                raise ConfigError(f"layer-wise {name} must be in [0, 1], got {value}")

    def ramp(self, t: float) -> float:
        """0 before `start`, rising to 1 at t = 1 with the configured shape."""
        if t <= self.start or self.start >= 1.0:
            return 0.0
        u = min((t - self.start) / (1.0 - self.start), 1.0)
        if self.shape == "linear":
            return u
        if self.shape == "cosine":
            return 0.5 * (1.0 - math.cos(math.pi * u))
        return 1.0

    def anchor_weight(self, t: float, base: float) -> float:
        return base + (self.final - base) * self.ramp(t)

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def depth_positions(keys: Iterable[str]) -> dict[str, float]:
    """Normalised depth t in [0, 1] of every key: rank of its layer among the distinct layers present."""
    ids = {key: layer_id(key) for key in keys}
    layers = sorted(set(ids.values()))
    if len(layers) == 1:
        return {key: 1.0 for key in ids}
    rank = {layer: i / (len(layers) - 1) for i, layer in enumerate(layers)}
    return {key: rank[layer] for key, layer in ids.items()}


def layer_weights(schedule: LayerwiseSchedule, base: Sequence[float], anchor: int, t: float) -> list[float]:
    """Per-model weights at depth t: the anchor gets a(t), the others share the rest like their base."""
    a = schedule.anchor_weight(t, base[anchor])
    others = sum(w for i, w in enumerate(base) if i != anchor)
    weights = []
    for i, w in enumerate(base):
        if i == anchor:
            weights.append(a)
        elif others > 0:
            weights.append((1.0 - a) * w / others)
        else:  # the anchor had all the base weight: spread the remainder equally
            weights.append((1.0 - a) / (len(base) - 1))
    return weights
