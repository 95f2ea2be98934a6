import numpy as np

from edgeseg.data.transforms import pad_to, random_crop, resize


def _pair(h=40, w=60, seed=0):
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    lab = (np.arange(w)[None, :] // 10 * np.ones((h, 1), int)).astype(np.uint8)  # vertical class stripes
    return img, lab


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

    violations = sum(
        share(random_crop(img, lab, (32, 32), rng, cat_max_ratio=1.0)[1]) >= 0.75 for _ in range(40)
    )
    assert violations > 20


def test_resize_uses_nearest_for_labels():
    img, lab = _pair()
    out_img, out_lab = resize(img, lab, (80, 120))
    assert out_img.shape == (80, 120, 3) and out_lab.shape == (80, 120)
    assert set(np.unique(out_lab)) == set(np.unique(lab))  # nearest neighbour: no invented classes
