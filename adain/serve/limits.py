"""What a shared server refuses, and how much work it takes on at once.

Nothing here imports a web framework: the FastAPI app and the Gradio demo both use it.
"""

from __future__ import annotations

import math
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from PIL import Image

from adain.image import ImageError, load_image, read_size

T = TypeVar("T")

MB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """Limits of one server process.

    Args:
        max_upload_bytes: largest request body (all images of one request together).
        max_pixels: largest image accepted, in pixels (each image; a decompression-bomb guard
            and a memory cap: a 4096x4096 image needs about 2 GiB in strips on the CPU).
        concurrency: stylisations that run at the same time (each in a worker thread). On a
            CPU one at a time is fastest: a run already uses every core.
        queue_size: requests that may wait for a worker; more get 503 with ``Retry-After``.
    """

    max_upload_bytes: int = 32 * MB
    max_pixels: int = 4096 * 4096
    concurrency: int = 1
    queue_size: int = 8

    def __post_init__(self) -> None:
        for name in ("max_upload_bytes", "max_pixels", "concurrency"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.queue_size < 0:
            raise ValueError(f"queue_size must be at least 0, got {self.queue_size}")


class RequestError(Exception):
    """A request the server refuses: an HTTP status and one line that says what to do."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def too_large(what: str, size: str, limit: str, option: str) -> RequestError:
    """413, naming the limit and the option that sets it."""
    return RequestError(413, f"{what} is {size}, over the limit of {limit} (server {option})")


def read_upload(data: bytes, field: str, filename: str | None, max_pixels: int) -> Image.Image:
    """Upload bytes -> upright RGB PIL image, checked as :func:`adain.image.load_image` checks
    files (EXIF orientation, alpha on white, 16-bit, truncation), with the pixel limit as 413.

    The bytes go through a private temporary file so that the one image reader is used; its
    name never reaches the client: errors name the form field and the uploaded file name.
    """
    label = f"{field} ({filename})" if filename else field
    with tempfile.TemporaryDirectory(prefix="adain-upload-") as folder:
        path = Path(folder) / "upload"
        path.write_bytes(data)
        try:
            width, height = read_size(path, max_pixels=None)
            if width * height > max_pixels:
                raise too_large(
                    label, f"{width}x{height} px", f"{max_pixels:,} pixels", "--max-pixels"
                )
            image = load_image(path, max_pixels=max_pixels)
        except ImageError as error:
            message = str(error).replace(f"{path}: ", "").replace(str(path), "upload")
            raise RequestError(400, f"{label}: {message}") from None
    image.info.pop("adain.source", None)  # the temporary file is gone
    return image


class Busy(RequestError):
    """503: every worker busy and the queue full."""

    def __init__(self, retry_after: int):
        super().__init__(
            503,
            f"the server is busy (queue full); retry in {retry_after} s",
            {"Retry-After": str(retry_after)},
        )


class Gate:
    """Bounded concurrency and a bounded queue in front of a pool of worker threads.

    :meth:`submit` admits a job when fewer than ``concurrency + queue_size`` are admitted, else
    raises :class:`Busy`. A slot is freed when the job really ends in its thread, not when the
    client goes away, so a disconnected client never lets more work in than the limits allow.
    """

    def __init__(self, concurrency: int, queue_size: int):
        self.concurrency = concurrency
        self.capacity = concurrency + queue_size
        self._executor = ThreadPoolExecutor(concurrency, thread_name_prefix="adain-stylize")
        self._lock = threading.Lock()
        self._admitted = 0
        self._running = 0
        self._served = 0
        self._seconds = 0.0  # moving average of one job's duration, for Retry-After

    def submit(self, job: Callable[[], T]) -> Future[T]:
        with self._lock:
            if self._admitted >= self.capacity:
                raise Busy(self._retry_after())
            self._admitted += 1
        try:
            future = self._executor.submit(self._timed, job)
        except BaseException:
            self._release()
            raise
        future.add_done_callback(lambda _: self._release())
        return future

    def _timed(self, job: Callable[[], T]) -> T:
        with self._lock:
            self._running += 1
        start = time.perf_counter()
        try:
            return job()
        finally:
            seconds = time.perf_counter() - start
            with self._lock:
                self._running -= 1
                self._served += 1
                weight = 1.0 if self._served == 1 else 0.2
                self._seconds += weight * (seconds - self._seconds)

    def _release(self) -> None:
        with self._lock:
            self._admitted -= 1

    def _retry_after(self) -> int:
        # The queue drains at about `concurrency` jobs per average job duration.
        waves = self.capacity / self.concurrency
        return max(1, math.ceil(self._seconds * waves))

    def status(self) -> dict[str, int]:
        with self._lock:
            return {
                "running": self._running,
                "queued": self._admitted - self._running,
                "served": self._served,
                "concurrency": self.concurrency,
                "capacity": self.capacity,
            }

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
