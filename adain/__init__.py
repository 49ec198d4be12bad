"""adain: arbitrary style transfer with Adaptive Instance Normalization (Huang & Belongie, 2017).

``import adain`` is light: it loads no weights, downloads nothing and writes nothing. The public
names are imported on first use (PEP 562) rather than eagerly, because ``adain.cli`` lives in this
package and ``adain --help`` must answer without importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_EXPORTS = {
    "AdaIN": "adain.model",
    "StyleStats": "adain.style",
    "DEFAULT_REPO_ID": "adain.weights.hub",
    "EngineOptions": "adain.engine.runner",
    "load_model": "adain.model",
    "encode_style": "adain.api",
    "stylize": "adain.api",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from adain.api import encode_style as encode_style
    from adain.api import stylize as stylize
    from adain.engine.runner import EngineOptions as EngineOptions
    from adain.model import AdaIN as AdaIN
    from adain.model import load_model as load_model
    from adain.style import StyleStats as StyleStats
    from adain.weights.hub import DEFAULT_REPO_ID as DEFAULT_REPO_ID


def __getattr__(name: str) -> object:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'adain' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return sorted([*__all__, "__version__"])
