"""rtdet.models.faster_rcnn: the model contract, and training through the Trainer on real VOC data."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rtdet.config import load_config
from rtdet.engine import Trainer, make_evaluator, seed_everything
from rtdet.tasks.detect import collect
from rtdet.engine.hooks import Hook
from rtdet.models.faster_rcnn import FasterRCNN

VOC = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "voc_mini" / "VOCdevkit"


def test_labels_shift_for_torchvision_background():
    model = FasterRCNN(num_classes=3, min_size=64, max_size=64)
    target = {"boxes": torch.tensor([[1.0, 2.0, 30.0, 40.0], [5.0, 5.0, 5.0, 9.0], [0.0, 0.0, 20.0, 20.0]]),
              "labels": torch.tensor([0, 1, 2]), "iscrowd": torch.tensor([False, False, True])}
    tv = model._to_torchvision(target)
    assert tv["labels"].tolist() == [1]  # 0 -> 1; the zero-width box and the crowd box are left out
    assert tv["boxes"].tolist() == [[1.0, 2.0, 30.0, 40.0]] and model.dropped_boxes == 2


def test_eval_output_follows_the_contract():
    torch.manual_seed(0)
    model = FasterRCNN(num_classes=3, min_size=64, max_size=64).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, 64, 80))
    assert len(out) == 2
    for det in out:
        assert set(det) == {"boxes", "scores", "labels"}
        assert det["boxes"].shape[1:] == (4,) and det["labels"].dtype == torch.int64
        assert det["labels"].numel() == 0 or (det["labels"].min() >= 0 and det["labels"].max() < 3)
        assert det["boxes"].numel() == 0 or float(det["boxes"][:, 2].max()) <= 80  # input frame, not resized


class EpochLosses(Hook):
    def __init__(self) -> None:
        self.losses: list[float] = []

    def after_epoch(self, trainer) -> None:
        self.losses.append(trainer.epoch_losses["loss"])



@pytest.mark.slow
def test_trains_from_scratch_on_voc_mini_and_loss_goes_down(tmp_path, one_thread):
    if not VOC.is_dir():
        pytest.skip("shared/data/voc_mini absent")
    from rtdet.data import build_loader, read_voc

    cfg = load_config(None, dict(
        epochs=2, out=str(tmp_path), device="cpu", batch=2, workers=0, imgsz=320, mosaic=0.0, fliplr=0.0,
        hsv_h=0.0, hsv_s=0.0, hsv_v=0.0, translate=0.0, scale=0.0, optimizer="sgd", lr=0.02, nbs=2,
        warmup_iters=2, ema=True, ema_tau=3.0, patience=0))
    seed_everything(0)
    ds = read_voc(VOC, "trainval")
    assert len(ds) == 10 and len(ds.names) == 20
    train_loader = build_loader(ds, cfg.data, train=True, epochs=cfg.train.epochs, seed=0)
    val_loader = build_loader(ds, cfg.data, train=False, batch=5)

    def count_metric(preds, targets):
        assert [t["image_id"] for t in targets] == sorted(t["image_id"] for t in targets)
        return {"AP": 0.0, "images": float(len(preds)), "dets": float(sum(len(p["boxes"]) for p in preds))}

    # smaller RoI and proposal samples than torchvision's defaults (512, 2000): the box head dominates CPU time
    model = FasterRCNN(num_classes=len(ds.names), min_size=320, max_size=320, box_batch_size_per_image=64,
                       rpn_post_nms_top_n_train=300)
    record = EpochLosses()
    trainer = Trainer(model, train_loader, cfg, evaluate=make_evaluator(val_loader, count_metric, collect), hooks=[record])
    metrics = trainer.train()
    assert record.losses[-1] < 0.8 * record.losses[0], record.losses
    assert metrics["images"] == 10
    assert trainer.iter == 10 and trainer.ema.updates == 10
    ckpt = trainer.state_dict()
    assert ckpt["model_args"]["name"] == "faster-rcnn" and ckpt["model_args"]["num_classes"] == 20
