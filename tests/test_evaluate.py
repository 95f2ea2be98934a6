import json
import math
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from edgeseg.cli import main
from edgeseg.data.datasets import load_dataset
from edgeseg.data.labels import CLASSES, train_ids_to_label_ids
from edgeseg.evaluate import (
    ConfusionMatrix,
    EvalResult,
    harmonic_mean,
    make_predictor,
    mean_iou,
    per_class_iou,
)


def test_iou_by_hand():
    gt = np.array([0, 0, 0, 1, 1, 255, 255, 2])
    pred = np.array([0, 0, 1, 1, 255, 0, 1, 2])
    cm = ConfusionMatrix(3)
    cm.update(pred, gt)
    iou = per_class_iou(cm.matrix)
    # class 0: tp 2, fn 1 (pred 1), fp 0 (the two GT-ignore pixels do not count) -> 2/3
    # class 1: tp 1, fn 1 (a void prediction is a false negative), fp 1 -> 1/3
    assert iou.tolist() == pytest.approx([2 / 3, 1 / 3, 1.0])
    assert cm.matrix.sum() == 6 and cm.matrix[1, 3] == 1


def test_absent_classes_are_nan_and_excluded():
    cm = ConfusionMatrix()
    cm.update(np.array([0, 0]), np.array([0, 0]))
    iou = per_class_iou(cm.matrix)
    assert iou[0] == 1.0 and all(math.isnan(v) for v in iou[1:])
    assert mean_iou(iou) == 1.0
    res = EvalResult(cm.matrix).to_json()
    assert res["miou"] == 1.0 and res["iou"]["sidewalk"] is None and list(res["iou"]) == list(CLASSES)


def test_harmonic_mean():
    assert harmonic_mean([0.5, 0.5]) == pytest.approx(0.5)
    assert harmonic_mean([0.6, 0.3]) == pytest.approx(2 * 0.6 * 0.3 / 0.9)
    assert harmonic_mean([0.6, 0.0]) == 0.0


def _write_predictions(data_trees: SimpleNamespace, root, dataset, rng, nested=False):
    """Noisy trainId predictions (with some 255s) named the way users name them."""
    preds = {}
    for i, s in enumerate(dataset.samples):
        gt = dataset.read_label(i)
        pred = np.where(rng.random(gt.shape) < 0.6, gt, rng.integers(0, 19, gt.shape)).astype(np.uint8)
        pred[rng.random(gt.shape) < 0.05] = 255
        sub = root / ("deep" if nested and i % 2 else "") / f"model_{s.frame_id}_pred.png"
        data_trees.write(sub, pred)
        preds[s.frame_id] = pred
    return preds


def test_predictions_match_official_cityscapes_evaluation(data_trees: SimpleNamespace, tmp_path, capsys):
    ev = pytest.importorskip("cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling")
    data, preds_dir, official_dir = tmp_path / "cs", tmp_path / "preds", tmp_path / "official"
    data_trees.make_cityscapes(data, cities=("aachen", "bonn", "ulm"), per_city=2, seed=5)
    ds = load_dataset("cityscapes", data, "val")
    preds = _write_predictions(data_trees, preds_dir, ds, np.random.default_rng(1), nested=True)

    code = main(
        [
            "eval",
            "--predictions",
            str(preds_dir),
            "--data",
            str(data),
            "--dataset",
            "cityscapes",
            "--json",
            str(tmp_path / "r.json"),
        ]
    )
    assert code == 0, capsys.readouterr().err
    ours = json.loads((tmp_path / "r.json").read_text())

    # The official script needs labelIds predictions; convert ours (255 -> 0 'unlabeled').
    pred_files, gt_files = [], []
    for s in ds.samples:
        pred_files.append(
            str(
                data_trees.write(
                    official_dir / f"{s.frame_id}.png", train_ids_to_label_ids(preds[s.frame_id])
                )
            )
        )
        gt_files.append(str(s.label))
    args = ev.args
    args.evalInstLevelScore, args.JSONOutput, args.quiet = False, False, True
    result = ev.evaluateImgLists(pred_files, gt_files, args)
    for name in CLASSES:
        theirs = result["classScores"][name]
        if math.isnan(theirs):
            assert ours["iou"][name] is None
        else:
            assert ours["iou"][name] == pytest.approx(theirs, abs=1e-6)
    assert ours["miou"] == pytest.approx(result["averageScoreClasses"], abs=1e-6)
    assert ours["iou"]["road"] is not None


