"""The DETR family (``rtdet-detr-n`` / ``-s``): a real-time detection transformer in the manner of RT-DETR.

One module per step: :mod:`.attention` (multi-head and multi-scale deformable attention),
:mod:`.matcher` (Hungarian matching), :mod:`.criterion` (the set loss),
:mod:`.denoising` (contrastive denoising queries), :mod:`.encoder` (the hybrid encoder),
:mod:`.decoder` (query selection and the decoder) and :mod:`.model` (the network behind the
model contract, its builder and its decoding).
"""
