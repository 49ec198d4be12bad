"""The adain web demo as a Hugging Face Space: ``adain demo`` with the model pinned below.

Rendered by ``python -m hub space`` (``$$model`` and ``$$revision`` are filled in then); the
Space holds a copy of the ``adain`` package and the example images beside this file.
"""

import os
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from adain.serve.demo import build_demo  # noqa: E402
from adain.serve.service import Stylist, find_images  # noqa: E402

MODEL = "$model"
REVISION = "$revision"  # a commit: a push to the model repository never changes this Space
HERE = Path(__file__).resolve().parent

stylist = Stylist.load(MODEL, REVISION, "auto", HERE / "examples" / "style")
demo = build_demo(stylist, find_images(HERE / "examples" / "content"))
demo.queue(default_concurrency_limit=1, max_size=16)

if __name__ == "__main__":
    demo.launch(ssr_mode=False, allowed_paths=[str(HERE / "examples")])
