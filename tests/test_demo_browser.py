"""``adain demo`` in a real browser: Debian's headless chromium driven by Selenium.

The real command runs in a subprocess on 127.0.0.1 with a tiny random model saved here. The
browser uploads a content and a style, runs, checks the result's size against the content and
against the Python API, moves the alpha slider, runs again, and checks the result changed. The
screenshot lands in the test's temporary folder (a CI artefact); with
``ADAIN_DEMO_SCREENSHOT=docs/demo.png`` it is also copied there (the README's picture).
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import make_model
from PIL import Image

pytestmark = pytest.mark.browser

httpx = pytest.importorskip("httpx")
pytest.importorskip("gradio")
webdriver = pytest.importorskip("selenium.webdriver")

from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402
from test_server import child_env, free_port, wait_until_up  # noqa: E402

from adain import stylize  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
CONTENT = EXAMPLES / "content" / "chelsea.jpg"  # 385x256
STYLE = EXAMPLES / "style" / "waves.jpg"
WAIT = 120  # seconds; a run takes well under one, the budget is for a loaded machine
# Gradio re-renders components as values change: a found element can go stale between finding
# and reading it, so waits find it again.
RETRY = (StaleElementReferenceException,)

if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
    pytest.skip(
        "needs Debian's chromium and chromium-driver (.ci/run installs them)",
        allow_module_level=True,
    )


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("demo")
    model = make_model()
    model.save_pretrained(folder / "tiny-model")
    port = free_port()
    command = [
        sys.executable, "-m", "adain", "demo", "--model", str(folder / "tiny-model"),
        "--device", "cpu", "--port", str(port),
    ]  # fmt: skip
    env = {**child_env(), "GRADIO_TEMP_DIR": str(folder / "gradio")}
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    drain = threading.Thread(target=process.stdout.read, daemon=True)  # type: ignore[union-attr]
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{url}/", process)
        drain.start()
        yield {"url": url, "model": model}
    finally:
        process.terminate()
        process.wait(timeout=30)
        if drain.is_alive():
            drain.join(timeout=30)
        process.stdout.close()  # type: ignore[union-attr]


@pytest.fixture
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--window-size=1280,1300", "--disable-extensions", "--no-first-run",
    ):  # fmt: skip
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def fetch(url: str) -> Image.Image:
    response = httpx.get(url, timeout=60.0)
    assert response.status_code == 200, url
    image = Image.open(io.BytesIO(response.content))
    image.load()
    return image.convert("RGB")


def run_and_wait(driver, previous: str | None) -> tuple[str, str]:
    """Click Stylise; wait for a new result. Returns the shown image's URL and the download's."""
    driver.find_element(By.ID, "run").click()

    def new_result(d):
        images = d.find_elements(By.CSS_SELECTOR, "#result img")
        links = d.find_elements(By.CSS_SELECTOR, "#download a[href]")
        if not images or not links:
            return None
        src = images[0].get_attribute("src")
        return (src, links[0].get_attribute("href")) if src and src != previous else None

    return WebDriverWait(driver, WAIT, 0.2, RETRY).until(new_result)


def test_demo_in_a_browser(demo, browser, tmp_path):
    driver = browser
    driver.get(demo["url"])
    wait = WebDriverWait(driver, WAIT, 0.2, RETRY)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#content input[type=file]"))

    # Upload a content and a style through the page's own file inputs.
    driver.find_element(By.CSS_SELECTOR, "#content input[type=file]").send_keys(str(CONTENT))
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#content img"))
    driver.find_element(By.CSS_SELECTOR, "#style-upload input[type=file]").send_keys(str(STYLE))
    wait.until(lambda d: STYLE.stem in d.find_element(By.ID, "style-upload").text)

    shown, download = run_and_wait(driver, None)
    full = fetch(download)
    with Image.open(CONTENT) as original:
        assert full.size == original.size  # the download is at the content's full size
    assert fetch(shown).size == full.size
    expected = stylize(CONTENT, STYLE, model=demo["model"], alpha=1.0, device="cpu")
    diff = np.abs(np.asarray(full, np.int16) - np.asarray(expected, np.int16))
    assert diff.max() <= 1, f"max diff {diff.max()} from the Python API"

    # Move the alpha slider with the keyboard, as a user would: 1.0 -> 0.5 in steps of 0.05.
    slider = driver.find_element(By.CSS_SELECTOR, "#alpha input[type=range]")
    slider.send_keys(*[Keys.ARROW_LEFT] * 10)
    number = "#alpha input[type=number]"
    wait.until(
        lambda d: (
            abs(float(d.find_element(By.CSS_SELECTOR, number).get_attribute("value")) - 0.5) < 1e-6
        )
    )

    shown_half, download_half = run_and_wait(driver, shown)
    half = fetch(download_half)
    assert half.size == full.size
    expected_half = stylize(CONTENT, STYLE, model=demo["model"], alpha=0.5, device="cpu")
    diff = np.abs(np.asarray(half, np.int16) - np.asarray(expected_half, np.int16))
    assert diff.max() <= 1, f"max diff {diff.max()} from the Python API at alpha 0.5"
    change = np.abs(np.asarray(half, np.float32) - np.asarray(full, np.float32)).mean()
    assert change > 2.0, f"alpha 0.5 and 1 differ by only {change:.2f} grey levels on average"
    assert "alpha 0.5" in driver.find_element(By.ID, "info").text

    screenshot = tmp_path / "demo.png"
    assert driver.save_screenshot(str(screenshot))
    with Image.open(screenshot) as shot:
        assert shot.size[0] >= 1000
    target = os.environ.get("ADAIN_DEMO_SCREENSHOT")
    if target:  # the README's copy, in 256 colours to keep the repository small
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        with Image.open(screenshot) as shot:
            shot.convert("RGB").quantize(colors=256).save(target, optimize=True)

    # A click on a gallery picture picks that style (and a second click drops it).
    thumbnail = "//*[@id='gallery']//button[.//*[normalize-space(text())='hubble']]"
    box = "//*[@id='picked']//label[normalize-space(.)='hubble']//input"
    driver.find_element(By.XPATH, thumbnail).click()
    wait.until(lambda d: d.find_element(By.XPATH, box).is_selected())
    driver.find_element(By.XPATH, thumbnail).click()
    wait.until(lambda d: not d.find_element(By.XPATH, box).is_selected())