def test_missing_and_duplicate_predictions_name_the_frame(data_trees: SimpleNamespace, tmp_path, capsys):
    data, preds_dir = tmp_path / "cs", tmp_path / "preds"
    ids = data_trees.make_cityscapes(data)
    ds = load_dataset("cityscapes", data, "val")
    _write_predictions(data_trees, preds_dir, ds, np.random.default_rng(0))
    victim = next(preds_dir.glob(f"*{ids[1]}*"))
    victim.rename(preds_dir / "unrelated.png")
    args = ["eval", "--predictions", str(preds_dir), "--data", str(data), "--dataset", "cityscapes"]
    assert main(args) != 0
    err = capsys.readouterr().err
    assert f"no prediction for frame {ids[1]}" in err and err.count("\n") == 1
    data_trees.write(preds_dir / f"{ids[1]}_a.png", np.zeros((24, 32), np.uint8))
    data_trees.write(preds_dir / "again" / f"{ids[1]}_b.png", np.zeros((24, 32), np.uint8))
    assert main(args) != 0
    assert f"several predictions for frame {ids[1]}" in capsys.readouterr().err


def test_prediction_with_wrong_size_or_channels_is_an_error(data_trees: SimpleNamespace, tmp_path, capsys):
    data, preds_dir = tmp_path / "cs", tmp_path / "preds"
    ids = data_trees.make_cityscapes(data, per_city=1)
    for fid in ids:
        data_trees.write(preds_dir / f"{fid}.png", np.zeros((24, 32, 3), np.uint8))
    assert (
        main(["eval", "--predictions", str(preds_dir), "--data", str(data), "--dataset", "cityscapes"]) != 0
    )
    assert "grayscale" in capsys.readouterr().err


def _fake_logits(x):
    """A 'model' whose class is decided per pixel (red channel bucket), output at stride 4 like ours."""
    red = x[0, 0]
    cls = np.clip(((red + 2.5) * 3).astype(int), 0, 18)
    logits = np.eye(19, dtype=np.float32)[cls].transpose(2, 0, 1)[None] * 10
    return logits[:, :, 2::4, 2::4]


def test_whole_and_slide_inference_agree_for_a_local_model():
    rng = np.random.default_rng(0)
    img = cv2.resize(
        rng.integers(0, 256, (12, 16, 3), dtype=np.uint8), (128, 96), interpolation=cv2.INTER_NEAREST
    )
    whole = make_predictor(_fake_logits, mode="whole")(img)
    slide = make_predictor(_fake_logits, mode="slide", crop=(64, 64), stride=(32, 32))(img)
    assert whole.shape == (96, 128) and whole.dtype == np.uint8
    assert (whole == slide).mean() > 0.97  # only block edges differ (bilinear upsampling of stride-4 logits)
    assert len(np.unique(whole)) > 3


def test_eval_a_checkpoint_on_synthetic_domains(tmp_path, capsys, one_thread):
    torch = one_thread
    from edgeseg.checkpoint import save_model
    from edgeseg.data.synthetic import render_dataset
    from edgeseg.models.registry import create_model

    render_dataset(tmp_path / "synth", ["fog", "night"], num=1, size=(64, 128), splits={"val": 2})
    torch.manual_seed(0)
    save_model(create_model("segformer_tiny", num_classes=19), tmp_path / "m.safetensors")
    out = tmp_path / "r.json"
    code = main(
        [
            "eval",
            str(tmp_path / "m.safetensors"),
            "--data",
            str(tmp_path / "synth"),
            "--dataset",
            "synthetic",
            "--domain",
            "fog,night",
            "--json",
            str(out),
            "--save-pred",
            str(tmp_path / "pred"),
        ]
    )
    assert code == 0, capsys.readouterr().err
    res = json.loads(out.read_text())
    assert set(res["domains"]) == {"synthetic/fog", "synthetic/night"}
    m = [res["domains"][d]["miou"] for d in ("synthetic/fog", "synthetic/night")]
    assert res["harmonic_mean"] == pytest.approx(harmonic_mean(m))
    saved = sorted((tmp_path / "pred" / "synthetic_fog" / "trainIds").glob("*_pred_labelTrainIds.png"))
    assert len(saved) == 2 and cv2.imread(str(saved[0]), cv2.IMREAD_UNCHANGED).shape == (64, 128)
    # The saved predictions evaluate to the same numbers through the --predictions path.
    assert len(list((tmp_path / "pred" / "synthetic_fog" / "color").glob("*.png"))) == 2
    assert (
        main(
            [
                "eval",
                "--predictions",
                str(saved[0].parent),
                "--data",
                str(tmp_path / "synth"),
                "--dataset",
                "synthetic",
                "--domain",
                "fog",
                "--json",
                str(tmp_path / "p.json"),
            ]
        )
        == 0
    )
    assert json.loads((tmp_path / "p.json").read_text())["miou"] == pytest.approx(m[0])
