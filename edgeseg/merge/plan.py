"""What a merge method plans with: one `Step` per output tensor, and the default per-key rule (`KeyMerger`).

Steps are lazy: `compute()` reads the inputs' tensors for one key and returns the merged tensor, so the
writer streams the output one key at a time. Torch is imported inside the functions: the method registry
(and so `edgeseg merge --help`) loads without it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from edgeseg.merge.io import TensorInfo, TensorReader, is_counter

if TYPE_CHECKING:
    from edgeseg.merge.bn import BNKeys


@dataclass
class Step:
    out_key: str
    info: TensorInfo
    compute: Callable[[], Any]


class KeyMerger:
    """Merges one key across inputs; BatchNorm groups are pooled together and cached until emitted."""

    def __init__(self, reader: TensorReader, groups: dict[str, BNKeys], pooled: bool) -> None:
        self.reader, self.groups, self.pooled = reader, groups, pooled
        self._bn_cache: dict[str, tuple[Any, Any, int]] = {}  # prefix -> pooled (mean, var, count)
        self._bn_left: dict[str, int] = {}  # prefix -> statistics keys not yet emitted

    def copy(self, index: int, key: str):
        return self.reader.read(index, key)

    def merge(self, key: str, weights: Sequence[float], indices: Sequence[int]):
        """The default rule: BN stats pooled (or averaged), counters summed, ints copied, floats averaged."""
        from edgeseg.merge import linear

        group = self.groups.get(key)
        if group is not None and self.pooled:
            return self._pooled(group, key, weights, indices)
        if is_counter(key):
            import torch

            total = sum(int(t.item()) for t in self.reader.read_all(key, indices))
            return torch.tensor(total, dtype=self.reader.read(indices[0], key).dtype)
        first = self.reader.read(indices[0], key)
        if not first.dtype.is_floating_point:
            return first  # equal in every input: checked before writing
        return linear.weighted_mean([first] + self.reader.read_all(key, indices[1:]), weights)

    def _pooled(self, group: BNKeys, key: str, weights: Sequence[float], indices: Sequence[int]):
        import torch

        from edgeseg.merge import bn

        cached = self._bn_cache.get(group.prefix)
        if cached is None:
            means = self.reader.read_all(group.mean, indices)
            variances = self.reader.read_all(group.var, indices)
            counts = (
                [int(t.item()) for t in self.reader.read_all(group.count, indices)]
                if group.count
                else [1] * len(indices)
            )
            cached = bn.merge_bn_statistics(means, variances, counts, weights)
            self._bn_cache[group.prefix] = cached
            self._bn_left[group.prefix] = len(group.keys)
        mean, var, count = cached
        if key == group.mean:
            out = mean
        elif key == group.var:
            out = var
        else:
            out = torch.tensor(count, dtype=self.reader.read(indices[0], key).dtype)
        self._bn_left[group.prefix] -= 1
        if not self._bn_left[group.prefix]:  # all three written: drop the cached statistics
            del self._bn_cache[group.prefix], self._bn_left[group.prefix]
        return out


def plan_uniform(
    tensors: dict[str, TensorInfo],
    merger: KeyMerger,
    keys: Sequence[str],
    weights: Sequence[float],
    num_inputs: int,
) -> list[Step]:
    """Every key in `keys` merged with the default rule and the same weights."""
    idx = list(range(num_inputs))
    return [Step(k, tensors[k], lambda k=k: merger.merge(k, weights, idx)) for k in keys]
