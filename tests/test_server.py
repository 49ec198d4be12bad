"""``adain serve``: the real command in a subprocess on 127.0.0.1, driven by a real HTTP client.

The server runs a tiny random model saved here (conftest's make_model), with small limits so
that each refusal is easy to provoke: 2 workers, 4 queued, 400x300 px, 0.5 MB bodies.
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from conftest import make_model
from PIL import Image
from typer.testing import CliRunner

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from adain import StyleStats, encode_style, stylize  # noqa: E402
from adain.cli import app  # noqa: E402
from adain.serve.limits import Busy, Gate, RequestError, read_upload  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
CONTENT = EXAMPLES / "content" / "chelsea.jpg"  # 385x256: not a multiple of 8
WAVES = EXAMPLES / "style" / "waves.jpg"
BRICK = EXAMPLES / "style" / "brick.jpg"
MAX_PIXELS = 400 * 300


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, process: subprocess.Popen, timeout: float = 180.0) -> None:
    """Poll ``url`` until it answers (the model loads before the port opens)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read() if process.stdout else ""
            raise AssertionError(f"the server exited with {process.returncode}:\n{output}")
        try:
            httpx.get(url, timeout=2.0)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within {timeout} s")


def child_env() -> dict[str, str]:
    """The test's environment, offline, one torch thread (the machine is small and shared)."""
    return {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("server")
    model = make_model()
    model.save_pretrained(folder / "tiny-model")
    styles = folder / "styles"
    styles.mkdir()
    for path in (WAVES, BRICK):
        (styles / path.name).write_bytes(path.read_bytes())
    encode_style(BRICK, model, device="cpu").save(styles / "brick-preset.safetensors")
    port = free_port()
    command = [
        sys.executable, "-m", "adain", "serve", "--model", str(folder / "tiny-model"),
        "--device", "cpu", "--port", str(port), "--styles", str(styles),
        "--concurrency", "2", "--queue-size", "4",
        "--max-pixels", str(MAX_PIXELS), "--max-upload-mb", "0.5",
    ]  # fmt: skip
    process = subprocess.Popen(
        command, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    url = f"http://127.0.0.1:{port}"
    drain = threading.Thread(target=process.stdout.read, daemon=True)  # type: ignore[union-attr]
    try:
        wait_until_up(f"{url}/health", process)
        # Drain the log so a chatty server never blocks on a full pipe.
        drain.start()
        yield {"url": url, "model": model, "styles": styles}
    finally:
        process.terminate()
        process.wait(timeout=30)
        if drain.is_alive():
            drain.join(timeout=30)
        process.stdout.close()  # type: ignore[union-attr]


@pytest.fixture
def client(setup):
    with httpx.Client(base_url=setup["url"], timeout=120.0) as session:
        yield session


def post(client, files: dict, data: dict | None = None, **kwargs):
    return client.post("/stylize", files=files, data=data or {}, **kwargs)


def files_of(content: Path = CONTENT, *styles: Path) -> list[tuple[str, tuple[str, bytes]]]:
    parts = [("content", (content.name, content.read_bytes()))]
    parts += [("style", (path.name, path.read_bytes())) for path in styles]
    return parts


def image_of(response) -> Image.Image:
    image = Image.open(io.BytesIO(response.content))
    image.load()
    return image


def assert_same_pixels(got: Image.Image, expected: Image.Image) -> None:
    """Within one grey level: the server's threads may sum floats in another order."""
    assert got.size == expected.size
    diff = np.abs(np.asarray(got, np.int16) - np.asarray(expected.convert("RGB"), np.int16))
    assert diff.max() <= 1, f"max diff {diff.max()}, mean {diff.mean():.4f}"


# Endpoints ----------------------------------------------------------------------------------


def test_health_and_styles(client, setup):
    health = client.get("/health").json()
    assert health["status"] == "ok"
    assert health["model"] == str(Path(setup["styles"]).parent / "tiny-model")
    assert health["device"] == "cpu"
    assert (health["concurrency"], health["capacity"]) == (2, 6)
    styles = client.get("/styles").json()["styles"]
    assert styles == [
        {"name": "brick", "kind": "image"},
        {"name": "brick-preset", "kind": "preset"},
        {"name": "waves", "kind": "image"},
    ]


def test_openapi_describes_every_endpoint(client):
    schema = client.get("/openapi.json").json()
    assert {"/stylize", "/styles", "/health"} <= set(schema["paths"])
    form = schema["paths"]["/stylize"]["post"]["requestBody"]["content"]
    fields = next(iter(form.values()))["schema"]
    assert fields  # a multipart form with content, style, preset, alpha, ...
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


def test_stylize_upload_matches_the_python_api(client, setup):
    response = post(client, files_of(CONTENT, WAVES), {"alpha": "0.7"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    got = image_of(response)
    assert got.size == (385, 256)  # the content's size
    expected = stylize(CONTENT, WAVES, model=setup["model"], alpha=0.7, device="cpu")
    assert_same_pixels(got, expected)


def test_presets_with_weights_match_the_python_api(client, setup):
    data = {"preset": ["waves", "brick-preset"], "weight": ["1", "3"]}
    response = post(client, files_of(CONTENT), data)
    assert response.status_code == 200, response.text
    preset = StyleStats.load(setup["styles"] / "brick-preset.safetensors")
    expected = stylize(CONTENT, [WAVES, preset], model=setup["model"], weights=[1, 3], device="cpu")
    assert_same_pixels(image_of(response), expected)


def test_uploads_then_presets_and_preserved_colour(client, setup):
    data = {"preset": "waves", "weight": ["2", "1"], "preserve_color": "coral", "alpha": "0.5"}
    response = post(client, files_of(CONTENT, BRICK), data)
    assert response.status_code == 200, response.text
    expected = stylize(
        CONTENT, [BRICK, WAVES], model=setup["model"], weights=[2, 1], alpha=0.5,
        preserve_color="coral", device="cpu",
    )  # fmt: skip
    assert_same_pixels(image_of(response), expected)


def test_jpeg_output(client):
    response = post(client, files_of(CONTENT, WAVES), {"format": "jpeg", "quality": "80"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/jpeg"
    image = image_of(response)
    assert (image.format, image.size) == ("JPEG", (385, 256))


# Bad requests -------------------------------------------------------------------------------


def big_png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (90, 120, 200)).save(buffer, "PNG")
    return buffer.getvalue()


def noise_png(side: int) -> bytes:
    buffer = io.BytesIO()
    pixels = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


BAD_REQUESTS = {
    "not an image": (
        [("content", ("notes.txt", b"hello")), ("style", (WAVES.name, WAVES.read_bytes()))],
        {},
        400,
        ["content (notes.txt)", "not an image"],
    ),
    "too many pixels": (
        [("content", ("big.png", big_png(500, 300))), ("style", (WAVES.name, WAVES.read_bytes()))],
        {},
        413,
        ["content (big.png)", "500x300 px", "120,000 pixels", "--max-pixels"],
    ),
    "body too large": (
        [("content", ("noise.png", noise_png(600))), ("style", (WAVES.name, WAVES.read_bytes()))],
        {},
        413,
        ["request body", "0.5 MB", "--max-upload-mb"],
    ),
    "unknown preset": (files_of(CONTENT), {"preset": "monet"}, 400, ["'monet'", "brick, "]),
    "negative alpha": (files_of(CONTENT, WAVES), {"alpha": "-1"}, 400, ["alpha", "-1"]),
    "alpha not a number": (files_of(CONTENT, WAVES), {"alpha": "lots"}, 422, ["alpha"]),
    "infinite alpha": (files_of(CONTENT, WAVES), {"alpha": "inf"}, 400, ["alpha", "finite"]),
    "no style": (files_of(CONTENT), {}, 400, ["give a style"]),
    "weights count": (files_of(CONTENT, WAVES), {"weight": ["1", "2"]}, 400, ["2 weights"]),
    "coral with a preset file": (
        files_of(CONTENT),
        {"preset": "brick-preset", "preserve_color": "coral"},
        400,
        ["coral"],
    ),
    "tiny image": (
        [("content", ("dot.png", big_png(8, 8))), ("style", (WAVES.name, WAVES.read_bytes()))],
        {},
        400,
        ["8x8", "at least 16x16"],
    ),
}


@pytest.mark.parametrize("case", BAD_REQUESTS, ids=list(BAD_REQUESTS))
def test_bad_request_gets_one_line_of_json(client, case):
    files, data, status, words = BAD_REQUESTS[case]
    response = post(client, files, data)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert "\n" not in error and "Traceback" not in error
    for word in words:
        assert word in error, error
    assert client.get("/health").json()["status"] == "ok"  # still serving


def test_streamed_body_over_the_limit_gets_413(client):
    """Without Content-Length (chunked), the body is counted as it arrives."""
    boundary = "adain-test-boundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="content"; filename="n.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()

    def chunks():
        yield head
        for _ in range(12):  # 12 x 64 KiB: over the 0.5 MB limit
            yield b"\0" * 65536
        yield f"\r\n--{boundary}--\r\n".encode()

    response = client.post(
        "/stylize",
        content=chunks(),
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
    )
    assert response.status_code == 413, response.text
    assert "0.5 MB" in response.json()["error"]
    assert client.get("/health").json()["status"] == "ok"


def test_unknown_path_is_json_too(client):
    response = client.get("/nothing-here")
    assert response.status_code == 404 and response.json() == {"error": "Not Found"}


# Load ---------------------------------------------------------------------------------------


def test_load_every_answer_is_an_image_or_503(client, setup):
    """50 requests, 8 at a time, against 2 workers and 4 queue places: each answer is the right
    image or a 503 with Retry-After; none is lost; the server is healthy and idle after."""
    expected = stylize(CONTENT, WAVES, model=setup["model"], alpha=0.9, device="cpu")
    served_before = client.get("/health").json()["served"]
    files = files_of(CONTENT, WAVES)

    def one(_: int):
        with httpx.Client(base_url=setup["url"], timeout=300.0) as own:
            return post(own, files, {"alpha": "0.9"})

    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(one, range(50)))
    statuses = Counter(response.status_code for response in responses)
    assert set(statuses) <= {200, 503}, statuses
    assert statuses[200] >= 1
    for response in responses:
        if response.status_code == 200:
            assert_same_pixels(image_of(response), expected)
        else:
            assert int(response.headers["retry-after"]) >= 1
            assert "busy" in response.json()["error"]
    health = client.get("/health").json()
    assert health["served"] - served_before == statuses[200]  # every admitted one answered
    assert (health["status"], health["running"], health["queued"]) == ("ok", 0, 0)


# The gate and the upload reader, in process ------------------------------------------------


def test_gate_admits_concurrency_plus_queue_then_refuses():
    gate = Gate(concurrency=1, queue_size=1)
    release = threading.Event()
    try:
        first = gate.submit(release.wait)
        second = gate.submit(lambda: "queued")
        with pytest.raises(Busy) as refused:
            gate.submit(lambda: "refused")
        assert refused.value.status == 503 and int(refused.value.headers["Retry-After"]) >= 1
        release.set()
        assert first.result(timeout=30) is True and second.result(timeout=30) == "queued"
        third = gate.submit(lambda: "after")  # slots come back when jobs end
        assert third.result(timeout=30) == "after"
    finally:
        release.set()
        gate.shutdown()


def test_upload_reader_applies_exif_orientation_and_names_the_field():
    buffer = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    Image.new("RGB", (40, 20), (255, 0, 0)).save(buffer, "JPEG", exif=exif)
    image = read_upload(buffer.getvalue(), "content", "photo.jpg", MAX_PIXELS)
    assert image.size == (20, 40) and image.mode == "RGB"
    with pytest.raises(RequestError) as truncated:
        read_upload(buffer.getvalue()[:200], "style", "cut.jpg", MAX_PIXELS)
    assert truncated.value.status == 400 and truncated.value.message.startswith("style (cut.jpg)")
    assert "adain-upload-" not in truncated.value.message  # no server paths leak


def test_serve_refuses_a_wrong_styles_folder_in_one_line(tmp_path):
    result = CliRunner().invoke(
        app, ["serve", "--model", str(tmp_path), "--styles", str(tmp_path / "nope")]
    )
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"error: --styles {tmp_path / 'nope'}: no such folder"
    ]
