"""The classifiers' criterion: softmax cross-entropy with label smoothing and soft (mixed) targets."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def target_distribution(targets: list[dict], num_classes: int, device: torch.device | None = None) -> Tensor:
    """float32 [B, K] targets: each dict's ``"soft"`` [K] when present (mixup / cutmix), else one-hot of ``"label"``."""
    if all("soft" in t for t in targets):
        return torch.stack([torch.as_tensor(t["soft"], dtype=torch.float32) for t in targets]).to(device)
    labels = torch.as_tensor([int(t["label"]) for t in targets], dtype=torch.int64)
    return F.one_hot(labels, num_classes).float().to(device)


class ClassificationLoss(nn.Module):
    """``loss(logits [B, K], targets) -> {"loss_cls": scalar}``: mean softmax cross-entropy.

    Label smoothing ``eps`` replaces a target distribution ``p`` by
    ``(1 - eps) * p + eps / K`` (PyTorch's ``cross_entropy`` semantics, for
    class indices and probabilities alike).
    """

    def __init__(self, label_smoothing: float = 0.0):
        super().__init__()
        self.label_smoothing = label_smoothing

    def forward(self, logits: Tensor, targets: list[dict]) -> dict[str, Tensor]:
        if len(targets) != len(logits):
            raise ValueError(f"{len(logits)} images but {len(targets)} targets")
        p = target_distribution(targets, logits.shape[1], logits.device)
        if p.shape != logits.shape:
            raise ValueError(f"targets' soft vectors are {tuple(p.shape[1:])}, the model has {logits.shape[1]} classes")
        loss = F.cross_entropy(logits.float(), p, label_smoothing=self.label_smoothing)
        return {"loss_cls": loss}
