"""Deployment: ONNX export checked against PyTorch, inference backends, predict, bench and tuning.

Modules: :mod:`rtdet.deploy.onnx` (export + parity check), :mod:`rtdet.deploy.runtime`
(torch / ONNX Runtime backends, the frame pipeline), :mod:`rtdet.deploy.openvino`
(the OpenVINO backend), :mod:`rtdet.deploy.tune` (``--tune``: the fastest settings on
this machine), :mod:`rtdet.deploy.predict` (images, folders, globs, videos) and
:mod:`rtdet.deploy.bench` (end-to-end latency). Nothing is imported here so that
``import rtdet`` stays light.
"""
