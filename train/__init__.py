"""Training AdaIN decoders (Huang & Belongie, 2017, Sec. 6.2): ``python -m train`` from a checkout.

Public surface: :class:`train.config.TrainConfig`, :func:`train.loop.fit`,
:func:`train.export.export`. Submodules import torch; this package file does not.
"""
