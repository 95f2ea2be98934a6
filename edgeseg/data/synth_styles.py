"""What each synthetic domain looks like: per-class appearance, layout statistics and camera effects.

The domain shift lives in class appearance (a class's colours and texture differ between domains -
smooth saturated "game engine" surfaces in `source`, grainy desaturated real-world surfaces in the
targets), in layout statistics (road width, horizon, building height, traffic density) and in image
formation (blur, sensor noise, depth-dependent fog, night lighting, rain) - not in a global colour
change that per-image normalisation would undo.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

RGB = tuple[int, int, int]

# trainIds, named for readability in this module and the scene renderer.
ROAD, SIDEWALK, BUILDING, WALL, FENCE, POLE, LIGHT, SIGN, VEGETATION, TERRAIN, SKY = range(11)
PERSON, RIDER, CAR, TRUCK, BUS, TRAIN, MOTORCYCLE, BICYCLE = range(11, 19)


@dataclass(frozen=True)
class ClassLook:
    """How one class is painted: an anchor colour is drawn per object, then modulated by texture."""

    colors: tuple[RGB, ...]
    jitter: float = 0.08  # per-object brightness/tint jitter (fraction)
    tex_amp: float = 0.05  # multiplicative texture amplitude
    tex_scale: int = 0  # 0 = per-pixel grain, 1 = fine blotches, 2 = coarse blotches


@dataclass(frozen=True)
class Layout:
    """Scene geometry statistics (metres unless noted); ranges are sampled uniformly per image."""

    horizon: tuple[float, float] = (0.44, 0.52)  # fraction of image height
    focal: tuple[float, float] = (0.75, 0.95)  # fraction of image width
    road_half: tuple[float, float] = (5.0, 8.0)
    sidewalk: tuple[float, float] = (2.5, 4.5)
    setback: tuple[float, float] = (0.0, 3.0)  # grass verge between sidewalk and facade
    building_prob: float = 0.8  # per side; otherwise a park side (trees, terrain, fence)
    building_height: tuple[float, float] = (6.0, 22.0)
    block_length: tuple[float, float] = (10.0, 28.0)
    moving_cars: tuple[int, int] = (2, 6)
    parked_cars: tuple[int, int] = (0, 5)
    people: tuple[int, int] = (1, 6)
    two_wheelers: tuple[int, int] = (0, 3)
    truck_prob: float = 0.5
    bus_prob: float = 0.4
    train_prob: float = 0.15
    trees: tuple[int, int] = (2, 8)
    pole_spacing: tuple[float, float] = (14.0, 26.0)
    signs: tuple[int, int] = (1, 4)
    traffic_lights: tuple[int, int] = (0, 3)
    wall_prob: float = 0.35
    fence_prob: float = 0.4
    intersection_prob: float = 0.4
    ego_hood: float = 0.0  # height (fraction) of the camera car's bonnet at the bottom, labelled ignore


@dataclass(frozen=True)
class Effects:
    """Image formation after the scene is painted."""

    blur: tuple[float, float] = (0.0, 0.0)  # Gaussian sigma in pixels at 512 px width
    noise: tuple[float, float] = (0.0, 0.0)  # sensor noise sigma (0..255 units)
    saturation: float = 1.0
    contrast: float = 1.0
    brightness: float = 1.0
    vignette: float = 0.0
    sun_shading: float = 0.0  # hard left/right facade shading and cast shadows (sunny scenes)
    fog_visibility: tuple[float, float] | None = None  # metres where contrast drops to ~5%
    fog_color: RGB = (200, 204, 208)
    night: bool = False
    rain: float = 0.0  # streak density (0 = no rain)
    wet_road: float = 0.0  # strength of mirrored reflections on road/sidewalk


@dataclass(frozen=True)
class DomainStyle:
    name: str
    looks: dict[int, ClassLook]
    sky: tuple[RGB, RGB]  # zenith, horizon
    clouds: float
    window: tuple[RGB, ...]  # window glass colours
    layout: Layout = field(default_factory=Layout)
    effects: Effects = field(default_factory=Effects)


# Clean, saturated, smooth: the "game engine" look of GTA5/SYNTHIA-like source data.
SOURCE_LOOKS: dict[int, ClassLook] = {
    ROAD: ClassLook(((88, 84, 104), (100, 96, 110)), 0.05, 0.03, 2),
    SIDEWALK: ClassLook(((214, 160, 150), (226, 190, 140), (190, 170, 200)), 0.06, 0.04, 1),
    BUILDING: ClassLook(
        ((232, 196, 96), (96, 176, 210), (214, 110, 84), (156, 206, 128), (236, 232, 214), (186, 136, 214)),
        0.08,
        0.03,
        2,
    ),
    WALL: ClassLook(((196, 128, 72), (170, 170, 196)), 0.06, 0.04, 1),
    FENCE: ClassLook(((64, 72, 210), (40, 160, 90)), 0.06, 0.02, 0),
    POLE: ClassLook(((206, 208, 220), (60, 170, 60)), 0.05, 0.02, 0),
    LIGHT: ClassLook(((40, 40, 44), (230, 190, 20)), 0.05, 0.02, 0),
    SIGN: ClassLook(((240, 240, 240), (30, 90, 230), (240, 200, 20)), 0.04, 0.02, 0),
    VEGETATION: ClassLook(((62, 196, 58), (40, 170, 80), (110, 210, 60)), 0.08, 0.06, 2),
    TERRAIN: ClassLook(((176, 206, 84), (196, 190, 96)), 0.06, 0.04, 2),
    PERSON: ClassLook(
        ((230, 40, 40), (40, 90, 230), (250, 200, 30), (40, 190, 90), (240, 120, 30)), 0.08, 0.02, 0
    ),
    RIDER: ClassLook(((250, 110, 20), (230, 30, 120), (30, 200, 200)), 0.08, 0.02, 0),
    CAR: ClassLook(
        (
            (220, 30, 30),
            (30, 70, 220),
            (240, 200, 20),
            (30, 180, 60),
            (240, 120, 20),
            (150, 40, 200),
            (20, 190, 210),
        ),
        0.08,
        0.02,
        0,
    ),
    TRUCK: ClassLook(((246, 246, 246), (230, 120, 30), (60, 160, 230)), 0.05, 0.02, 0),
    BUS: ClassLook(((250, 200, 30), (220, 40, 40)), 0.05, 0.02, 0),
    TRAIN: ClassLook(((200, 30, 40), (30, 150, 220)), 0.05, 0.02, 0),
    MOTORCYCLE: ClassLook(((200, 20, 20), (20, 20, 20), (240, 140, 20)), 0.06, 0.02, 0),
    BICYCLE: ClassLook(((20, 180, 240), (240, 40, 160), (240, 220, 30)), 0.06, 0.02, 0),
}

# Real-world look: desaturated, grainy, worn; vehicles mostly grey/black/white.
CITY_LOOKS: dict[int, ClassLook] = {
    ROAD: ClassLook(((118, 118, 120), (104, 106, 108), (132, 130, 126)), 0.06, 0.16, 0),
    SIDEWALK: ClassLook(((156, 152, 142), (140, 140, 138), (170, 160, 150)), 0.06, 0.12, 1),
    BUILDING: ClassLook(
        ((184, 168, 142), (150, 96, 76), (120, 120, 124), (204, 198, 186), (160, 150, 120)), 0.10, 0.14, 0
    ),
    WALL: ClassLook(((150, 142, 130), (110, 104, 98)), 0.08, 0.16, 0),
    FENCE: ClassLook(((90, 94, 90), (130, 110, 90)), 0.08, 0.10, 0),
    POLE: ClassLook(((92, 96, 92), (120, 118, 112)), 0.08, 0.08, 0),
    LIGHT: ClassLook(((24, 26, 24), (60, 64, 58)), 0.06, 0.06, 0),
    SIGN: ClassLook(((226, 226, 220), (40, 80, 160), (200, 170, 40)), 0.06, 0.06, 0),
    VEGETATION: ClassLook(((64, 84, 38), (82, 96, 48), (50, 70, 40)), 0.10, 0.40, 0),
    TERRAIN: ClassLook(((118, 112, 72), (100, 110, 64)), 0.08, 0.28, 0),
    PERSON: ClassLook(
        ((40, 40, 46), (70, 66, 60), (110, 100, 90), (30, 40, 70), (140, 130, 120)), 0.10, 0.06, 0
    ),
    RIDER: ClassLook(((50, 50, 56), (90, 80, 70), (40, 60, 90)), 0.10, 0.06, 0),
    CAR: ClassLook(
        ((40, 40, 44), (190, 190, 194), (140, 142, 146), (224, 224, 226), (60, 70, 100), (110, 40, 40)),
        0.08,
        0.05,
        0,
    ),
    TRUCK: ClassLook(((200, 200, 196), (90, 96, 104), (150, 130, 100)), 0.08, 0.06, 0),
    BUS: ClassLook(((220, 222, 226), (180, 60, 50), (70, 110, 150)), 0.06, 0.05, 0),
    TRAIN: ClassLook(((190, 190, 190), (150, 40, 40), (230, 200, 60)), 0.06, 0.05, 0),
    MOTORCYCLE: ClassLook(((30, 30, 32), (90, 90, 96), (120, 30, 30)), 0.08, 0.05, 0),
    BICYCLE: ClassLook(((30, 30, 30), (90, 90, 90), (60, 80, 110)), 0.08, 0.05, 0),
}


def _tweak(
    looks: dict[int, ClassLook], scale: float, tex: float, **overrides: ClassLook
) -> dict[int, ClassLook]:
    """A variant of a look set: brightness `scale`, texture x`tex`, plus per-class replacements."""
    out = {}
    for cls, look in looks.items():
        colors = tuple(tuple(min(255, int(c * scale)) for c in col) for col in look.colors)
        out[cls] = replace(look, colors=colors, tex_amp=look.tex_amp * tex)  # type: ignore[arg-type]
    named = {
        "road": ROAD,
        "sidewalk": SIDEWALK,
        "vegetation": VEGETATION,
        "terrain": TERRAIN,
        "building": BUILDING,
    }
    for key, look in overrides.items():
        out[named[key]] = look
    return out


DOMAINS: dict[str, DomainStyle] = {
    "source": DomainStyle(
        "source",
        SOURCE_LOOKS,
        sky=((40, 110, 240), (150, 200, 255)),
        clouds=0.15,
        window=((150, 220, 250), (60, 120, 200)),
        layout=Layout(),
        effects=Effects(sun_shading=0.35, saturation=1.15),
    ),
    "city": DomainStyle(
        "city",
        CITY_LOOKS,
        sky=((196, 204, 212), (226, 228, 230)),
        clouds=0.5,
        window=((60, 66, 72), (90, 96, 104), (40, 44, 50)),
        layout=Layout(
            horizon=(0.38, 0.46),
            focal=(0.9, 1.1),
            road_half=(3.5, 6.0),
            sidewalk=(2.0, 3.5),
            setback=(0.0, 1.5),
            building_prob=0.9,
            building_height=(12.0, 30.0),
            block_length=(8.0, 18.0),
            moving_cars=(1, 4),
            parked_cars=(3, 9),
            people=(3, 10),
            two_wheelers=(1, 5),
            truck_prob=0.3,
            bus_prob=0.3,
            train_prob=0.2,
            trees=(3, 10),
            ego_hood=0.07,
        ),
        effects=Effects(blur=(0.6, 1.2), noise=(3.0, 6.0), saturation=0.8, contrast=0.9, vignette=0.25),
    ),
    "night": DomainStyle(
        "night",
        _tweak(CITY_LOOKS, 1.0, 0.8),
        sky=((6, 8, 18), (30, 30, 44)),
        clouds=0.0,
        window=((255, 214, 140), (30, 30, 36), (255, 236, 190)),
        layout=Layout(
            horizon=(0.40, 0.48),
            road_half=(4.0, 7.0),
            parked_cars=(2, 7),
            people=(1, 5),
            pole_spacing=(10.0, 18.0),
        ),
        effects=Effects(blur=(0.8, 1.4), noise=(6.0, 10.0), night=True, saturation=0.9),
    ),
    "fog": DomainStyle(
        "fog",
        _tweak(
            CITY_LOOKS,
            1.05,
            0.9,
            vegetation=ClassLook(((74, 92, 60), (90, 100, 70)), 0.10, 0.35, 0),
            terrain=ClassLook(((130, 130, 100), (120, 124, 96)), 0.08, 0.25, 0),
        ),
        sky=((200, 204, 208), (206, 208, 210)),
        clouds=0.0,
        window=((80, 86, 92), (110, 116, 120)),
        layout=Layout(horizon=(0.42, 0.50), road_half=(4.0, 7.5), building_prob=0.6, trees=(4, 12)),
        effects=Effects(blur=(0.8, 1.4), noise=(2.0, 4.0), fog_visibility=(35.0, 90.0), saturation=0.7),
    ),
    "rain": DomainStyle(
        "rain",
        _tweak(CITY_LOOKS, 0.72, 1.0, road=ClassLook(((70, 72, 76), (60, 62, 66)), 0.05, 0.10, 0)),
        sky=((110, 116, 124), (150, 154, 160)),
        clouds=0.6,
        window=((50, 54, 60), (80, 84, 90)),
        layout=Layout(horizon=(0.40, 0.48), road_half=(4.0, 7.0), people=(1, 5), two_wheelers=(0, 2)),
        effects=Effects(
            blur=(1.0, 1.6), noise=(3.0, 6.0), rain=1.0, wet_road=0.45, saturation=0.75, contrast=0.85
        ),
    ),
}
