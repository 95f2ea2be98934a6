from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from edgeseg.cli import main
from edgeseg.data.datasets import list_datasets, load_dataset
from edgeseg.data.labels import CITYSCAPES_LABEL_IDS, IDD_LEVEL3, MAPILLARY_V12, SYNTHIA_13, SYNTHIA_16
from edgeseg.errors import ConfigError, DatasetError, InputPathError

RNG = np.random.default_rng(0)


def test_cityscapes_reads_label_ids_as_train_ids(data_trees: SimpleNamespace, tmp_path):
    ids = data_trees.make_cityscapes(tmp_path)
    ds = load_dataset("cityscapes", tmp_path, "val")
    assert [s.frame_id for s in ds.samples] == sorted(ids)
    img, lab = ds[0]
    raw = cv2.imread(str(ds.samples[0].label), cv2.IMREAD_UNCHANGED)
    assert img.shape == (data_trees.H, data_trees.W, 3) and img.dtype == np.uint8
    assert np.array_equal(lab, CITYSCAPES_LABEL_IDS.lut[raw])
    assert lab.max() == 255 and set(np.unique(lab)) <= set(range(19)) | {255}


def test_cityscapes_train_id_labels_also_load(data_trees: SimpleNamespace, tmp_path):
    data_trees.make_cityscapes(tmp_path, suffix="labelTrainIds")
    ds = load_dataset("cityscapes", tmp_path, "val")
    assert ds.samples[0].label.name.endswith("_gtFine_labelTrainIds.png")
    assert set(np.unique(ds[0][1])) <= set(range(19)) | {255}


def test_image_without_label_names_the_image(data_trees: SimpleNamespace, tmp_path):
    data_trees.make_cityscapes(tmp_path)
    orphan = data_trees.write(
        tmp_path / "leftImg8bit/val/bonn/bonn_000009_000019_leftImg8bit.png", data_trees.image(RNG)
    )
    with pytest.raises(DatasetError, match=f"{orphan}.*has no label"):
        load_dataset("cityscapes", tmp_path, "val")


def test_out_of_range_label_names_the_file(data_trees: SimpleNamespace, tmp_path):
    data_trees.make_cityscapes(tmp_path)
    bad = sorted((tmp_path / "gtFine/val/aachen").glob("*labelIds.png"))[0]
    lab = cv2.imread(str(bad), cv2.IMREAD_UNCHANGED)
    lab[0, 0] = 40
    data_trees.write(bad, lab)
    ds = load_dataset("cityscapes", tmp_path, "val")
    with pytest.raises(DatasetError, match=rf"{bad.name}.*\[40\].*outside"):
        ds[0]


def test_unreadable_files_name_the_file(data_trees: SimpleNamespace, tmp_path):
    data_trees.make_cityscapes(tmp_path)
    ds = load_dataset("cityscapes", tmp_path, "val")
    ds.samples[1].image.write_bytes(b"not a png")
    with pytest.raises(DatasetError, match=f"cannot read image {ds.samples[1].image}"):
        ds[1]
    ds.samples[2].label.write_bytes(b"\x89PNG\r\n\x1a\ntruncated")
    with pytest.raises(DatasetError, match=f"cannot read label {ds.samples[2].label}"):
        ds[2]


def test_size_mismatch_is_an_error(data_trees: SimpleNamespace, tmp_path):
    data_trees.make_cityscapes(tmp_path)
    ds = load_dataset("cityscapes", tmp_path, "val")
    data_trees.write(ds.samples[0].label, np.zeros((data_trees.H + 2, data_trees.W), np.uint8))
    with pytest.raises(DatasetError, match="does not match"):
        ds[0]


def test_missing_folders_and_bad_names(data_trees: SimpleNamespace, tmp_path):
    with pytest.raises(InputPathError):
        load_dataset("cityscapes", tmp_path / "nope", "val")
    with pytest.raises(DatasetError, match="missing folder .*leftImg8bit/val"):
        load_dataset("cityscapes", tmp_path, "val")
    data_trees.make_cityscapes(tmp_path)
    with pytest.raises(ConfigError, match="unknown dataset"):
        load_dataset("kitti", tmp_path, "val")
    with pytest.raises(ConfigError, match="no split"):
        load_dataset("cityscapes", tmp_path, "valid")
    (tmp_path / "gtFine").rename(tmp_path / "gt")
    with pytest.raises(DatasetError, match="missing folder .*gtFine/val"):
        load_dataset("cityscapes", tmp_path, "val")
    assert len(load_dataset("cityscapes", tmp_path, "val", with_labels=False)) == 4


