"""Mask files and value mappings: what is a class, what is unlabelled, what is refused."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from rtdet.data.masks import LabelMapping, MaskError, mask_counts, read_mask, value_table


def test_label_mapping_contract():
    m = LabelMapping(11, (11,))
    assert m.dtype == np.uint8 and m.unlabelled_values() == [11]
    assert LabelMapping(300, (), ignore_index=300).dtype == np.uint16
    with pytest.raises(ValueError, match=r"unlabelled value\(s\) \[255\] are also class values \(0..299\)"):
        LabelMapping(300, ignore_index=300)
    with pytest.raises(ValueError, match="ignore_index 5 must lie in 11..65535"):
        LabelMapping(11, ignore_index=5)
    assert LabelMapping(150, (255,), reduce_zero_label=True).unlabelled_values() == [0, 255]


def test_value_table_and_counts():
    ade = LabelMapping(150, (255,), reduce_zero_label=True)
    table = value_table(ade, 256)
    assert table[0] == 255 and table[1] == 0 and table[150] == 149 and table[151] == -1 and table[255] == 255
    raw = np.array([[0, 1, 1, 150], [151, 151, 255, 2]], np.uint8)
    per_class, ignored, problem = mask_counts(raw, ade)
    assert per_class[[0, 1, 149]].tolist() == [2, 1, 1] and per_class.sum() == 4 and ignored == 2
    assert problem.endswith("neither a class (1..150) nor unlabelled (0, 255): 151 (2 px)")
    assert mask_counts(raw[:1], ade)[2] is None


def test_read_mask_modes(tmp_path):
    values = np.arange(12, dtype=np.uint8).reshape(3, 4)
    Image.fromarray(values.astype(np.uint16) * 1000).save(tmp_path / "16bit.png")
    assert read_mask(tmp_path / "16bit.png").max() == 11000  # 16-bit masks keep their values
    palette = Image.fromarray(values, "P")
    palette.putpalette([255, 0, 0] * 256)  # every index the same colour: indices, not colours, are read
    palette.save(tmp_path / "p.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "p.png"), values)
    with pytest.raises(MaskError, match="mask file not found"):
        read_mask(tmp_path / "none.png")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(MaskError, match="bad.png: mask does not decode"):
        read_mask(tmp_path / "bad.png")
