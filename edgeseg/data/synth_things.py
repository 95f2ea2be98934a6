"""The `things` pretraining corpus: object categories under random appearance, the ImageNet part of ImageNet.

    bgr, label = render_things(np.random.default_rng(0), (96, 192))

`shapes` teaches outlines and textures, `scenes` a ground plane; neither knows what a car or a person looks
like, which is what ImageNet gives the MiT encoders the real presets start from (it holds photographs of
cars, buses, people, bicycles, trees, traffic lights and signs, in every colour and setting). This corpus
is that knowledge and nothing of a domain: each image is

- a `shapes` dead-leaves picture as clutter (labelled background, as ImageNet's backgrounds are unlabelled);
- 2-12 objects of the street-scene object models (vehicles, people, two-wheelers with riders, trees, lamp
  posts, traffic lights and signs) at random positions, distances and sizes, painted far to near;
- every colour uniform over RGB and each object overlaid with a random `shapes` texture family, so a
  category never has a colour or a surface of its own (the benchmark's palettes are never used).

The label of a pixel is the object part's category (13 classes, 0 = background). What it does NOT contain:
no road, sidewalk, building, wall, fence, terrain or sky, no street layout (objects float at any height over
clutter), no domain palette, no lighting model, shadows, fog, rain, wet reflections, camera blur, sensor
noise or vignetting, and none of the benchmark's renders (docs/data.md).
"""

from __future__ import annotations

import numpy as np

from edgeseg.data import synth_objects as obj
from edgeseg.data.labels import CLASSES
from edgeseg.data.synth_canvas import Camera, Canvas
from edgeseg.data.synth_generic import TEXTURES, _texture, render_generic
from edgeseg.data.synth_styles import (
    BICYCLE,
    BUS,
    CAR,
    LIGHT,
    MOTORCYCLE,
    PERSON,
    POLE,
    RIDER,
    SIGN,
    TRAIN,
    TRUCK,
    VEGETATION,
)

# The trainIds the object models paint, in corpus order (category i + 1; 0 = background). Names are the
# benchmark's, except that vegetation, which the object models paint only as trees here, is called "tree".
_PAINTED = (POLE, LIGHT, SIGN, VEGETATION, PERSON, RIDER, CAR, TRUCK, BUS, TRAIN, MOTORCYCLE, BICYCLE)
CATEGORIES = ("background", *("tree" if t == VEGETATION else CLASSES[t] for t in _PAINTED))
NUM_CLASSES = len(CATEGORIES)
CORPUS_VERSION = 1
# The benchmark's object classes this corpus knows by name, as ImageNet knows cars and people (a test holds
# every corpus to its declaration and forbids surface classes such as road, building or sky).
BENCHMARK_CATEGORIES = frozenset(CATEGORIES) & frozenset(CLASSES)
_LUT = np.zeros(256, np.uint8)  # trainId painted -> corpus category
_LUT[list(_PAINTED)] = np.arange(1, NUM_CLASSES, dtype=np.uint8)
KINDS = ("vehicle", "person", "two_wheeler", "tree", "lamp", "traffic_light", "traffic_sign")


def class_names() -> list[str]:
    return list(CATEGORIES)


def _rgb(rng: np.random.Generator) -> tuple[float, float, float]:
    c = rng.uniform(0.0, 1.0, 3)
    return float(c[0]), float(c[1]), float(c[2])


def _person(
    rng: np.random.Generator, cam: Camera, cls: int, x: float, z: float, base: float = 0.0
) -> obj.Draw:
    height = float(rng.uniform(1.55, 1.95))
    return obj.person(
        cam, cls, x, z, height, _rgb(rng), _rgb(rng), _rgb(rng), float(rng.uniform(0, 0.4)), base
    )


def _object(rng: np.random.Generator, kind: str, cam: Camera, x: float, z: float) -> obj.Draw:
    """One object model of `kind` at ground position (x, z), every colour random."""
    if kind == "vehicle":
        cls = (CAR, CAR, TRUCK, BUS, TRAIN)[int(rng.integers(5))]
        size = tuple(float(rng.uniform(*r)) for r in obj._SIZES[cls])
        return obj.vehicle(cam, cls, x, z, size, _rgb(rng), bool(rng.random() < 0.5), False, 0.0)  # type: ignore[arg-type]
    if kind == "person":
        return _person(rng, cam, PERSON, x, z)
    if kind == "two_wheeler":
        cls = BICYCLE if rng.random() < 0.5 else MOTORCYCLE
        rider = None
        if rng.random() < 0.7:
            rider = _person(rng, cam, RIDER, x - 0.1, z, base=0.85 if cls == BICYCLE else 0.8)
        return obj.two_wheeler(cam, cls, x, z, _rgb(rng), rider)
    if kind == "tree":
        return obj.tree(cam, x, z, rng, _rgb(rng), _rgb(rng))
    if kind == "lamp":
        side = -1 if rng.random() < 0.5 else 1
        return obj.street_lamp(cam, x, z, side, float(rng.uniform(5.0, 8.0)), _rgb(rng), False)
    if kind == "traffic_light":
        arm = float(rng.uniform(1.5, 3.0)) if rng.random() < 0.3 else 0.0
        return obj.traffic_light(cam, x, z, _rgb(rng), _rgb(rng), int(rng.integers(3)), False, arm)
    return obj.traffic_sign(cam, x, z, (_rgb(rng), _rgb(rng)), int(rng.integers(3)), _rgb(rng))


def render_things(
    rng: np.random.Generator, size: tuple[int, int] = (96, 192)
) -> tuple[np.ndarray, np.ndarray]:
    """One corpus image: (BGR uint8 HxWx3, uint8 HxW class ids in [0, NUM_CLASSES))."""
    h, w = size
    bgr, _ = render_generic(rng, size)
    img = bgr[..., ::-1].astype(np.float32)  # RGB, as the object models paint
    label = np.zeros((h, w), np.uint8)
    # An invisible camera only gives the object models their perspective; its horizon can be anywhere.
    cam = Camera(
        h,
        w,
        f=float(rng.uniform(0.6, 1.3)) * w,
        yh=float(rng.uniform(0.1, 0.7)) * h,
        xv=float(rng.uniform(0.2, 0.8)) * w,
    )
    n = int(rng.integers(2, 13))
    zs = np.sort(np.exp(rng.uniform(np.log(3.0), np.log(40.0), n)))[::-1]  # far to near
    for z in zs:
        u = rng.uniform(-0.05, 1.05) * w
        x = float((u - cam.xv) * z / cam.f)
        canvas = Canvas(h, w)
        _object(rng, KINDS[int(rng.integers(len(KINDS)))], cam, x, float(z))(canvas)
        mask = canvas.label != 255
        if not mask.any():
            continue
        # a random texture family over the object's own colours: no category keeps a surface
        t = _texture(rng, int(rng.integers(len(TEXTURES))), h, w)[..., None] * rng.uniform(0.0, 0.7)
        other = rng.uniform(0, 255, 3).astype(np.float32)
        surface = canvas.albedo * 255.0 * (1.0 - t) + other * t
        img[mask] = surface[mask]
        label[mask] = _LUT[canvas.label[mask]]
    out = np.clip(img, 0, 255).astype(np.uint8)[..., ::-1]
    return np.ascontiguousarray(out), label