def test_gta5_palette_labels(data_trees: SimpleNamespace, tmp_path):
    ids = np.array([[7, 26, 0, 33], [24, 23, 21, 11]], np.uint8).repeat(3, 0).repeat(2, 1)
    data_trees.write(tmp_path / "images/00001.png", data_trees.image(RNG, *ids.shape))
    data_trees.write_palette_png(tmp_path / "labels/00001.png", ids, data_trees.cityscapes_palette())
    ds = load_dataset("gta5", tmp_path, "train")
    assert np.array_equal(ds[0][1], CITYSCAPES_LABEL_IDS.lut[ids])


def test_gta5_ambiguous_palette_colour_is_an_error(data_trees: SimpleNamespace, tmp_path):
    ids = np.full((4, 4), 18, np.uint8)  # 'polegroup' shares its colour with 'pole' (17) but is ignored
    data_trees.write(tmp_path / "images/00002.png", data_trees.image(RNG, 4, 4))
    label = data_trees.write_palette_png(tmp_path / "labels/00002.png", ids, data_trees.cityscapes_palette())
    with pytest.raises(DatasetError, match=f"{label}.*shared by ids"):
        load_dataset("gta5", tmp_path, "train")[0]


def test_synthia_16_and_13_class_protocols(data_trees: SimpleNamespace, tmp_path):
    raw = np.array([[3, 21, 5, 7], [8, 1, 0, 22]], np.uint16).repeat(2, 0).repeat(2, 1)
    gt = np.zeros(raw.shape + (3,), np.uint16)
    gt[..., 2] = raw  # class id in R (BGR index 2); G holds instance ids
    gt[..., 1] = 4242
    data_trees.write(tmp_path / "RGB/0000001.png", data_trees.image(RNG, *raw.shape))
    data_trees.write(tmp_path / "GT/LABELS/0000001.png", gt)
    assert np.array_equal(load_dataset("synthia", tmp_path, "train")[0][1], SYNTHIA_16.lut[raw])
    lab13 = load_dataset("synthia13", tmp_path, "train")[0][1]
    assert np.array_equal(lab13, SYNTHIA_13.lut[raw]) and lab13[0, 2] == 255
    gt[0, 0, 2] = 30
    data_trees.write(tmp_path / "GT/LABELS/0000001.png", gt)
    with pytest.raises(DatasetError, match="outside the synthia-16 id range"):
        load_dataset("synthia", tmp_path, "train")[0]


def _acdc_like(
    data_trees: SimpleNamespace,
    root: Path,
    prefix: list[str],
    gt_prefix: list[str],
    seq: str = "GOPR0475",
    n: int = 2,
) -> None:
    for k in range(n):
        stem = f"{seq}_frame_{k:06d}"
        data_trees.write(root.joinpath(*prefix, seq, f"{stem}_rgb_anon.png"), data_trees.image(RNG))
        data_trees.write(
            root.joinpath(*gt_prefix, seq, f"{stem}_gt_labelTrainIds.png"),
            RNG.integers(0, 19, (data_trees.H, data_trees.W)).astype(np.uint8),
        )


def test_acdc_conditions(data_trees: SimpleNamespace, tmp_path):
    for cond in ("fog", "night", "rain", "snow"):
        _acdc_like(data_trees, tmp_path, ["rgb_anon", cond, "val"], ["gt", cond, "val"], seq=f"GP_{cond}")
    assert len(load_dataset("acdc", tmp_path, "val")) == 8
    fog = load_dataset("acdc", tmp_path, "val", domain="fog")
    assert len(fog) == 2 and fog.name == "acdc/fog" and fog.samples[0].frame_id == "GP_fog_frame_000000"
    assert fog[0][1].max() < 19
    with pytest.raises(ConfigError, match="no domain"):
        load_dataset("acdc", tmp_path, "val", domain="sand")


def test_dark_zurich_unlabelled_train_and_labelled_val(data_trees: SimpleNamespace, tmp_path):
    _acdc_like(data_trees, tmp_path, ["rgb_anon", "train", "night"], ["gt", "train", "night"], n=1)
    (tmp_path / "gt/train").rename(tmp_path / "unused")  # the real train split ships without labels
    _acdc_like(data_trees, tmp_path, ["rgb_anon", "val", "night"], ["gt", "val", "night"], n=2)
    train = load_dataset("dark_zurich", tmp_path, "train")
    assert not train.has_labels and train[0][1] is None
    val = load_dataset("dark_zurich", tmp_path, "val")
    assert val.has_labels and val.domain == "night" and val[1][1].shape == (data_trees.H, data_trees.W)
    with pytest.raises(ConfigError, match="without labels"):
        load_dataset("dark_zurich", tmp_path, "train", with_labels=True)


