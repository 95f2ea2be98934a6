import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgeseg.data.datasets import load_dataset  # noqa: E402
from edgeseg.data.synthetic import render_dataset  # noqa: E402
from edgeseg.data.torch_dataset import RareClassTorchSampler, TorchSegDataset  # noqa: E402
from edgeseg.data.transforms import TrainTransform  # noqa: E402
from edgeseg.models.registry import create_model  # noqa: E402
from edgeseg.training import param_groups, poly_lr, train_supervised  # noqa: E402


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest single-threaded; extra threads only thrash on a busy machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_poly_schedule_with_warmup():
    assert poly_lr(0, 100, 1.0, warmup=10) == pytest.approx(1e-6)
    assert poly_lr(5, 100, 1.0, warmup=10) == pytest.approx(0.5, rel=1e-4)
    assert poly_lr(10, 100, 1.0, warmup=10) == pytest.approx(0.9)
    assert poly_lr(100, 100, 1.0, warmup=10) == 0.0


def test_head_gets_ten_times_the_learning_rate():
    model = create_model("segformer_tiny", num_classes=19)
    groups = param_groups(model, 1e-3, 10.0, 0.01)
    head = {id(p) for p in model.head.parameters()}
    for g in groups:
        is_head = all(id(p) in head for p in g["params"])
        assert g["lr"] == pytest.approx(1e-2 if is_head else 1e-3)
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


def test_training_on_synthetic_source_reduces_the_loss(tmp_path):
    render_dataset(tmp_path, ["source"], num=4, size=(64, 128), splits={"train": 4})
    ds = TorchSegDataset(load_dataset("synthetic", tmp_path, "train", "source"),
                         TrainTransform(crop=(64, 64), photometric=False))
    x, y = ds[0]
    assert x.shape == (3, 64, 64) and x.dtype == torch.float32 and y.dtype == torch.int64
    loader = torch.utils.data.DataLoader(ds, batch_size=4, shuffle=True)
    torch.manual_seed(0)
    model = create_model("segformer_tiny", num_classes=19)
    hist = train_supervised(model, loader, iters=30, lr=1e-3, warmup_iters=3, progress=False)
    assert len(hist.losses) == 30 and not model.training
    assert np.mean(hist.losses[-5:]) < 0.8 * np.mean(hist.losses[:3])


def test_rare_class_torch_sampler_is_seeded():
    from edgeseg.data.sampling import ClassStats, RareClassSampler

    counts = np.zeros((3, 19), np.int64)
    counts[:, 0] = 100
    counts[1, 5] = 50
    sampler = RareClassSampler(ClassStats("x", "train", ("a", "b", "c"), counts), min_pixels=10)
    a = list(RareClassTorchSampler(sampler, 50, seed=1))
    b = list(RareClassTorchSampler(sampler, 50, seed=1))
    assert a == b and len(a) == 50 and a.count(1) > 40
