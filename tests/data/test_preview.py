"""Preview grid: written through the CLI, boxes drawn."""

import cv2

from rtdet.cli import main


def test_preview_cli(digits_yaml, tmp_path, capsys):
    out = tmp_path / "grid.png"
    assert main(["data", "preview", str(digits_yaml), "--out", str(out), "--n", "4", "--imgsz", "96"]) == 0
    img = cv2.imread(str(out))
    assert img.shape == (192, 192, 3)
    assert main(["data", "preview", str(digits_yaml), "--out", str(out), "--n", "3", "--no-augment",
                 "--split", "val"]) == 0
    assert cv2.imread(str(out)).shape == (640, 640, 3)
