"""``panda app`` end to end in a real browser: the system's headless Chromium, driven by Selenium
through the system's chromedriver (nothing downloaded). ``.ci/run`` installs both from Debian's
packages and sets ``PANDA_REQUIRE_BROWSER=1``, so that there a missing browser fails rather than skips.

``PANDA_APP_SCREENSHOT=docs/app.png`` keeps the screenshot of the page for the README.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from panda_lightning import PandA
from panda_lightning.cli import run
from panda_lightning.images import part_masks

from test_app import middle_cell, pixels

BROWSER, DRIVER = shutil.which("chromium") or "/usr/bin/chromium", shutil.which("chromedriver") or "/usr/bin/chromedriver"

pytestmark = pytest.mark.slow


def _browser_or_skip() -> None:
    missing = [path for path in (BROWSER, DRIVER) if not Path(path).exists()]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package")
    if missing:
        message = f"no {', '.join(missing)}: apt-get install chromium chromium-driver (.ci/run does)"
        if os.environ.get("PANDA_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def app_url(converged):
    """``panda app --ckpt_path runs/panda/version_0/checkpoints/last.ckpt --port 0`` as a user starts
    it after ``make fit`` (the config found beside the checkpoint), until the tests end; then
    Ctrl-C stops it."""
    panda = Path(sys.executable).parent / "panda"
    checkpoint = converged.relative_to(converged.parents[2]) / "checkpoints" / "last.ckpt"
    # Ctrl-C as in a terminal: a test run started in the background of a shell (as a CI runner may
    # start it) inherits SIGINT ignored, and so would the app.
    process = subprocess.Popen([str(panda), "app", "--ckpt_path", str(checkpoint), "--port", "0"], cwd=converged.parents[2],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline, line = time.monotonic() + 120, ""
    while time.monotonic() < deadline and "serving at" not in line:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            pytest.fail(f"panda app exited: {process.stderr.read()[-2000:]}")
    url = re.search(r"http://\S+/", line).group(0)
    yield url
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=30) == 0


@pytest.fixture(scope="module")
def browser():
    _browser_or_skip()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = BROWSER
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,860"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


def settled(driver, condition: str = "true", timeout: float = 60) -> None:
    """Wait until no request is on its way and the JavaScript ``condition`` holds."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout, poll_frequency=0.05).until(lambda d: d.execute_script(f"return window.pandaBusy === 0 && ({condition});"))


def image_of(driver, element_id: str) -> np.ndarray:
    return pixels(driver.find_element("id", element_id).get_attribute("src"))


def change(driver) -> torch.Tensor:
    """Where the edited image differs from the sample, ``(H, W)``: summed over colours, in [0, 3]."""
    edited, original = image_of(driver, "edited"), image_of(driver, "image")
    return torch.from_numpy(np.abs(edited.astype(np.float32) - original.astype(np.float32)).sum(-1) / 255)


