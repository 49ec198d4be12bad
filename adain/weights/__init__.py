"""Where weights come from: the Hub, downloads, the original release's files, model folders.

Functions here return paths and state dicts; none builds a model (:mod:`adain.model` does), and
nothing here imports the model. Modules, each importing only those before it: ``folder`` (write a
``save_pretrained`` folder atomically), ``card`` (the licences and provenance every model card
carries), ``download``, ``convert`` (original files -> state dict and config), ``hub`` (the
resolution order, offline detection), ``info``.
"""
