"""Training AdaIN decoders (Huang & Belongie, 2017, Sec. 6.2): ``python -m train`` from a checkout.

Usage (also ``adain train ...`` from the repository root)::

    python -m train --config smoke --content DIR --style DIR -o runs/smoke  # tiny, offline
    python -m train --config paper --content coco/ --style wikiart/ --encoder vgg_normalised.pth
    accelerate launch -m train --config paper ... --set mixed_precision=bf16   # GPUs, DDP
    python -m train -o runs/paper --resume latest                              # continue

A resumed run takes every setting from its checkpoint's recorded config; options given again
must agree with it, except those in :data:`train.config.RESUME_MAY_CHANGE` (``max_steps``, the
save/log/sample intervals, ``num_workers``, ``mixed_precision``, the validation settings).

``--content``/``--style`` take folders (searched recursively for images and ``.parquet`` shards,
e.g. a local copy of ``huggan/wikiart``) or parquet files. The run folder gets ``config.toml``,
``metrics.jsonl``, ``tensorboard/``, ``ckpt_{step}.pt`` + ``latest.pt`` and, when the run
completes, ``model/`` (a ``save_pretrained`` folder for ``AdaIN.from_pretrained``). With
``--set eval_every=N`` and ``eval_content``/``eval_style`` image lists, every N steps the decoder
stylises those fixed pairs and the run logs their content and style losses (``eval/...``) and
a grid (:mod:`train.validation`).

Public surface: :class:`train.config.TrainConfig`, :func:`train.loop.fit`,
:func:`train.export.export`. Submodules import torch; this package file does not.
"""
