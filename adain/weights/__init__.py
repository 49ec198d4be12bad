"""Where weights come from: the Hub, downloads, the original release's files, model folders.

Functions here return paths and state dicts; none builds a model (:mod:`adain.model` does).
"""