def test_idd_level3(data_trees: SimpleNamespace, tmp_path):
    raw = np.array([[0, 2, 3, 9], [1, 24, 255, 25]], np.uint8).repeat(2, 0).repeat(2, 1)
    for seq in ("201", "202"):
        data_trees.write(
            tmp_path / f"leftImg8bit/val/{seq}/frame0029_leftImg8bit.png", data_trees.image(RNG, *raw.shape)
        )
        data_trees.write(tmp_path / f"gtFine/val/{seq}/frame0029_gtFine_labellevel3Ids.png", raw)
    ds = load_dataset("idd", tmp_path, "val")
    assert [s.frame_id for s in ds.samples] == ["201_frame0029", "202_frame0029"]
    assert np.array_equal(ds[0][1], IDD_LEVEL3.lut[raw])
    assert ds[0][1][0, 0] == 0 and ds[0][1][0, 6] == 13 and ds[0][1][2, 4] == 255


def test_mapillary_v12_palette_labels(data_trees: SimpleNamespace, tmp_path):
    raw = np.array([[13, 55, 65, 19], [20, 30, 27, 45]], np.uint8).repeat(3, 0).repeat(3, 1)
    data_trees.write(tmp_path / "validation/images/abc123.jpg", data_trees.image(RNG, *raw.shape))
    data_trees.write_palette_png(
        tmp_path / "validation/v1.2/labels/abc123.png", raw, data_trees.distinct_palette()
    )
    ds = load_dataset("mapillary", tmp_path, "val")
    assert np.array_equal(ds[0][1], MAPILLARY_V12.lut[raw])
    data_trees.write_palette_png(
        tmp_path / "validation/v1.2/labels/abc123.png", raw + 100, data_trees.distinct_palette()
    )
    with pytest.raises(DatasetError, match="outside the mapillary-v1.2 id range"):
        ds[0]


def test_synthetic_loads_through_the_cityscapes_reader(tmp_path):
    from edgeseg.data.synthetic import render_dataset

    render_dataset(tmp_path, ["source", "fog"], num=2, size=(64, 128), seed=3, splits={"train": 2, "val": 1})
    fog = load_dataset("synthetic", tmp_path, "val", domain="fog")
    same = load_dataset("cityscapes", tmp_path / "fog", "val")
    assert [s.frame_id for s in fog.samples] == [s.frame_id for s in same.samples] == ["fog_000001_000000"]
    img, lab = fog[0]
    assert img.shape == (64, 128, 3) and lab.shape == (64, 128)
    assert np.array_equal(lab, same[0][1])
    with pytest.raises(ConfigError, match="needs a domain"):
        load_dataset("synthetic", tmp_path, "val")


def test_cli_eval_bad_input_is_one_line_nonzero(tmp_path, capsys):
    code = main(
        [
            "eval",
            "--predictions",
            str(tmp_path / "preds"),
            "--data",
            str(tmp_path / "missing"),
            "--dataset",
            "cityscapes",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code != 0 and err.count("\n") == 0 and "does not exist" in err


@pytest.mark.parametrize("name", list_datasets())
def test_every_registered_dataset_keeps_the_contract(tmp_path, name):
    """Each row of the dataset registry: consistent splits/domains, one-line errors on an empty tree."""
    from edgeseg.data.datasets import get_spec

    spec = get_spec(name)
    assert spec.name == name and spec.splits and spec.layout
    assert set(spec.unlabeled_splits) <= set(spec.splits) and set(spec.default_domains) <= set(spec.domains)
    labelled = next(s for s in spec.splits if s not in spec.unlabeled_splits)
    domain = spec.domains[0] if spec.domains else None
    with pytest.raises((DatasetError, InputPathError)):  # nothing there: says what layout it expected
        load_dataset(name, tmp_path, labelled, domain=domain)
    with pytest.raises(ConfigError, match="no split"):
        load_dataset(name, tmp_path, "no-such-split", domain=domain)
    with pytest.raises(InputPathError, match="does not exist"):
        load_dataset(name, tmp_path / "missing", labelled, domain=domain)
