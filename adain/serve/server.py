"""``adain serve``: the model behind an HTTP API (FastAPI, run by uvicorn).

``POST /stylize`` (multipart), ``GET /styles``, ``GET /health``, and the OpenAPI docs at ``/docs``.
The model loads once, before the first request; each stylisation runs in a worker thread
(:class:`adain.serve.limits.Gate`) so the event loop keeps answering. Every failure is JSON,
``{"error": "one line"}``, with a 4xx/5xx status; the process keeps serving.
"""

from __future__ import annotations

import asyncio
import io
import logging
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

# FastAPI reads the endpoints' annotations from this module's globals: imported here, not in
# create_app. The CLI imports this module only when `adain serve` runs.
from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from PIL import Image
from starlette.exceptions import HTTPException

import adain
from adain.checks import check_alpha
from adain.serve.limits import MB, Gate, Limits, RequestError, read_upload, too_large
from adain.serve.service import Stylist

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_LOG = logging.getLogger("adain.serve")
_MEDIA_TYPES = {"png": "image/png", "jpeg": "image/jpeg"}


def _one_line(error: object) -> str:
    text = " ".join(str(error).split()).strip("'\"")
    return text or type(error).__name__


def _json_error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


class _BodyLimit:
    """Refuse request bodies over the limit before they are parsed: 413 from the
    ``Content-Length`` header, or as soon as a streamed (chunked) body passes the limit."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], limit: int):
        self.app = app
        self.limit = limit

    def _error(self, size: str) -> RequestError:
        return too_large("the request body", size, f"{self.limit / MB:g} MB", "--max-upload-mb")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            error = self._error(f"{int(length) / MB:.1f} MB")
            await _json_error(error.status, error.message)(scope, receive, send)
            return
        received = 0
        over: RequestError | None = None
        started = False

        async def counting_receive() -> Message:
            nonlocal received, over
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                over = self._error(f"more than {self.limit / MB:g} MB")
                raise over
            return message

        async def guarded_send(message: Message) -> None:
            # A body cut short reaches the app as a parsing error: answer 413 instead of it.
            nonlocal started
            if over is None:
                started = started or message["type"] == "http.response.start"
                await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except RequestError:
            if over is None or started:
                raise
        if over is not None and not started:
            await _json_error(over.status, over.message)(scope, receive, send)


def _encode(image: Image.Image, image_format: str, quality: int) -> bytes:
    buffer = io.BytesIO()
    if image_format == "jpeg":
        image.save(buffer, "JPEG", quality=quality)
    else:
        image.save(buffer, "PNG")
    return buffer.getvalue()


def create_app(stylist: Stylist, limits: Limits | None = None) -> FastAPI:
    """The FastAPI app serving ``stylist`` (a model already loaded) within ``limits``."""
    limits = limits or Limits(max_pixels=stylist.max_pixels)
    gate = Gate(limits.concurrency, limits.queue_size)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        gate.shutdown()

    app = FastAPI(
        title="adain",
        version=adain.__version__,
        summary="Arbitrary style transfer with AdaIN (Huang & Belongie, 2017).",
        lifespan=lifespan,
    )
    app.add_middleware(_BodyLimit, limit=limits.max_upload_bytes)  # type: ignore[arg-type]

    @app.exception_handler(RequestError)
    async def _refused(request: Request, error: RequestError) -> Response:
        return _json_error(error.status, error.message, error.headers)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, error: HTTPException) -> Response:
        return _json_error(error.status_code, _one_line(error.detail), error.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> Response:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ())[1:]) or "request"
        return _json_error(422, f"{where}: {first.get('msg', 'invalid value')}")

    @app.exception_handler(Exception)
    async def _failed(request: Request, error: Exception) -> Response:
        # The traceback goes to the server's log; the client gets one line.
        _LOG.error("request failed", exc_info=error)
        return _json_error(500, f"internal error: {_one_line(error)}")

    @app.get("/health")
    def health() -> dict[str, Any]:
        """Whether the server answers, the model it serves, and its queue."""
        return {
            "status": "ok",
            "version": adain.__version__,
            "model": stylist.model_name,
            "device": str(stylist.device),
            **gate.status(),
        }

    @app.get("/styles")
    def styles() -> dict[str, list[dict[str, str]]]:
        """The presets a request may name with ``preset``: images or encoded presets."""
        return {
            "styles": [
                {"name": name, "kind": "preset" if path.suffix == ".safetensors" else "image"}
                for name, path in stylist.styles.items()
            ]
        }

    @app.post(
        "/stylize",
        response_class=Response,
        responses={
            200: {"content": {"image/png": {}, "image/jpeg": {}}, "description": "The image."},
            400: {"description": "A bad request: not an image, unknown preset, bad alpha."},
            413: {"description": "An upload over the size or pixel limit."},
            503: {"description": "Queue full: retry after the Retry-After header's seconds."},
        },
    )
    async def stylize(
        content: Annotated[UploadFile, File(description="Content image.")],
        style: Annotated[
            list[UploadFile] | None, File(description="Style images (repeat the field).")
        ] = None,
        preset: Annotated[
            list[str] | None, Form(description="Preset names from GET /styles (repeatable).")
        ] = None,
        alpha: Annotated[float, Form(description="Content-style trade-off, >= 0.")] = 1.0,
        weight: Annotated[
            list[float] | None,
            Form(description="One weight per style: uploaded styles first, then presets."),
        ] = None,
        preserve_color: Annotated[
            Literal["coral", "luminance"] | None,
            Form(description="Keep the content's colours: coral or luminance."),
        ] = None,
        format: Annotated[Literal["png", "jpeg"], Form(description="Output format.")] = "png",
        quality: Annotated[int, Form(ge=1, le=100, description="JPEG quality.")] = 92,
    ) -> Response:
        """Stylise the content with uploaded styles and/or presets; the image at its size."""
        try:
            check_alpha(alpha)
        except ValueError as error:
            raise RequestError(400, str(error)) from None
        names = list(preset or [])
        for name in names:  # before any work: an unknown name is the client's mistake
            try:
                stylist.preset(name)
            except KeyError as error:
                raise RequestError(400, error.args[0]) from None
        uploads = [("content", content)] + [("style", file) for file in style or []]
        blobs = [(field, file.filename, await file.read()) for field, file in uploads]
        if len(blobs) == 1 and not names:
            raise RequestError(400, "give a style: a `style` file or a `preset` name")

        def job() -> bytes:
            images = [read_upload(data, f, name, limits.max_pixels) for f, name, data in blobs]
            try:
                out = stylist.stylize(
                    images[0],
                    [*images[1:], *names],
                    alpha=alpha,
                    weights=weight,
                    preserve_color=preserve_color,
                )
            except ValueError as error:
                raise RequestError(400, _one_line(error)) from None
            return _encode(out, format, quality)

        try:
            body = await asyncio.wrap_future(gate.submit(job))
        except RequestError:
            raise
        except Exception as error:
            if _out_of_memory(error):
                raise RequestError(503, "out of memory: send a smaller image") from None
            raise
        return Response(body, media_type=_MEDIA_TYPES[format])

    return app


def _out_of_memory(error: BaseException) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(error, torch.OutOfMemoryError | MemoryError)


def serve(stylist: Stylist, limits: Limits, host: str, port: int) -> None:
    """Run the app with uvicorn until interrupted."""
    import uvicorn

    uvicorn.run(create_app(stylist, limits), host=host, port=port, log_level="info")
