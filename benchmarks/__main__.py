"""``python -m benchmarks NAME [options]`` runs ``benchmarks/NAME_bench.py``'s ``main(argv)``."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def _available() -> list[str]:
    folder = str(Path(__file__).parent)
    return sorted(
        info.name.removesuffix("_bench")
        for info in pkgutil.iter_modules([folder])
        if info.name.endswith("_bench")
    )


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    names = _available()
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in names:
        print(
            f"usage: python -m benchmarks {{{','.join(names)}}} [options]  (NAME --help for more)"
        )
        raise SystemExit(0 if not argv or argv[0] in ("-h", "--help") else 2)
    module = importlib.import_module(f"benchmarks.{argv[0]}_bench")
    module.main(argv[1:])


if __name__ == "__main__":
    main()
