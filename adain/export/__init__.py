"""Deploying a model outside PyTorch: ONNX export (:mod:`adain.export.onnx`) and the ONNX
Runtime backend of ``adain.stylize(..., backend="onnxruntime")`` (:mod:`adain.export.backend`,
:mod:`adain.export.cache`). Needs the ``onnx`` extra: ``pip install "adain[onnx]"``."""
