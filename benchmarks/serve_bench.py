"""What ``adain serve`` adds to a stylisation: ``python -m benchmarks serve --help``.

    direct: ``adain.stylize`` on PIL images in this process (the baseline).
    http: ``POST /stylize`` to ``adain serve`` on 127.0.0.1 (a subprocess with the same model,
        the same thread count): upload, decode, the same model call, PNG encoding, download.

Both stylise the same content and style, one request at a time, after untimed warm-up rounds, in
alternating rounds (so a change in the machine's load hits both alike); the report is the
median seconds of each and ``http / direct - 1``, the server's overhead. The model has random
weights (speed does not depend on their values).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def _image(height: int, width: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 256, (height // 16, width // 16, 3), dtype=np.uint8))
    return coarse.resize((width, height), Image.Resampling.BICUBIC)


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _seconds(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks serve", description=__doc__)
    parser.add_argument("--size", type=int, default=512, help="content height; width 4/3 of it")
    parser.add_argument("--width", type=int, default=64, help="VGG width (64: the real model)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=3, help="untimed rounds first")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    import httpx

    from adain import stylize
    from adain.model import AdaIN, load_model

    torch.set_num_threads(args.threads)
    content = _image(args.size, args.size * 4 // 3, 1)
    style = _image(256, 256, 2)
    files = [("content", ("content.png", _png(content))), ("style", ("style.png", _png(style)))]
    with tempfile.TemporaryDirectory(prefix="adain-serve-bench-") as tmp:
        AdaIN.with_random_weights(base_channels=args.width).save_pretrained(Path(tmp) / "model")
        model = load_model(str(Path(tmp) / "model")).eval()  # loaded as the server loads it
        port = _free_port()
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
        server = subprocess.Popen(
            [sys.executable, "-m", "adain", "serve", "--model", str(Path(tmp) / "model"),
             "--device", "cpu", "--port", str(port)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600.0) as client:
                for _ in range(600):
                    try:
                        client.get("/health")
                        break
                    except httpx.TransportError:
                        time.sleep(0.2)

                def post() -> None:
                    response = client.post("/stylize", files=files)
                    assert response.status_code == 200, response.text

                def local() -> None:
                    stylize(content, style, model=model)

                for _ in range(args.warmup):  # the first calls of a process are slower
                    local(), post()
                rounds = [(_seconds(local), _seconds(post)) for _ in range(args.rounds)]
        finally:
            server.terminate()
            server.wait(timeout=60)
    direct = statistics.median(d for d, _ in rounds)
    http = statistics.median(h for _, h in rounds)
    result = {
        "size": f"{content.width}x{content.height}",
        "width": args.width,
        "threads": args.threads,
        "rounds": args.rounds,
        "direct_s": round(direct, 4),
        "http_s": round(http, 4),
        "overhead": round(http / direct - 1, 4),
    }
    print(
        f"{result['size']} px, width {args.width}, {args.threads} threads: direct "
        f"{direct:.3f} s, http {http:.3f} s, overhead {100 * result['overhead']:+.1f} %"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
