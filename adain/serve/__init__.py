"""``adain demo`` and ``adain serve``: the model behind a web page and an HTTP API.

- ``service.py``: the model loaded once, the style presets, and the one stylisation call that
  both front ends make (through :func:`adain.api.stylize`, the one engine).
- ``limits.py``: upload size and pixel limits, bounded concurrency and a bounded queue.
- ``server.py``: the FastAPI app (``POST /stylize``, ``GET /styles``, ``GET /health``).
- ``demo.py``: the Gradio app.

FastAPI, uvicorn and Gradio come with the ``demo`` extra (``pip install "adain[demo]"``); they are
imported by ``server.py`` and ``demo.py`` only, so ``import adain.serve`` needs none of them.
"""
