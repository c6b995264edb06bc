"""Deployment: ONNX export checked against PyTorch, inference backends, predict and bench.

Modules: :mod:`rtdet.deploy.onnx` (export + parity check), :mod:`rtdet.deploy.runtime`
(torch / ONNX Runtime backends), :mod:`rtdet.deploy.predict` (images, folders,
globs, videos) and :mod:`rtdet.deploy.bench` (end-to-end latency). Nothing is
imported here so that ``import rtdet`` stays light.
"""
