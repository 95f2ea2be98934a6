"""Dataset readers: one small spec per dataset over its directory layout as the dataset ships it.

Every reader yields `(image BGR uint8 HxWx3, label uint8 HxW in trainIds, 255 = ignore)`. A missing
folder, an image without its label, an unreadable file or an out-of-range label id is an error that
names the path - never a silent skip. Torch-free; `edgeseg.uda.batches` builds training batches from it.

    ds = load_dataset("cityscapes", "/data/cityscapes", "val")
    ds = load_dataset("synthetic", "data/synth", "val", domain="fog")
    image, label = ds[0]
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeseg.data.image_io import read_image, read_label
from edgeseg.data.labels import LABEL_MAPS
from edgeseg.errors import ConfigError, DatasetError, InputPathError


@dataclass(frozen=True)
class Sample:
    """One image and (for labelled splits) its label file, plus how to decode that file."""

    frame_id: str
    image: Path
    label: Path | None
    label_map: str = "trainIds"
    label_channel: int | None = None


# (root, split, domain, with_labels) -> samples, in a deterministic order.
Finder = Callable[[Path, str, "str | None", bool], list[Sample]]


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    splits: tuple[str, ...]
    domains: tuple[str, ...]
    default_domains: tuple[str, ...]
    unlabeled_splits: tuple[str, ...]
    find: Finder
    layout: str


def _require_dir(path: Path) -> Path:
    if not path.is_dir():
        raise DatasetError(
            f"missing folder {path}: check --data points at the dataset root and the split exists"
        )
    return path


def _label_for(image: Path, candidates: list[tuple[Path, str]]) -> tuple[Path, str]:
    """The first existing label candidate; none -> error naming the image and what was looked for."""
    for path, label_map in candidates:
        if path.is_file():
            return path, label_map
    expected = " or ".join(str(p) for p, _ in candidates)
    raise DatasetError(f"image {image} has no label: expected {expected}")


def _pair(
    images: list[Path],
    frame_id: Callable[[Path], str],
    labels: Callable[[Path], list[tuple[Path, str]]],
    with_labels: bool,
    channel: int | None = None,
) -> list[Sample]:
    samples = []
    for image in images:
        label, label_map = _label_for(image, labels(image)) if with_labels else (None, "trainIds")
        samples.append(Sample(frame_id(image), image, label, label_map, channel))
    return samples


def _strip(name: str, suffix: str) -> str:
    return name[: -len(suffix)] if name.endswith(suffix) else Path(name).stem


def _find_cityscapes(root: Path, split: str, domain: str | None, with_labels: bool) -> list[Sample]:
    images = sorted(_require_dir(root / "leftImg8bit" / split).glob("*/*_leftImg8bit.png"))
    gt = root / "gtFine" / split

    def labels(img: Path) -> list[tuple[Path, str]]:
        stem = _strip(img.name, "_leftImg8bit.png")
        return [
            (gt / img.parent.name / f"{stem}_gtFine_labelIds.png", "cityscapes-labelIds"),
            (gt / img.parent.name / f"{stem}_gtFine_labelTrainIds.png", "trainIds"),
        ]

    if with_labels:
        _require_dir(gt)
    return _pair(images, lambda p: _strip(p.name, "_leftImg8bit.png"), labels, with_labels)


def _find_synthetic(root: Path, split: str, domain: str | None, with_labels: bool) -> list[Sample]:
    # Each synthetic domain is a Cityscapes-layout tree of its own: the same reader path as real data.
    return _find_cityscapes(root / str(domain), split, None, with_labels)


def _find_gta5(root: Path, split: str, domain: str | None, with_labels: bool) -> list[Sample]:
    images = sorted(_require_dir(root / "images").glob("*.png"))
    if with_labels:
        _require_dir(root / "labels")
    return _pair(
        images, lambda p: p.stem, lambda p: [(root / "labels" / p.name, "cityscapes-labelIds")], with_labels
    )


def _synthia_finder(label_map: str) -> Finder:
    def find(root: Path, split: str, domain: str | None, with_labels: bool) -> list[Sample]:
        images = sorted(_require_dir(root / "RGB").glob("*.png"))
        if with_labels:
            _require_dir(root / "GT" / "LABELS")
        # GT/LABELS are 16-bit multi-channel PNGs: the class id is the R channel (index 2 in BGR).
        return _pair(
            images,
            lambda p: p.stem,
            lambda p: [(root / "GT" / "LABELS" / p.name, label_map)],
            with_labels,
            channel=2,
        )

    return find


def _find_acdc(root: Path, split: str, domain: str | None, with_labels: bool) -> list[Sample]:
    samples: list[Sample] = []
    for condition in [domain] if domain else list(ACDC_CONDITIONS):
        folder = _require_dir(root / "rgb_anon" / str(condition) / split)
        images = sorted(folder.glob("*/*_rgb_anon.png"))
        gt = root / "gt" / str(condition) / split

        def labels(img: Path, gt: Path = gt) -> list[tuple[Path, str]]:
            stem = _strip(img.name, "_rgb_anon.png")
            return [
                (gt / img.parent.name / f"{stem}_gt_labelIds.png", "cityscapes-labelIds"),
                (gt / img.parent.name / f"{stem}_gt_labelTrainIds.png", "trainIds"),
            ]

        samples += _pair(images, lambda p: _strip(p.name, "_rgb_anon.png"), labels, with_labels)
    return samples


def _find_dark_zurich(root: Path, split: str, domain: str | None, with_labels: bool) -> list[Sample]:
    images = sorted(_require_dir(root / "rgb_anon" / split / str(domain)).glob("*/*_rgb_anon.png"))
    gt = root / "gt" / split / str(domain)

    def labels(img: Path) -> list[tuple[Path, str]]:
        stem = _strip(img.name, "_rgb_anon.png")
        return [
            (gt / img.parent.name / f"{stem}_gt_labelIds.png", "cityscapes-labelIds"),
            (gt / img.parent.name / f"{stem}_gt_labelTrainIds.png", "trainIds"),
        ]

    return _pair(images, lambda p: _strip(p.name, "_rgb_anon.png"), labels, with_labels)


def _find_idd(root: Path, split: str, domain: str | None, with_labels: bool) -> list[Sample]:
    images = sorted(_require_dir(root / "leftImg8bit" / split).glob("*/*_leftImg8bit.png"))
    gt = root / "gtFine" / split
    if with_labels:
        _require_dir(gt)

    def labels(img: Path) -> list[tuple[Path, str]]:
        stem = _strip(img.name, "_leftImg8bit.png")
        return [(gt / img.parent.name / f"{stem}_gtFine_labellevel3Ids.png", "idd-level3")]

    # IDD frame names repeat across sequence folders, so the frame id carries the sequence.
    return _pair(
        images, lambda p: f"{p.parent.name}_{_strip(p.name, '_leftImg8bit.png')}", labels, with_labels
    )


_MAPILLARY_SPLITS = {"train": "training", "val": "validation", "test": "testing"}


def _find_mapillary(root: Path, split: str, domain: str | None, with_labels: bool) -> list[Sample]:
    base = _require_dir(root / _MAPILLARY_SPLITS.get(split, split))
    images = sorted(_require_dir(base / "images").glob("*.jpg"))
    # v1.2 releases keep labels under v1.2/labels; older trees (v1.0/1.1) directly under labels/.
    label_dir = base / "v1.2" / "labels" if (base / "v1.2" / "labels").is_dir() else base / "labels"
    if with_labels:
        _require_dir(label_dir)
    return _pair(
        images, lambda p: p.stem, lambda p: [(label_dir / f"{p.stem}.png", "mapillary-v1.2")], with_labels
    )


ACDC_CONDITIONS = ("fog", "night", "rain", "snow")
SYNTHETIC_DOMAINS = ("source", "city", "night", "fog", "rain")

DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            "cityscapes",
            ("train", "val", "test"),
            (),
            (),
            ("test",),
            _find_cityscapes,
            "leftImg8bit/{split}/{city}/*_leftImg8bit.png + gtFine/{split}/{city}/*_gtFine_labelIds.png",
        ),
        DatasetSpec(
            "synthetic",
            ("train", "val", "test"),
            SYNTHETIC_DOMAINS,
            (),
            (),
            _find_synthetic,
            "{domain}/leftImg8bit/{split}/{domain}/*_leftImg8bit.png + {domain}/gtFine/.../*_labelTrainIds.png",
        ),
        DatasetSpec(
            "gta5", ("train",), (), (), (), _find_gta5, "images/*.png + labels/*.png (Cityscapes ids)"
        ),
        DatasetSpec(
            "synthia",
            ("train",),
            (),
            (),
            (),
            _synthia_finder("synthia-16"),
            "RGB/*.png + GT/LABELS/*.png (16-bit, class id in R), 16-class protocol",
        ),
        DatasetSpec(
            "synthia13",
            ("train",),
            (),
            (),
            (),
            _synthia_finder("synthia-13"),
            "as synthia, 13-class protocol (wall, fence, pole ignored)",
        ),
        DatasetSpec(
            "acdc",
            ("train", "val", "test", "train_ref", "val_ref", "test_ref"),
            ACDC_CONDITIONS,
            ACDC_CONDITIONS,
            ("test", "train_ref", "val_ref", "test_ref"),
            _find_acdc,
            "rgb_anon/{condition}/{split}/{seq}/*_rgb_anon.png + gt/{condition}/{split}/{seq}/*_gt_labelIds.png",
        ),
        DatasetSpec(
            "dark_zurich",
            ("train", "val", "test"),
            ("night", "day", "twilight"),
            ("night",),
            ("train", "test"),
            _find_dark_zurich,
            "rgb_anon/{split}/{time}/{seq}/*_rgb_anon.png + gt/{split}/{time}/{seq}/*_gt_labelIds.png",
        ),
        DatasetSpec(
            "idd",
            ("train", "val", "test"),
            (),
            (),
            ("test",),
            _find_idd,
            "leftImg8bit/{split}/{seq}/*_leftImg8bit.png + gtFine/{split}/{seq}/*_gtFine_labellevel3Ids.png",
        ),
        DatasetSpec(
            "mapillary",
            ("train", "val", "test", "training", "validation", "testing"),
            (),
            (),
            ("test", "testing"),
            _find_mapillary,
            "{training,validation}/images/*.jpg + .../v1.2/labels/*.png (palette ids, v1.2)",
        ),
    )
}


class SegDataset:
    """An ordered list of samples with lazy, validated loading. `ds[i] -> (bgr, trainIds | None)`."""

    def __init__(
        self, spec: DatasetSpec, root: Path, split: str, domain: str | None, samples: list[Sample]
    ) -> None:
        self.spec, self.root, self.split, self.domain, self.samples = spec, root, split, domain, samples

    @property
    def name(self) -> str:
        return self.spec.name if self.domain is None else f"{self.spec.name}/{self.domain}"

    @property
    def has_labels(self) -> bool:
        return all(s.label is not None for s in self.samples)

    def __len__(self) -> int:
        return len(self.samples)

    def read_image(self, index: int) -> np.ndarray:
        return read_image(self.samples[index].image)

    def read_label(self, index: int) -> np.ndarray:
        sample = self.samples[index]
        if sample.label is None:
            raise DatasetError(f"{self.name} {self.split} is loaded without labels; {sample.image} has none")
        return read_label(sample.label, LABEL_MAPS[sample.label_map], sample.label_channel)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray | None]:
        sample = self.samples[index]
        image = self.read_image(index)
        if sample.label is None:
            return image, None
        label = self.read_label(index)
        if label.shape != image.shape[:2]:
            raise DatasetError(
                f"label {sample.label} is {label.shape[1]}x{label.shape[0]} but its image "
                f"{sample.image} is {image.shape[1]}x{image.shape[0]}; the pair does not match"
            )
        return image, label

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        for i in range(len(self)):
            yield self[i]


def list_datasets() -> list[str]:
    return sorted(DATASETS)


def get_spec(name: str) -> DatasetSpec:
    try:
        return DATASETS[name]
    except KeyError:
        raise ConfigError(f"unknown dataset {name!r}; choose one of: {', '.join(list_datasets())}") from None


def load_dataset(
    name: str, root: str | Path, split: str, domain: str | None = None, with_labels: bool | None = None
) -> SegDataset:
    """Index a dataset split (and domain/condition, where the dataset has them).

    `with_labels=None` means "labelled unless the split ships without labels" (e.g. Dark Zurich
    train); `False` lists images only (unlabelled target data for adaptation).
    """
    spec = get_spec(name)
    root = Path(root)
    if not root.is_dir():
        raise InputPathError(f"dataset root {root} does not exist; pass --data pointing at the {name} folder")
    if split not in spec.splits:
        raise ConfigError(f"{name} has no split {split!r}; choose one of: {', '.join(spec.splits)}")
    if spec.domains:
        if domain is None and not spec.default_domains:
            raise ConfigError(f"{name} needs a domain; choose one of: {', '.join(spec.domains)}")
        if domain is not None and domain not in spec.domains:
            raise ConfigError(f"{name} has no domain {domain!r}; choose one of: {', '.join(spec.domains)}")
        if domain is None and len(spec.default_domains) == 1:
            domain = spec.default_domains[0]
    elif domain is not None:
        raise ConfigError(f"{name} has no domains; drop --domain {domain}")
    if with_labels is None:
        with_labels = split not in spec.unlabeled_splits
    elif with_labels and split in spec.unlabeled_splits:
        raise ConfigError(f"{name} {split} ships without labels; evaluate on a labelled split")
    samples = spec.find(root, split, domain, with_labels)
    if not samples:
        raise DatasetError(f"no images found for {name} {split} under {root} (expected {spec.layout})")
    return SegDataset(spec, root, split, domain, samples)
