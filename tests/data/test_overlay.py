"""Class-map pictures: colours shared with the box drawings, blending, legends, comparison grids."""

import cv2
import numpy as np

from rtdet.data.overlay import LEGEND_ROWS, colour_map, comparison_grid, draw_legend, overlay, palette
from rtdet.data.preview import colour


def test_palette_is_the_box_colours_and_non_classes_are_black():
    pal = palette(3)
    assert [tuple(c) for c in pal[:3]] == [colour(k) for k in range(3)] and tuple(pal[3]) == (0, 0, 0)
    cmap = colour_map(np.array([[0, 2, 255]]), 3)
    assert tuple(cmap[0, 0]) == colour(0) and tuple(cmap[0, 1]) == colour(2) and tuple(cmap[0, 2]) == (0, 0, 0)


def test_overlay_blends_classes_only():
    image = np.full((4, 6, 3), 200, np.uint8)
    mask = np.full((4, 6), 255)
    mask[:, :3] = 1
    np.testing.assert_array_equal(overlay(image, mask, 2, 0.0), image)
    full = overlay(image, mask, 2, 1.0)
    assert (full[:, :3] == colour(1)).all() and (full[:, 3:] == 200).all()  # unlabelled pixels keep the image


def test_legend_lists_the_most_frequent_classes_first():
    image = np.zeros((400, 600, 3), np.uint8)
    counts = np.arange(LEGEND_ROWS + 3)  # class 0 absent, the rest present
    drawn = draw_legend(image, counts, [f"class{k}" for k in range(len(counts))])
    assert drawn[5:, :5].any() and not drawn[:, 300:].any()  # drawn in the top-left corner only
    step = max(8, int(24 * max(0.35, 400 / 700)))
    swatch = drawn[3 + step // 2, 6]  # the first row's swatch: the most frequent class
    assert tuple(swatch) == colour(len(counts) - 1)


def test_comparison_grid(tmp_path):
    image = np.full((30, 40, 3), 90, np.uint8)
    truth, pred = np.zeros((30, 40), np.int64), np.ones((30, 40), np.int64)
    path = comparison_grid([(image, truth, pred)] * 2, ["a", "b"], tmp_path / "g.png", 0.5, side=80)
    grid = cv2.imread(str(path))
    assert grid.shape == (2 * (60 + 4), 3 * 80, 3)
