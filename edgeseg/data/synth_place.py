"""Where things go: sample the objects of one street scene from the domain's layout statistics."""

from __future__ import annotations

import numpy as np

from edgeseg.data import synth_objects as obj
from edgeseg.data.synth_background import Street
from edgeseg.data.synth_canvas import Camera, scaled
from edgeseg.data.synth_styles import (
    BICYCLE,
    BUS,
    CAR,
    FENCE,
    LIGHT,
    MOTORCYCLE,
    PERSON,
    POLE,
    RIDER,
    SIGN,
    TRAIN,
    TRUCK,
    VEGETATION,
    WALL,
    DomainStyle,
)

# (layer, depth, draw): layer 0 = things behind the sidewalk (walls, fences, verge trees) drawn first.
Placed = tuple[int, float, obj.Draw]


class _Lanes:
    """Occupied depth intervals per lane, so vehicles and crossing people do not interpenetrate."""

    def __init__(self, st: Street) -> None:
        self.centres = [x for x, _ in st.lanes]
        self.busy: dict[float, list[tuple[float, float]]] = {x: [] for x in self.centres}

    def lane_of(self, x: float) -> float | None:
        near = [c for c in self.centres if abs(c - x) < 2.2]
        return min(near, key=lambda c: abs(c - x)) if near else None

    def take(self, x: float, z0: float, z1: float) -> bool:
        lane = self.lane_of(x)
        if lane is None:
            return True
        if any(z0 < b + 1.5 and a - 1.5 < z1 for a, b in self.busy[lane]):
            return False
        self.busy[lane].append((z0, z1))
        return True


def _size(rng: np.random.Generator, cls: int) -> tuple[float, float, float]:
    w, h, length = obj._SIZES[cls]
    return float(rng.uniform(*w)), float(rng.uniform(*h)), float(rng.uniform(*length))


