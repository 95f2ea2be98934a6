import numpy as np
import pytest

from edgeseg.data import labels as L


def test_cityscapes_table_matches_official_scripts():
    official = pytest.importorskip("cityscapesscripts.helpers.labels")
    ours = {lab.id: lab for lab in L.CITYSCAPES_LABELS}
    theirs = [lab for lab in official.labels if lab.id >= 0]
    assert len(ours) == len(theirs) == 34
    for lab in theirs:
        mine = ours[lab.id]
        assert (mine.name, mine.train_id, mine.category, mine.ignore_in_eval, mine.color) == (
            lab.name,
            lab.trainId,
            lab.category,
            lab.ignoreInEval,
            lab.color,
        )
    train = sorted((lab.trainId, lab.name, lab.color) for lab in theirs if not lab.ignoreInEval)
    assert [n for _, n, _ in train] == list(L.CLASSES)
    assert [c for _, _, c in train] == list(L.PALETTE)


def test_label_id_lut_and_inverse_roundtrip():
    ids = np.arange(34, dtype=np.uint8)
    train = L.CITYSCAPES_LABEL_IDS.lut[ids]
    assert train[7] == 0 and train[26] == 13 and train[33] == 18
    assert train[0] == train[9] == train[29] == 255
    back = L.train_ids_to_label_ids(train)
    assert np.array_equal(back[train != 255], ids[train != 255])
    assert set(back[train == 255].tolist()) == {0}
    assert not L.CITYSCAPES_LABEL_IDS.valid[34]


def test_synthia_protocols():
    assert len(L.SYNTHIA_16_TRAIN_IDS) == 16 and len(L.SYNTHIA_13_TRAIN_IDS) == 13
    assert set(L.SYNTHIA_16_TRAIN_IDS) == set(L.SYNTHIA_ID_TO_TRAIN_ID.values())
    # wall (SYNTHIA 21), fence (5), pole (7) only in the 16-class protocol
    assert [int(L.SYNTHIA_16.lut[i]) for i in (21, 5, 7)] == [3, 4, 5]
    assert [int(L.SYNTHIA_13.lut[i]) for i in (21, 5, 7)] == [255, 255, 255]
    assert L.SYNTHIA_16.lut[3] == 0 and L.SYNTHIA_16.lut[8] == 13
    assert L.SYNTHIA_16.valid[22] and not L.SYNTHIA_16.valid[23]


def test_idd_and_mapillary_maps():
    assert len(L.IDD_LEVEL3_NAMES) == 26
    for raw, train in L.IDD_LEVEL3_TO_TRAIN_ID.items():
        name = L.IDD_LEVEL3_NAMES[raw]
        assert L.CLASSES[train] in name or (name, L.CLASSES[train]) in {
            ("person/animal", "person"),
            ("non-drivable fallback", "terrain"),
        }
    assert L.IDD_LEVEL3.valid[255] and not L.IDD_LEVEL3.valid[26]
    assert len(L.MAPILLARY_V12_NAMES) == 66
    m = L.MAPILLARY_V12.lut
    name = L.MAPILLARY_V12_NAMES.index
    assert m[name("construction--flat--road")] == 0
    assert m[name("object--vehicle--car")] == 13
    assert m[name("human--rider--motorcyclist")] == 12
    assert m[name("void--unlabeled")] == 255
    assert set(L.MAPILLARY_V12_TO_TRAIN_ID.values()) == set(range(19))


def test_colorize_uses_official_palette():
    out = L.colorize(np.array([[0, 13, 255]], np.uint8), bgr=False)
    assert out[0, 0].tolist() == [128, 64, 128]
    assert out[0, 1].tolist() == [0, 0, 142]
    assert out[0, 2].tolist() == [0, 0, 0]
