"""Class definitions: the 19 Cityscapes train classes and the maps into them from each dataset's own ids.

Pure numpy (no torch): the device side imports this for palettes and evaluation. Every map is a
256-entry (or 65536 for 16-bit ids) uint8 lookup table `lut[raw_id] -> trainId`, with 255 = ignore,
plus the set of raw ids the dataset can legitimately contain, so a reader can reject a label file
that holds values outside the dataset's id range instead of silently mapping them to "ignore".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

IGNORE_INDEX = 255
NUM_CLASSES = 19

CLASSES: tuple[str, ...] = (
    "road",
    "sidewalk",
    "building",
    "wall",
    "fence",
    "pole",
    "traffic light",
    "traffic sign",
    "vegetation",
    "terrain",
    "sky",
    "person",
    "rider",
    "car",
    "truck",
    "bus",
    "train",
    "motorcycle",
    "bicycle",
)

# Official Cityscapes colours (RGB) for trainIds 0..18 (cityscapesscripts/helpers/labels.py).
PALETTE: tuple[tuple[int, int, int], ...] = (
    (128, 64, 128),
    (244, 35, 232),
    (70, 70, 70),
    (102, 102, 156),
    (190, 153, 153),
    (153, 153, 153),
    (250, 170, 30),
    (220, 220, 0),
    (107, 142, 35),
    (152, 251, 152),
    (70, 130, 180),
    (220, 20, 60),
    (255, 0, 0),
    (0, 0, 142),
    (0, 0, 70),
    (0, 60, 100),
    (0, 80, 100),
    (0, 0, 230),
    (119, 11, 32),
)

# ImageNet statistics in 0..255 RGB units: what the pretrained MiT/SegFormer backbones expect.
IMAGENET_MEAN: tuple[float, float, float] = (123.675, 116.28, 103.53)
IMAGENET_STD: tuple[float, float, float] = (58.395, 57.12, 57.375)


@dataclass(frozen=True)
class CityscapesLabel:
    """One row of the official Cityscapes label table (what the official evaluation keys on)."""

    name: str
    id: int
    train_id: int
    category: str
    ignore_in_eval: bool
    color: tuple[int, int, int]


def _row(name: str, id_: int, train_id: int, category: str, color: tuple[int, int, int]) -> CityscapesLabel:
    return CityscapesLabel(name, id_, train_id, category, train_id == IGNORE_INDEX, color)


# labelIds 0..33 exactly as cityscapesscripts defines them ('license plate' (-1) never occurs in files).
CITYSCAPES_LABELS: tuple[CityscapesLabel, ...] = (
    _row("unlabeled", 0, 255, "void", (0, 0, 0)),
    _row("ego vehicle", 1, 255, "void", (0, 0, 0)),
    _row("rectification border", 2, 255, "void", (0, 0, 0)),
    _row("out of roi", 3, 255, "void", (0, 0, 0)),
    _row("static", 4, 255, "void", (0, 0, 0)),
    _row("dynamic", 5, 255, "void", (111, 74, 0)),
    _row("ground", 6, 255, "void", (81, 0, 81)),
    _row("road", 7, 0, "flat", (128, 64, 128)),
    _row("sidewalk", 8, 1, "flat", (244, 35, 232)),
    _row("parking", 9, 255, "flat", (250, 170, 160)),
    _row("rail track", 10, 255, "flat", (230, 150, 140)),
    _row("building", 11, 2, "construction", (70, 70, 70)),
    _row("wall", 12, 3, "construction", (102, 102, 156)),
    _row("fence", 13, 4, "construction", (190, 153, 153)),
    _row("guard rail", 14, 255, "construction", (180, 165, 180)),
    _row("bridge", 15, 255, "construction", (150, 100, 100)),
    _row("tunnel", 16, 255, "construction", (150, 120, 90)),
    _row("pole", 17, 5, "object", (153, 153, 153)),
    _row("polegroup", 18, 255, "object", (153, 153, 153)),
    _row("traffic light", 19, 6, "object", (250, 170, 30)),
    _row("traffic sign", 20, 7, "object", (220, 220, 0)),
    _row("vegetation", 21, 8, "nature", (107, 142, 35)),
    _row("terrain", 22, 9, "nature", (152, 251, 152)),
    _row("sky", 23, 10, "sky", (70, 130, 180)),
    _row("person", 24, 11, "human", (220, 20, 60)),
    _row("rider", 25, 12, "human", (255, 0, 0)),
    _row("car", 26, 13, "vehicle", (0, 0, 142)),
    _row("truck", 27, 14, "vehicle", (0, 0, 70)),
    _row("bus", 28, 15, "vehicle", (0, 60, 100)),
    _row("caravan", 29, 255, "vehicle", (0, 0, 90)),
    _row("trailer", 30, 255, "vehicle", (0, 0, 110)),
    _row("train", 31, 16, "vehicle", (0, 80, 100)),
    _row("motorcycle", 32, 17, "vehicle", (0, 0, 230)),
    _row("bicycle", 33, 18, "vehicle", (119, 11, 32)),
)


@dataclass(frozen=True)
class LabelMap:
    """How one dataset's raw label ids become trainIds.

    `lut[raw] -> trainId` (uint8, 255 = ignore); `valid[raw]` says whether `raw` may occur at all.
    """

    name: str
    lut: np.ndarray
    valid: np.ndarray

    def __post_init__(self) -> None:
        if self.lut.shape != self.valid.shape or self.lut.dtype != np.uint8:
            raise ValueError(f"label map {self.name}: lut/valid must be same-shape uint8/bool tables")


def build_label_map(
    name: str, mapping: dict[int, int], valid_ids: range | list[int], size: int = 256
) -> LabelMap:
    """Lookup table from `{raw_id: trainId}`; raw ids in `valid_ids` but not in `mapping` -> 255."""
    lut = np.full(size, IGNORE_INDEX, dtype=np.uint8)
    valid = np.zeros(size, dtype=bool)
    valid[list(valid_ids)] = True
    for raw, train_id in mapping.items():
        if not valid[raw]:
            raise ValueError(f"label map {name}: mapped id {raw} is not a valid raw id")
        lut[raw] = train_id
    return LabelMap(name, lut, valid)


CITYSCAPES_ID_TO_TRAIN_ID = {lab.id: lab.train_id for lab in CITYSCAPES_LABELS}
TRAIN_ID_TO_CITYSCAPES_ID = {lab.train_id: lab.id for lab in CITYSCAPES_LABELS if not lab.ignore_in_eval}

CITYSCAPES_LABEL_IDS = build_label_map("cityscapes-labelIds", CITYSCAPES_ID_TO_TRAIN_ID, range(34))
TRAIN_IDS = build_label_map(
    "trainIds", {i: i for i in range(NUM_CLASSES)}, [*range(NUM_CLASSES), IGNORE_INDEX]
)

# SYNTHIA-RAND-CITYSCAPES class ids (0 void .. 22 lanemarking) -> trainIds, as DAFormer's converter.
# SYNTHIA has no terrain, truck or train: 16 of the 19 classes exist.
SYNTHIA_ID_TO_TRAIN_ID = {
    3: 0,
    4: 1,
    2: 2,
    21: 3,
    5: 4,
    7: 5,
    15: 6,
    9: 7,
    6: 8,
    1: 10,
    10: 11,
    17: 12,
    8: 13,
    19: 15,
    12: 17,
    11: 18,
}
SYNTHIA_16_TRAIN_IDS: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 15, 17, 18)
# The 13-class protocol also drops wall, fence and pole.
SYNTHIA_13_TRAIN_IDS: tuple[int, ...] = tuple(c for c in SYNTHIA_16_TRAIN_IDS if c not in (3, 4, 5))
SYNTHIA_16 = build_label_map("synthia-16", SYNTHIA_ID_TO_TRAIN_ID, range(23), size=65536)
SYNTHIA_13 = build_label_map(
    "synthia-13",
    {k: v for k, v in SYNTHIA_ID_TO_TRAIN_ID.items() if v in SYNTHIA_13_TRAIN_IDS},
    range(23),
    size=65536,
)

# IDD level3Ids (0..25, 255 = unlabelled) -> the 19 Cityscapes classes. Level 3 merges some Cityscapes
# classes: `non-drivable fallback` (incl. rail track) is IDD's terrain; `vehicle fallback` (caravan,
# trailer, train...) has no single Cityscapes class and is ignored, as are curb, guard rail, billboard,
# autorickshaw, parking/drivable fallback and the object/background fallbacks.
IDD_LEVEL3_NAMES: tuple[str, ...] = (
    "road",
    "parking/drivable fallback",
    "sidewalk",
    "non-drivable fallback",
    "person/animal",
    "rider",
    "motorcycle",
    "bicycle",
    "autorickshaw",
    "car",
    "truck",
    "bus",
    "vehicle fallback",
    "curb",
    "wall",
    "fence",
    "guard rail",
    "billboard",
    "traffic sign",
    "traffic light",
    "pole",
    "obs-str-bar-fallback",
    "building",
    "vegetation",
    "sky",
    "fallback background",
)
IDD_LEVEL3_TO_TRAIN_ID = {
    0: 0,
    2: 1,
    3: 9,
    4: 11,
    5: 12,
    6: 17,
    7: 18,
    9: 13,
    10: 14,
    11: 15,
    14: 3,
    15: 4,
    18: 7,
    19: 6,
    20: 5,
    22: 2,
    23: 8,
    24: 10,
}
IDD_LEVEL3 = build_label_map("idd-level3", IDD_LEVEL3_TO_TRAIN_ID, [*range(26), 255])

# Mapillary Vistas v1.2 (66 classes, ids 0..65) -> 19 classes, keyed by the official class names so the
# choice is reviewable. Lane markings, manholes and potholes are part of the road surface; curbs and
# pedestrian areas are sidewalk; all supports (street lights, sign frames, utility poles) are poles.
MAPILLARY_V12_NAMES: tuple[str, ...] = (
    "animal--bird",
    "animal--ground-animal",
    "construction--barrier--curb",
    "construction--barrier--fence",
    "construction--barrier--guard-rail",
    "construction--barrier--other-barrier",
    "construction--barrier--wall",
    "construction--flat--bike-lane",
    "construction--flat--crosswalk-plain",
    "construction--flat--curb-cut",
    "construction--flat--parking",
    "construction--flat--pedestrian-area",
    "construction--flat--rail-track",
    "construction--flat--road",
    "construction--flat--service-lane",
    "construction--flat--sidewalk",
    "construction--structure--bridge",
    "construction--structure--building",
    "construction--structure--tunnel",
    "human--person",
    "human--rider--bicyclist",
    "human--rider--motorcyclist",
    "human--rider--other-rider",
    "marking--crosswalk-zebra",
    "marking--general",
    "nature--mountain",
    "nature--sand",
    "nature--sky",
    "nature--snow",
    "nature--terrain",
    "nature--vegetation",
    "nature--water",
    "object--banner",
    "object--bench",
    "object--bike-rack",
    "object--billboard",
    "object--catch-basin",
    "object--cctv-camera",
    "object--fire-hydrant",
    "object--junction-box",
    "object--mailbox",
    "object--manhole",
    "object--phone-booth",
    "object--pothole",
    "object--street-light",
    "object--support--pole",
    "object--support--traffic-sign-frame",
    "object--support--utility-pole",
    "object--traffic-light",
    "object--traffic-sign--back",
    "object--traffic-sign--front",
    "object--trash-can",
    "object--vehicle--bicycle",
    "object--vehicle--boat",
    "object--vehicle--bus",
    "object--vehicle--car",
    "object--vehicle--caravan",
    "object--vehicle--motorcycle",
    "object--vehicle--on-rails",
    "object--vehicle--other-vehicle",
    "object--vehicle--trailer",
    "object--vehicle--truck",
    "object--vehicle--wheeled-slow",
    "void--car-mount",
    "void--ego-vehicle",
    "void--unlabeled",
)
_MAPILLARY_NAME_TO_CLASS = {
    "construction--flat--road": "road",
    "construction--flat--bike-lane": "road",
    "construction--flat--crosswalk-plain": "road",
    "construction--flat--service-lane": "road",
    "marking--crosswalk-zebra": "road",
    "marking--general": "road",
    "object--manhole": "road",
    "object--pothole": "road",
    "construction--flat--sidewalk": "sidewalk",
    "construction--barrier--curb": "sidewalk",
    "construction--flat--curb-cut": "sidewalk",
    "construction--flat--pedestrian-area": "sidewalk",
    "construction--structure--building": "building",
    "construction--barrier--wall": "wall",
    "construction--barrier--fence": "fence",
    "object--support--pole": "pole",
    "object--support--utility-pole": "pole",
    "object--support--traffic-sign-frame": "pole",
    "object--street-light": "pole",
    "object--traffic-light": "traffic light",
    "object--traffic-sign--front": "traffic sign",
    "nature--vegetation": "vegetation",
    "nature--terrain": "terrain",
    "nature--sand": "terrain",
    "nature--sky": "sky",
    "human--person": "person",
    "human--rider--bicyclist": "rider",
    "human--rider--motorcyclist": "rider",
    "human--rider--other-rider": "rider",
    "object--vehicle--car": "car",
    "object--vehicle--truck": "truck",
    "object--vehicle--bus": "bus",
    "object--vehicle--on-rails": "train",
    "object--vehicle--motorcycle": "motorcycle",
    "object--vehicle--bicycle": "bicycle",
}
MAPILLARY_V12_TO_TRAIN_ID = {
    MAPILLARY_V12_NAMES.index(name): CLASSES.index(cls) for name, cls in _MAPILLARY_NAME_TO_CLASS.items()
}
MAPILLARY_V12 = build_label_map("mapillary-v1.2", MAPILLARY_V12_TO_TRAIN_ID, range(len(MAPILLARY_V12_NAMES)))

LABEL_MAPS: dict[str, LabelMap] = {
    m.name: m for m in (CITYSCAPES_LABEL_IDS, TRAIN_IDS, SYNTHIA_16, SYNTHIA_13, IDD_LEVEL3, MAPILLARY_V12)
}


def palette_array() -> np.ndarray:
    """(256, 3) uint8 RGB table: trainIds -> official colours, everything else (ignore) black."""
    table = np.zeros((256, 3), dtype=np.uint8)
    table[:NUM_CLASSES] = np.asarray(PALETTE, dtype=np.uint8)
    return table


def colorize(train_ids: np.ndarray, bgr: bool = True) -> np.ndarray:
    """HxW trainIds -> HxWx3 colour image (BGR by default, what cv2.imwrite expects)."""
    rgb = palette_array()[train_ids]
    return rgb[..., ::-1].copy() if bgr else rgb


def train_ids_to_label_ids(train_ids: np.ndarray) -> np.ndarray:
    """trainIds -> Cityscapes labelIds (for the official scripts); ignore/unknown -> 0 ('unlabeled')."""
    lut = np.zeros(256, dtype=np.uint8)
    for train_id, label_id in TRAIN_ID_TO_CITYSCAPES_ID.items():
        lut[train_id] = label_id
    return lut[train_ids]