def place_objects(
    rng: np.random.Generator, cam: Camera, st: Street, style: DomainStyle, night: bool, sun: float
) -> list[Placed]:
    lay = style.layout
    lanes = _Lanes(st)
    out: list[Placed] = []

    def add_vehicle(cls: int, x: float, direction: int, z_min: float) -> None:
        size = _size(rng, cls)
        for _ in range(6):
            z = float(rng.uniform(z_min, max(z_min + 1.0, st.z_end - size[2] * 0.5)))
            if lanes.take(x, z, z + size[2]):
                out.append(
                    (
                        1,
                        z,
                        obj.vehicle(
                            cam, cls, x, z, size, obj.pick(rng, style, cls), direction < 0, night, sun
                        ),
                    )
                )
                return

    for _ in range(int(rng.integers(*lay.moving_cars, endpoint=True))):
        x, d = st.lanes[int(rng.integers(len(st.lanes)))]
        add_vehicle(CAR, x + rng.uniform(-0.3, 0.3), d, 8.0 if x == 0.0 else 4.0)
    for cls, p in ((TRUCK, lay.truck_prob), (BUS, lay.bus_prob)):
        if rng.random() < p:
            x, d = st.lanes[int(rng.integers(len(st.lanes)))]
            add_vehicle(cls, x, d, 10.0 if x == 0.0 else 5.0)
    if st.tram_x is not None:
        add_vehicle(TRAIN, st.tram_x, -1, 8.0)
    for _ in range(int(rng.integers(*lay.parked_cars, endpoint=True))):
        side = -1 if rng.random() < 0.5 else 1
        if side > 0 and not 3.3 < st.road_r <= 4.6:
            continue  # no room to park on the right without blocking the camera's lane
        x = side * (st.edge(side) - 1.05)
        add_vehicle(CAR, x, 1, 3.0)

    for _ in range(int(rng.integers(*lay.people, endpoint=True))):
        height = float(rng.uniform(1.55, 1.95))
        legs = scaled(obj.pick(rng, style, PERSON), 0.55)
        if rng.random() < 0.75 or not st.lanes:
            side = -1 if rng.random() < 0.5 else 1
            x = side * (st.edge(side) + rng.uniform(0.4, max(0.5, st.sidewalk - 0.3)))
            z = float(rng.uniform(3.0, st.z_end - 5.0))
        else:
            x = float(rng.uniform(-st.road_l + 0.5, st.road_r - 0.5))
            z = float(st.intersection[0] - 2.5 if st.intersection else rng.uniform(6.0, 40.0))
            if not lanes.take(x, z - 0.4, z + 0.4):
                continue
        out.append(
            (
                1,
                z,
                obj.person(
                    cam,
                    PERSON,
                    x,
                    z,
                    height,
                    obj.pick(rng, style, PERSON),
                    legs,
                    obj.skin(rng),
                    float(rng.uniform(-1, 1)),
                ),
            )
        )

    for _ in range(int(rng.integers(*lay.two_wheelers, endpoint=True))):
        cls = BICYCLE if rng.random() < 0.6 else MOTORCYCLE
        ridden = rng.random() < 0.6
        if ridden:
            x = float(rng.uniform(0.6, max(0.8, st.road_r - 0.6)))
            z = float(rng.uniform(7.0, 35.0))
            if not lanes.take(x, z - 1.0, z + 1.0):
                continue
            rider = obj.person(
                cam,
                RIDER,
                x - 0.1,
                z,
                float(rng.uniform(1.6, 1.9)),
                obj.pick(rng, style, RIDER),
                scaled(obj.pick(rng, style, RIDER), 0.5),
                obj.skin(rng),
                0.0,
                base=0.85 if cls == BICYCLE else 0.8,
            )
        else:
            side = -1 if rng.random() < 0.5 else 1
            x = side * (st.edge(side) + st.sidewalk * rng.uniform(0.3, 0.7))
            z = float(rng.uniform(3.0, 30.0))
            rider = None
        out.append((1, z, obj.two_wheeler(cam, cls, x, z, obj.pick(rng, style, cls), rider)))

    pole_rgb = obj.pick(rng, style, POLE)
    for side in (-1, 1):
        z = float(rng.uniform(3.0, lay.pole_spacing[0]))
        while z < st.z_end - 4.0:
            if not st.in_intersection(z, 1.0):
                out.append(
                    (
                        1,
                        z,
                        obj.street_lamp(
                            cam,
                            side * (st.edge(side) + 0.45),
                            z,
                            side,
                            float(rng.uniform(6.0, 8.5)),
                            pole_rgb,
                            night,
                        ),
                    )
                )
            z += float(rng.uniform(*lay.pole_spacing))
    sign_colors = style.looks[SIGN].colors
    for _ in range(int(rng.integers(*lay.signs, endpoint=True))):
        side = -1 if rng.random() < 0.5 else 1
        z = float(rng.uniform(4.0, st.z_end * 0.7))
        i, j = rng.choice(len(sign_colors), size=2, replace=False)
        pair = (np.asarray(sign_colors[i]) / 255.0, np.asarray(sign_colors[j]) / 255.0)
        out.append(
            (
                1,
                z,
                obj.traffic_sign(
                    cam,
                    side * (st.edge(side) + 0.7),
                    z,
                    (tuple(pair[0].tolist()), tuple(pair[1].tolist())),  # type: ignore[arg-type]
                    int(rng.integers(3)),
                    pole_rgb,
                ),
            )
        )
    light_spots = []
    if st.intersection is not None:
        z0 = st.intersection[0] - 0.5
        light_spots += [(-1, z0, 0.0), (1, z0, -float(rng.uniform(2.0, 4.0)))]
    light_spots += [
        (-1 if rng.random() < 0.5 else 1, float(rng.uniform(8.0, st.z_end * 0.6)), 0.0)
        for _ in range(int(rng.integers(*lay.traffic_lights, endpoint=True)))
    ]
    for side, z, arm in light_spots:
        out.append(
            (
                1,
                z,
                obj.traffic_light(
                    cam,
                    side * (st.edge(side) + 0.5),
                    z,
                    obj.pick(rng, style, LIGHT),
                    pole_rgb,
                    int(rng.integers(3)),
                    night,
                    arm,
                ),
            )
        )

    trunk = (0.32, 0.24, 0.16)
    for _ in range(int(rng.integers(*lay.trees, endpoint=True))):
        side = -1 if rng.random() < 0.5 else 1
        i = 0 if side < 0 else 1
        z = float(rng.uniform(3.0, st.z_end - 3.0))
        if st.in_intersection(z, 2.0):
            continue
        if not st.buildings[i]:
            x, layer = side * (st.edge(side) + st.sidewalk + rng.uniform(1.0, 8.0)), 0
        elif st.setback[i] > 1.5:
            x, layer = side * (st.edge(side) + st.sidewalk + st.setback[i] / 2), 0
        else:
            x, layer = side * (st.edge(side) + st.sidewalk - 0.6), 1
        out.append((layer, z, obj.tree(cam, x, z, rng, obj.pick(rng, style, VEGETATION), trunk)))

    for side in (-1, 1):
        park = not st.buildings[0 if side < 0 else 1]
        for cls, p in ((WALL, lay.wall_prob), (FENCE, lay.fence_prob * (1.6 if park else 1.0))):
            if rng.random() >= p:
                continue
            z0 = float(rng.uniform(2.0, st.z_end * 0.5))
            z1 = z0 + float(rng.uniform(6.0, 25.0))
            if st.intersection is not None and z0 < st.intersection[1] and z1 > st.intersection[0]:
                z1 = st.intersection[0] - 0.5
            if z1 - z0 < 2.0:
                continue
            x = side * (st.edge(side) + st.sidewalk + (0.05 if cls == WALL else 0.15))
            out.append(
                (
                    0,
                    z0,
                    obj.wall_or_fence(
                        cam, cls, x, z0, z1, float(rng.uniform(0.9, 2.2)), obj.pick(rng, style, cls)
                    ),
                )
            )
    return out


def paint_order(placed: list[Placed]) -> list[obj.Draw]:
    """Layer 0 first, then far to near within a layer (painter's algorithm)."""
    return [draw for _, _, draw in sorted(placed, key=lambda p: (p[0], -p[1]))]
