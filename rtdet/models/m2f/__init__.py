"""The Mask2Former family (``rtdet-m2f``): mask classification for semantic segmentation (Cheng et al., 2022).

One module per step: :mod:`.pixel_decoder` (multi-scale maps and the stride-4 mask features),
:mod:`.decoder` (the transformer decoder with masked attention), :mod:`.points` (point sampling),
:mod:`.matcher` (segments of a semantic mask and their Hungarian matching), :mod:`.criterion`
(the set loss) and :mod:`.model` (the network behind the model contract, its builder and its
semantic inference). Attention, positional encodings, the hybrid encoder and the assignment come
from the DETR family (:mod:`rtdet.models.detr`).
"""
