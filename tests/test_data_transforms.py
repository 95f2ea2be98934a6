import numpy as np
import pytest

from edgeseg.data.labels import IMAGENET_MEAN, IMAGENET_STD
from edgeseg.data.transforms import (
    TrainTransform,
    normalize,
    pad_to,
    photometric_distortion,
    random_crop,
    random_flip,
    rescale,
)


def _pair(h=40, w=60, seed=0):
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    lab = (np.arange(w)[None, :] // 10 * np.ones((h, 1), int)).astype(np.uint8)  # vertical class stripes
    return img, lab


def test_rescale_keeps_ratio_and_label_values():
    img, lab = _pair()
    out_img, out_lab = rescale(img, lab, (120, 80), ratio=1.0)  # fits 120x80 box: 40x60 -> 80x120
    assert out_img.shape == (80, 120, 3) and out_lab.shape == (80, 120)
    assert set(np.unique(out_lab)) == set(np.unique(lab))  # nearest neighbour: no invented classes


def test_pad_uses_ignore_for_labels():
    img, lab = _pair(10, 10)
    pimg, plab = pad_to(img, lab, (16, 12))
    assert plab.shape == (16, 12) and (plab[10:] == 255).all() and (plab[:, 10:] == 255).all()
    assert (pimg[10:] == 0).all()


def test_random_crop_respects_cat_max_ratio():
    img = np.zeros((64, 64, 3), np.uint8)
    lab = np.zeros((64, 64), np.uint8)
    lab[:, 48:] = 1  # class 1 only in the rightmost 16 columns: few crops qualify
    rng = np.random.default_rng(0)
    for _ in range(20):
        _, crop = random_crop(img, lab, (32, 32), rng, cat_max_ratio=0.75, tries=50)
        counts = np.bincount(crop.ravel(), minlength=2)
        assert counts.max() / counts.sum() < 0.75
    # without the constraint, about 3 in 4 crops would violate it
    def share(crop):
        counts = np.bincount(crop.ravel(), minlength=2)
        return counts.max() / counts.sum()

    violations = sum(share(random_crop(img, lab, (32, 32), rng, cat_max_ratio=1.0)[1]) >= 0.75 for _ in range(40))
    assert violations > 20


def test_flip_moves_image_and_label_together():
    img, lab = _pair()
    fimg, flab = random_flip(img, lab, np.random.default_rng(0), p=1.0)
    assert np.array_equal(fimg, img[:, ::-1]) and np.array_equal(flab, lab[:, ::-1])


def test_photometric_distortion_is_seeded_and_changes_colour():
    img, _ = _pair()
    a = photometric_distortion(img, np.random.default_rng(3))
    b = photometric_distortion(img, np.random.default_rng(3))
    assert np.array_equal(a, b) and a.dtype == np.uint8 and a.shape == img.shape
    changed = [not np.array_equal(photometric_distortion(img, np.random.default_rng(s)), img) for s in range(10)]
    assert sum(changed) >= 8


def test_normalize_is_rgb_chw_with_imagenet_stats():
    img = np.zeros((2, 2, 3), np.uint8)
    img[..., 2] = 255  # red in BGR
    x = normalize(img)
    assert x.shape == (3, 2, 2) and x.dtype == np.float32
    assert x[0, 0, 0] == pytest.approx((255 - IMAGENET_MEAN[0]) / IMAGENET_STD[0])
    assert x[2, 0, 0] == pytest.approx(-IMAGENET_MEAN[2] / IMAGENET_STD[2])


def test_train_transform_shapes_and_determinism():
    img, lab = _pair(64, 128)
    t = TrainTransform(crop=(32, 48), ratio_range=(0.5, 2.0))
    x1, y1 = t(img, lab, np.random.default_rng(7))
    x2, y2 = t(img, lab, np.random.default_rng(7))
    assert x1.shape == (3, 32, 48) and y1.shape == (32, 48) and y1.dtype == np.int64
    assert np.array_equal(x1, x2) and np.array_equal(y1, y2)
    assert set(np.unique(y1)) <= set(range(13)) | {255}
