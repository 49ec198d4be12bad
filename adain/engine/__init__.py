"""How the layers run: strips of rows, exact convolution rewrites, the memory plan.

Beneath the model, above :mod:`adain.functional`: nothing here knows of files, the command line
or the Hub, and nothing here imports :mod:`adain.model`.
"""