def test_pick_a_part_and_an_appearance_slide_the_strength_paint_a_mask_and_export(app_url, browser, converged, tmp_path, monkeypatch):
    from selenium.webdriver import ActionChains
    from selenium.webdriver.common.keys import Keys

    driver = browser
    screenshot = os.environ.get("PANDA_APP_SCREENSHOT") and Path(os.environ["PANDA_APP_SCREENSHOT"]).resolve()
    driver.get(app_url)
    settled(driver, "window.pandaState.size !== null && document.getElementById('image').src.startsWith('data:')")
    first_tab = driver.current_window_handle

    # 1. Click the hair at the left of the face, pixel (12, 36): the part there becomes the region,
    # and its gallery appears.
    stage = driver.find_element("id", "stage")
    scale = stage.size["width"] / 64
    ActionChains(driver).move_to_element_with_offset(stage, round((12 - 31.5) * scale), round((36 - 31.5) * scale)).click().perform()
    settled(driver, "window.pandaEdits >= 1 && document.querySelectorAll('#gallery figure').length > 0")
    part = driver.execute_script("return window.pandaState.part;")
    assert driver.execute_script("return window.pandaState.masked;") is False
    assert f"at part {part}" in driver.find_element("id", "region-name").text

    # 2. Pick the gallery's third appearance by its thumbnail.
    third = driver.find_elements("css selector", "#gallery figure")[2]
    appearance = int(third.get_attribute("data-appearance"))
    third.click()
    settled(driver, f"window.pandaState.appearance === {appearance}")

    # 3. Slide the strength to 1.5 with the keyboard, as a user does; the image follows.
    slider = driver.find_element("id", "alpha")
    edits = driver.execute_script("return window.pandaEdits;")
    for _ in range(15):
        slider.send_keys(Keys.ARROW_RIGHT)
    settled(driver, f"window.pandaEdits > {edits} && document.getElementById('command').value.includes(', 1.5]]')")
    assert driver.find_element("id", "alpha-value").text == "1.5"
    command = driver.find_element("id", "command").get_attribute("value")
    assert f"--edits '[[{part}, {appearance}, 1.5]]'" in command and "--seed 0 " in command

    # The edit is the part's: the image changed inside the part's region, hardly outside.
    model = PandA.load_from_checkpoint(converged / "checkpoints" / "last.ckpt")
    segment = part_masks(model.parts.detach(), 16, 16, (64, 64)).argmax(0) == part
    moved = change(driver)
    assert moved[segment].mean() > 3 * moved[~segment].mean()

    # 4. The exported command writes the same image, bit for bit.
    edited_on_page = image_of(driver, "edited")
    monkeypatch.chdir(converged.parents[2])  # where the app was started: its paths are relative to it
    monkeypatch.setattr(sys, "argv", ["panda"])
    run([*shlex.split(command)[1:-1], str(tmp_path / "edit.png")])  # (--output elsewhere)
    np.testing.assert_array_equal(middle_cell(tmp_path / "edit.png"), edited_on_page)
    if screenshot:
        driver.execute_script("window.scrollTo(0, 0);")
        driver.save_screenshot(str(screenshot))

    # 5. A second tab: another seed, another part, another strength; the first tab keeps its own.
    driver.switch_to.new_window("tab")
    driver.get(app_url)
    settled(driver, "window.pandaState.size !== null")
    seed_box = driver.find_element("id", "seed")
    seed_box.clear()
    seed_box.send_keys("9007199254740993", Keys.TAB)  # more than a page's numbers hold exactly
    settled(driver, "document.getElementById('status').classList.contains('error')")
    assert "must be an integer from 0 to 9007199254740991" in driver.find_element("id", "status").text
    seed_box.clear()
    seed_box.send_keys("11", Keys.TAB)  # the server is still serving
    settled(driver, "window.pandaState.seed === 11 && !document.getElementById('status').classList.contains('error')")
    driver.find_element("css selector", "#legend button[data-part='0']").click()
    settled(driver, "window.pandaEdits >= 1")
    second_command = driver.find_element("id", "command").get_attribute("value")
    assert "--seed 11 " in second_command and "[[0, " in second_command

    driver.switch_to.window(first_tab)
    assert driver.find_element("id", "command").get_attribute("value") == command
    np.testing.assert_array_equal(image_of(driver, "edited"), edited_on_page)
    state = driver.execute_script("return window.pandaState;")
    assert (state["seed"], state["part"], state["appearance"], state["alpha"]) == (0, part, appearance, 1.5)

    # 6. Paint a mask with the brush: the edit moves there.
    driver.find_element("id", "tool-brush").click()
    canvas = driver.find_element("id", "mask-canvas")
    size = canvas.size["width"]
    edits = driver.execute_script("return window.pandaEdits;")
    (ActionChains(driver).move_to_element_with_offset(canvas, size // 4 - size // 2, -size // 4)
     .click_and_hold().move_by_offset(size // 8, 0).move_by_offset(0, size // 16).move_by_offset(-size // 8, 0).release().perform())
    settled(driver, f"window.pandaState.masked && window.pandaEdits > {edits} && document.getElementById('command').value.includes('panda-mask.png')")
    assert driver.find_element("id", "download-mask").is_displayed()
    alpha = driver.execute_script(
        "const c = document.getElementById('mask-canvas'); return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data);"
    )
    painted = torch.tensor(alpha, dtype=torch.float32).view(64, 64, 4)[..., 3] / 255
    far = torch.nn.functional.max_pool2d(painted[None, None], 17, stride=1, padding=8)[0, 0] == 0  # 8 px away
    moved = change(driver)
    assert painted.sum() > 20 and moved[painted > 0.5].mean() > 10 * moved[far].mean()
