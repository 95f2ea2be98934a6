import json

import cv2
import numpy as np
import pytest

from edgeseg.cli import main
from edgeseg.data.datasets import load_dataset
from edgeseg.data.labels import CLASSES
from edgeseg.data.synthetic import render_scene, scene_rng

SIZE = (96, 192)


def _scenes(domain, n, seed=0, size=SIZE):
    return [render_scene(scene_rng(seed, domain, "train", i), domain, size) for i in range(n)]


def test_deterministic_per_seed():
    a_img, a_lab = render_scene(scene_rng(5, "rain", "train", 3), "rain", SIZE)
    b_img, b_lab = render_scene(scene_rng(5, "rain", "train", 3), "rain", SIZE)
    c_img, _ = render_scene(scene_rng(6, "rain", "train", 3), "rain", SIZE)
    assert np.array_equal(a_img, b_img) and np.array_equal(a_lab, b_lab)
    assert not np.array_equal(a_img, c_img)
    assert a_img.shape == SIZE + (3,) and a_img.dtype == np.uint8 and a_lab.dtype == np.uint8


def test_all_19_classes_appear_and_labels_are_valid():
    seen = np.zeros(256, np.int64)
    for _, lab in _scenes("source", 24, size=(128, 256)):
        seen += np.bincount(lab.ravel(), minlength=256)
    assert all(seen[c] > 0 for c in range(19)), [CLASSES[c] for c in range(19) if seen[c] == 0]
    assert seen[19:].sum() == 0  # no ignore pixels in source (no ego bonnet there)


def test_city_has_an_ignored_ego_bonnet():
    _, lab = _scenes("city", 1)[0]
    assert (lab[-1] == 255).all() and (lab[: SIZE[0] // 2] != 255).all()


def _class_colour_stats(domain, cls, n=12):
    """Mean per-image-normalised Lab colour and texture energy of one class across scenes."""
    cols, tex = [], []
    for img, lab in _scenes(domain, n):
        m = lab == cls
        if m.sum() < 30:
            continue
        f = img.astype(np.float32)
        f = (f - f.mean((0, 1))) / (f.std((0, 1)) + 1e-6)  # what input normalisation would undo
        cols.append(f[m].mean(0))
        lap = np.abs(cv2.Laplacian(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(np.float32), cv2.CV_32F))
        tex.append(lap[cv2.erode(m.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0].mean())
    return np.mean(cols, 0), float(np.mean(tex))


@pytest.mark.parametrize("cls", [13, 8, 0])  # car, vegetation, road
def test_domain_shift_is_in_class_appearance(cls):
    src_col, src_tex = _class_colour_stats("source", cls)
    city_col, city_tex = _class_colour_stats("city", cls)
    # Even after per-image normalisation the class looks different, and its texture differs.
    assert np.abs(src_col - city_col).max() > 0.25 or abs(city_tex - src_tex) > 0.5 * src_tex
    if cls in (8, 0):
        assert city_tex > 1.5 * src_tex  # grainy real-world surfaces vs smooth "game" surfaces


def test_fog_hides_distant_things():
    def far_contrast(domain):
        vals = []
        for img, _lab in _scenes(domain, 6):
            row = int(SIZE[0] * 0.45)
            band = img[row - 4 : row + 4].astype(np.float32)
            vals.append(band.std())
        return np.mean(vals)

    assert far_contrast("fog") < 0.6 * far_contrast("source")


def test_night_is_dark_with_lights():
    img, _ = _scenes("night", 1)[0]
    gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    assert np.median(gray) < 70 and gray.max() > 200


def test_cli_synth_writes_a_loadable_tree(tmp_path, capsys):
    out = tmp_path / "synth"
    code = main(
        [
            "data",
            "synth",
            "--out",
            str(out),
            "--domains",
            "source,night",
            "--num",
            "2",
            "--val-num",
            "1",
            "--size",
            "64x128",
            "--seed",
            "4",
        ]
    )
    assert code == 0, capsys.readouterr().err
    manifest = json.loads((out / "synthetic.json").read_text())
    assert manifest["domains"] == ["source", "night"] and manifest["splits"] == {"train": 2, "val": 1}
    night = load_dataset("synthetic", out, "train", domain="night")
    assert len(night) == 2 and night[1][0].shape == (64, 128, 3)
    expected = render_scene(scene_rng(4, "night", "train", 1), "night", (64, 128))
    assert np.array_equal(night[1][1], expected[1]) and np.array_equal(night[1][0], expected[0])


@pytest.mark.parametrize(
    "args,message",
    [
        (["--size", "100x7"], ">= 64"),
        (["--size", "100x72"], "multiples of 8"),
        (["--domains", "source,mars"], "unknown synthetic domain"),
    ],
)
def test_cli_synth_bad_arguments(tmp_path, capsys, args, message):
    assert main(["data", "synth", "--out", str(tmp_path), "--num", "1", *args]) != 0
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_ensure_dataset_reuses_a_matching_rendering(tmp_path):
    from edgeseg.data.synthetic import ensure_dataset, image_paths

    ensure_dataset(tmp_path, ["fog"], num=1, size=(64, 128), seed=1, splits={"train": 1})
    image, _ = image_paths(tmp_path, "fog", "train", 0)
    image.write_bytes(b"marker")  # untouched if nothing is re-rendered
    ensure_dataset(tmp_path, ["fog"], num=1, size=(64, 128), seed=1, splits={"train": 1})
    assert image.read_bytes() == b"marker"
    ensure_dataset(tmp_path, ["fog"], num=1, size=(64, 128), seed=2, splits={"train": 1})
    assert image.read_bytes() != b"marker"


def test_test_split_is_its_own_stream(tmp_path):
    """`test` (final numbers only) renders from another random stream than train and val, and loads."""
    from edgeseg.data.datasets import load_dataset
    from edgeseg.data.synthetic import render_dataset

    render_dataset(tmp_path, ["city"], size=(64, 128), seed=0, splits={"val": 1, "test": 1})
    val = load_dataset("synthetic", tmp_path, "val", domain="city")
    test = load_dataset("synthetic", tmp_path, "test", domain="city")
    assert len(test) == 1 and not np.array_equal(val[0][0], test[0][0])
