"""rtdet.engine.batchnorm: precise BatchNorm statistics, alone and in the trainer."""

from __future__ import annotations

import torch

from rtdet.engine import Trainer, seed_everything
from rtdet.engine.batchnorm import precise_bn
from tests.engine.test_trainer import assert_same_state, quiet_hooks
from tests.engine.toy import TinyDetector, make_cfg, make_loader


def _inputs(images, targets):
    return images.float() / 255, targets


def _batch_stats(model: TinyDetector, batches) -> tuple[torch.Tensor, torch.Tensor]:
    """The looped reference: the mean over batches of each batch's mean and unbiased variance at the BN input."""
    conv = model.features[0]
    means, variances = [], []
    with torch.no_grad():
        for images, _ in batches:
            x = conv(images.float() / 255)
            means.append(x.mean((0, 2, 3)))
            variances.append(x.var((0, 2, 3), unbiased=True))
    return torch.stack(means).mean(0), torch.stack(variances).mean(0)


def test_running_statistics_become_the_average_of_the_batches():
    torch.manual_seed(0)
    model = TinyDetector().eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    loader = make_loader(n=16, batch=4, sampler="plain", shuffle=False)
    used = precise_bn(model, loader, 3, _inputs)
    mean, var = _batch_stats(model, list(loader)[:3])
    bn = model.features[1]
    assert used == 3
    assert torch.allclose(bn.running_mean, mean, atol=1e-6) and torch.allclose(bn.running_var, var, atol=1e-6)
    assert bn.momentum == 0.1 and not model.training  # the layer's momentum and the model's mode are restored
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if "running" not in k and "num_batches" not in k)
    assert all(p.grad is None for p in model.parameters())


def test_a_short_loader_and_a_model_without_batchnorm():
    model = TinyDetector()
    assert precise_bn(model, make_loader(n=8, batch=4, sampler="plain"), 10, _inputs) == 2  # the loader's 2 only
    assert precise_bn(TinyDetector(bn=False), make_loader(n=8, batch=4), 10, _inputs) == 0


def test_trainer_measures_the_evaluated_model_before_each_validation(tmp_path):
    seen = []

    def evaluate(model):
        bn = model.features[1]
        seen.append((bn.running_mean.clone(), bn.running_var.clone()))
        return {"AP": 0.5}

    cfg = make_cfg(tmp_path, epochs=2, precise_bn=2)
    seed_everything(0)
    loader = make_loader(16, 4, sampler="plain", shuffle=False)
    trainer = Trainer(TinyDetector(), loader, cfg, evaluate=evaluate, hooks=quiet_hooks(cfg))
    trainer.train()
    mean, var = _batch_stats(trainer.ema.module, list(loader)[:2])  # the last validation's: the final weights
    assert len(seen) == 2
    assert torch.allclose(seen[-1][0], mean, atol=1e-5) and torch.allclose(seen[-1][1], var, atol=1e-5)


def test_precise_batchnorm_leaves_the_training_run_alone(tmp_path):
    runs = []
    for n in (0, 2):
        cfg = make_cfg(tmp_path / str(n), epochs=2, precise_bn=n)
        seed_everything(0)
        trainer = Trainer(TinyDetector(dropout=0.3), make_loader(16, 4), cfg, evaluate=lambda m: {"AP": 0.5},
                          hooks=quiet_hooks(cfg))
        trainer.train()
        runs.append(trainer.model.state_dict())
    assert_same_state(runs[0], runs[1], atol=0)
