"""Point sampling: bilinear reads against a looped reference; importance sampling keeps the most uncertain points."""

import pytest
import torch

from rtdet.models.m2f.points import point_sample, uncertain_points, uncertainty


def _bilinear(img, x, y):
    """Looped reference: ``img`` [H, W] at normalized (x, y), align_corners=False, zeros outside."""
    h, w = img.shape
    px, py = x * w - 0.5, y * h - 0.5
    x0, y0 = int(torch.floor(torch.tensor(px))), int(torch.floor(torch.tensor(py)))
    out = 0.0
    for yy, wy in ((y0, 1 - (py - y0)), (y0 + 1, py - y0)):
        for xx, wx in ((x0, 1 - (px - x0)), (x0 + 1, px - x0)):
            if 0 <= yy < h and 0 <= xx < w:
                out += wx * wy * float(img[yy, xx])
    return out


def test_point_sample_reads_bilinearly_with_zeros_outside():
    g = torch.Generator().manual_seed(0)
    maps = torch.randn(2, 3, 5, 7, generator=g)
    points = torch.rand(2, 20, 2, generator=g) * 1.2 - 0.1  # some points beyond the border
    got = point_sample(maps, points)
    assert got.shape == (2, 3, 20)
    for n in range(2):
        for c in range(3):
            for p in range(20):
                want = _bilinear(maps[n, c], float(points[n, p, 0]), float(points[n, p, 1]))
                assert float(got[n, c, p]) == pytest.approx(want, abs=1e-5)
    centre = torch.tensor([[[(2 + 0.5) / 7, (1 + 0.5) / 5]]])  # the centre of pixel (row 1, column 2)
    assert torch.equal(point_sample(maps[:1], centre)[0, :, 0], maps[0, :, 1, 2])


def test_importance_sampling_keeps_the_most_uncertain_candidates():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 1, 16, 16, generator=g) * 4
    p, k, beta = 40, 3.0, 0.75
    got = uncertain_points(logits, p, k, beta, generator=torch.Generator().manual_seed(1))
    candidates = torch.rand(3, int(p * k), 2, generator=torch.Generator().manual_seed(1))  # the same draws
    score = uncertainty(point_sample(logits, candidates))[:, 0]
    n = int(beta * p)
    assert got.shape == (3, p, 2)
    for r in range(3):
        want = candidates[r, score[r].argsort(descending=True)[:n]]
        torch.testing.assert_close(got[r, :n], want)  # the n most uncertain, most uncertain first
    fresh = got[:, n:]
    assert fresh.shape == (3, p - n, 2) and ((fresh >= 0) & (fresh <= 1)).all()


def test_uncertain_points_gather_at_the_mask_edge():
    """A vertical edge between logits -10 and 10: the candidates where the blend of the two columns is closest
    to 0 come first (|logit| < 2.5 within 1/8 pixel of the edge; elsewhere >= 2.5, even in the corners, where
    the zero padding outside blends in)."""
    logits = torch.full((1, 1, 32, 32), -10.0)
    logits[..., 12:] = 10.0  # the edge runs between columns 11 and 12, at x = 12 / 32
    p, k = 256, 4.0
    points = uncertain_points(logits, p, k, 1.0, generator=torch.Generator().manual_seed(0))
    candidates = torch.rand(1, int(p * k), 2, generator=torch.Generator().manual_seed(0))[0]
    near = int(((candidates[:, 0] - 12 / 32).abs() < 0.125 / 32).sum())
    assert near >= 4 and ((points[0, :near, 0] - 12 / 32).abs() < 0.125 / 32).all()
    with pytest.raises(ValueError, match="oversample >= 1"):
        uncertain_points(logits, 8, 0.5)
