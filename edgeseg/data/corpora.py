"""Pretraining corpora (`edgeseg pretrain --corpus NAME`): a registry of generic image/label generators.

A corpus is one module exposing `render(rng, (h, w)) -> (BGR uint8 HxWx3, uint8 HxW labels)`,
`NUM_CLASSES`, `CORPUS_VERSION` and `class_names()`, plus one row below. Images are indexed, not streamed:
image `i` of stream `seed` is rendered from `corpus_rng(seed, i)` alone, so pretraining resumes exactly.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

from edgeseg.errors import ConfigError


@dataclass(frozen=True)
class Corpus:
    name: str
    module: str  # import path of the generator module
    render: str  # its render function
    summary: str

    def load(self) -> ModuleType:
        return importlib.import_module(self.module)


CORPORA: dict[str, Corpus] = {
    c.name: c
    for c in (
        Corpus(
            "shapes",
            "edgeseg.data.synth_generic",
            "render_generic",
            "dead-leaves shapes with random colours and three texture families (the first shipped encoders' corpus)",
        ),
        Corpus(
            "scenes",
            "edgeseg.data.synth_scenes",
            "render_scene",
            "random-coloured upright objects on a receding ground plane under a horizon (layout, no classes "
            "of the benchmark)",
        ),
        Corpus(
            "things",
            "edgeseg.data.synth_things",
            "render_things",
            "object categories (vehicles, people, two-wheelers, trees, poles, lights, signs) in random colours "
            "and textures over dead-leaves clutter: no street layout, no domain palette or camera effect",
        ),
    )
}


def get_corpus(name: str) -> Corpus:
    try:
        return CORPORA[name]
    except KeyError:
        raise ConfigError(f"--corpus {name!r}: choose one of {', '.join(CORPORA)}") from None
