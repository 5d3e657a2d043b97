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

from app_support import file_pixels, pixels, serving

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
    url = re.search(r"http://\S+", line).group(0)  # with its token
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
    """Wait until the page works at nothing (no request on its way, nothing waiting to be painted)
    and the JavaScript ``condition`` holds."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout, poll_frequency=0.05).until(
        lambda d: d.execute_script(f"return window.pandaBusy === 0 && !window.pandaWorking() && ({condition});")
    )


def image_of(driver, element_id: str) -> np.ndarray:
    return pixels(driver.find_element("id", element_id).get_attribute("src"))


def change(driver) -> torch.Tensor:
    """Where the edited image differs from the sample, ``(H, W)``: summed over colours, in [0, 3]."""
    edited, original = image_of(driver, "edited"), image_of(driver, "image")
    return torch.from_numpy(np.abs(edited.astype(np.float32) - original.astype(np.float32)).sum(-1) / 255)


def state_of(driver, which: str = "State") -> dict:
    return driver.execute_script(f"return window.panda{which}();")


def open_page(driver, url: str) -> None:
    driver.get(url)
    settled(driver, "window.pandaShown() !== null && document.getElementById('image').src.startsWith('data:')")


def test_pick_a_part_and_an_appearance_slide_the_strength_paint_a_mask_and_export(app_url, browser, converged, tmp_path, monkeypatch):
    from selenium.webdriver import ActionChains
    from selenium.webdriver.common.keys import Keys

    driver = browser
    screenshot = os.environ.get("PANDA_APP_SCREENSHOT") and Path(os.environ["PANDA_APP_SCREENSHOT"]).resolve()
    driver.get(app_url)
    # No broken image at the start: an image without its picture yet is hidden; the rewrite list is full.
    assert driver.execute_script(
        "return Array.from(document.images).every((i) => i.hasAttribute('src') ? i.complete : getComputedStyle(i).visibility === 'hidden');"
    )
    settled(driver, "window.pandaShown() !== null && document.getElementById('image').src.startsWith('data:')")
    assert len(driver.find_elements("css selector", "#source option")) == 128
    assert "token" not in driver.current_url  # (kept out of the address bar and of shared links)
    first_tab = driver.current_window_handle

    # 1. Click the hair at the left of the face, pixel (12, 36): the part there becomes the region,
    # and its gallery appears.
    stage = driver.find_element("id", "stage")
    scale = stage.size["width"] / 64
    ActionChains(driver).move_to_element_with_offset(stage, round((12 - 31.5) * scale), round((36 - 31.5) * scale)).click().perform()
    settled(driver, "window.pandaEdits >= 1 && document.querySelectorAll('#gallery button').length > 0")
    part = state_of(driver)["part"]
    assert part is not None and state_of(driver)["mask"] is None
    assert f"at part {part}" in driver.find_element("id", "region-name").text

    # 2. Pick the gallery's third appearance by its thumbnail.
    third = driver.find_elements("css selector", "#gallery button")[2]
    appearance = int(third.get_attribute("data-appearance"))
    third.click()
    settled(driver, f"window.pandaShown().appearance === {appearance}")
    assert third.get_attribute("aria-pressed") == "true"

    # 3. Slide the strength to 1.5 with the keyboard, as a user does; the image follows.
    slider = driver.find_element("id", "alpha")
    edits = driver.execute_script("return window.pandaEdits;")
    for _ in range(15):
        slider.send_keys(Keys.ARROW_RIGHT)
    settled(driver, f"window.pandaEdits > {edits} && document.getElementById('command').value.includes(', 1.5]]')")
    assert driver.find_element("id", "alpha-value").text == "1.5"
    command = driver.find_element("id", "command").get_attribute("value")
    assert f"--edits '[[{part}, {appearance}, 1.5]]'" in command and "--seed 0 " in command
    assert command.endswith("--layout edited --output edit-seed0.png")
    assert driver.find_element("id", "download").get_attribute("download") == "edit-seed0.png"

    # The edit is the part's: the image changed inside the part's region, hardly outside.
    model = PandA.load_from_checkpoint(converged / "checkpoints" / "last.ckpt")
    segment = part_masks(model.parts.detach(), 16, 16, (64, 64)).argmax(0) == part
    moved = change(driver)
    assert moved[segment].mean() > 3 * moved[~segment].mean()
    np.testing.assert_array_equal(image_of(driver, "original"), image_of(driver, "image"))  # the original beside it

    # 4. The exported command writes the page's image, bit for bit, as the whole file.
    edited_on_page = image_of(driver, "edited")
    monkeypatch.chdir(converged.parents[2])  # where the app was started: its paths are relative to it
    monkeypatch.setattr(sys, "argv", ["panda"])
    run([*shlex.split(command)[1:-1], str(tmp_path / "edit.png")])  # (--output elsewhere)
    np.testing.assert_array_equal(file_pixels(tmp_path / "edit.png"), edited_on_page)
    np.testing.assert_array_equal(pixels(driver.find_element("id", "download").get_attribute("href")), edited_on_page)
    if screenshot:
        driver.execute_script("window.scrollTo(0, 0);")
        driver.save_screenshot(str(screenshot))

    # 5. A second tab: another seed, another part, another strength; the first tab keeps its own.
    driver.switch_to.new_window("tab")
    open_page(driver, app_url)
    seed_box = driver.find_element("id", "seed")
    seed_box.clear()
    seed_box.send_keys("11", Keys.TAB)
    settled(driver, "window.pandaShown().seed === 11")
    driver.find_element("css selector", "#legend button[data-part='0']").click()
    settled(driver, "window.pandaEdits >= 1")
    second_command = driver.find_element("id", "command").get_attribute("value")
    assert "--seed 11 " in second_command and "[[0, " in second_command

    driver.switch_to.window(first_tab)
    assert driver.find_element("id", "command").get_attribute("value") == command
    np.testing.assert_array_equal(image_of(driver, "edited"), edited_on_page)
    state = state_of(driver)
    assert (state["seed"], state["part"], state["appearance"], state["alpha"]) == (0, part, appearance, 1.5)

    # 6. Paint a mask with the brush: the edit moves there, and the page says where to save the mask.
    driver.find_element("id", "tool-brush").click()
    canvas = driver.find_element("id", "mask-canvas")
    size = canvas.size["width"]
    edits = driver.execute_script("return window.pandaEdits;")
    (ActionChains(driver).move_to_element_with_offset(canvas, size // 4 - size // 2, -size // 4)
     .click_and_hold().move_by_offset(size // 8, 0).move_by_offset(0, size // 16).move_by_offset(-size // 8, 0).release().perform())
    settled(driver, f"window.pandaShown().mask !== null && window.pandaEdits > {edits}")
    mask_file = driver.find_element("id", "download-mask").get_attribute("download")
    assert re.fullmatch(r"panda-mask-[0-9a-f]{10}\.png", mask_file) and mask_file in driver.find_element("id", "command").get_attribute("value")
    assert mask_file in driver.find_element("id", "mask-hint").text
    alpha = driver.execute_script(
        "const c = document.getElementById('mask-canvas'); return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data);"
    )
    painted = torch.tensor(alpha, dtype=torch.float32).view(64, 64, 4)[..., 3] / 255
    # Lines between the pointer's events: the stroke's three segments are whole, not dots along them.
    assert (painted > 0.5).sum() > 60
    far = torch.nn.functional.max_pool2d(painted[None, None], 17, stride=1, padding=8)[0, 0] == 0  # 8 px away
    moved = change(driver)
    assert moved[painted > 0.5].mean() > 10 * moved[far].mean()
    # The stroke is drawn in stripes of black and white: seen over any part's colour.
    colours = driver.execute_script(
        "const c = document.getElementById('mask-canvas'); const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        "const seen = new Set(); for (let i = 0; i < d.length; i += 4) if (d[i + 3] === 255) seen.add(d[i] > 127 ? 'white' : 'black');"
        "return Array.from(seen).sort();"
    )
    assert colours == ["black", "white"]


@pytest.fixture
def slowed(editor, monkeypatch):
    """The editor served in a thread with every answer delayed by ``slowed.delay`` seconds (0 at
    first), as over a slow network or on a slow generator."""
    with serving(editor) as served:
        api = served.server.RequestHandlerClass.api
        served.delay = 0.0
        for route, answer in list(api.routes.items()):
            def late(payload, answer=answer):
                time.sleep(served.delay)
                return answer(payload)

            monkeypatch.setitem(api.routes, route, late)
        yield served


SNAPSHOT = """
const shown = window.pandaShown();
return {working: window.pandaWorking(), shown: shown, slider: Number(document.getElementById('alpha').value),
        label: document.getElementById('alpha-value').textContent, seed: document.getElementById('seed').value,
        command: document.getElementById('command').value, indicator: getComputedStyle(document.getElementById('working')).visibility};
"""


def consistent(snapshot: dict) -> bool:
    """Whether the controls and the command show the state whose answers are on screen."""
    shown = snapshot["shown"]
    return (
        snapshot["slider"] == shown["alpha"] and snapshot["label"] == f"{shown['alpha']:.1f}" and snapshot["seed"] == str(shown["seed"])
        and f"--seed {shown['seed']} " in snapshot["command"] and f", {shown['alpha']}]]" in snapshot["command"]
    )


def test_a_slow_server_shows_the_working_state_and_never_a_mixed_one(slowed, browser):
    from selenium.webdriver.common.keys import Keys

    driver = browser
    open_page(driver, slowed.page)
    driver.find_element("css selector", "#legend button[data-part='1']").click()
    settled(driver, "window.pandaShown().part === 1 && window.pandaEdits >= 1")
    slowed.delay = 0.3
    snapshots = []
    slider = driver.find_element("id", "alpha")
    for step in range(8):  # the strength moved faster than the server answers
        slider.send_keys(Keys.ARROW_RIGHT)
        snapshots += [driver.execute_script(SNAPSHOT) for _ in range(3)]
    seed_box = driver.find_element("id", "seed")
    seed_box.clear()
    seed_box.send_keys("4", Keys.TAB)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and (not snapshots or snapshots[-1]["working"] or snapshots[-1]["shown"]["seed"] != 4):
        snapshots.append(driver.execute_script(SNAPSHOT))
        time.sleep(0.05)
    working = [each for each in snapshots if each["working"]]
    idle = [each for each in snapshots if not each["working"]]
    assert working and all(each["indicator"] == "visible" for each in working)
    assert all(consistent(each) for each in idle), [each for each in idle if not consistent(each)][:1]
    final = snapshots[-1]
    assert not final["working"] and consistent(final) and final["shown"]["seed"] == 4 and final["shown"]["alpha"] == 0.8


def test_an_invalid_value_is_rolled_back_and_a_stopped_server_said(slowed, browser):
    from selenium.webdriver import ActionChains
    from selenium.webdriver.common.keys import Keys

    driver = browser
    open_page(driver, slowed.page)
    driver.find_element("css selector", "#legend button[data-part='2']").click()
    settled(driver, "window.pandaEdits >= 1")
    before = driver.execute_script(SNAPSHOT)
    image = image_of(driver, "edited")
    seed_box = driver.find_element("id", "seed")
    seed_box.clear()
    seed_box.send_keys("9007199254740993", Keys.TAB)  # more than a page's numbers hold exactly
    settled(driver, "document.getElementById('status').classList.contains('error')")
    assert "must be an integer from 0 to 9007199254740991" in driver.find_element("id", "status").text
    after = driver.execute_script(SNAPSHOT)
    assert after["seed"] == "0" and after["command"] == before["command"] and consistent(after)
    assert state_of(driver) == state_of(driver, "Shown")
    np.testing.assert_array_equal(image_of(driver, "edited"), image)
    seed_box.clear()
    seed_box.send_keys("11", Keys.TAB)  # the next action works
    settled(driver, "window.pandaShown().seed === 11")

    # The server stops: the page says so, and the slider goes back to what the image shows.
    slowed.server.shutdown()
    slowed.server.server_close()
    slider = driver.find_element("id", "alpha")
    ActionChains(driver).click_and_hold(slider).move_by_offset(60, 0).release().perform()
    settled(driver, "document.body.classList.contains('stopped')")
    assert driver.find_element("id", "stopped").is_displayed()
    final = driver.execute_script(SNAPSHOT)
    assert consistent(final) and final["shown"]["alpha"] == 0 and final["slider"] == 0
    assert not slider.is_enabled() and not driver.find_element("id", "seed").is_enabled()


def test_undo_reload_keyboard_and_a_narrow_window(app_url, browser):
    from selenium.webdriver import ActionChains
    from selenium.webdriver.common.keys import Keys

    driver = browser
    open_page(driver, app_url)

    def undo() -> None:
        ActionChains(driver).key_down(Keys.CONTROL).send_keys("z").key_up(Keys.CONTROL).perform()

    # Tab reaches the gallery, and Enter picks from it.
    driver.find_element("css selector", "#legend button[data-part='3']").click()
    settled(driver, "window.pandaShown().part === 3 && document.querySelectorAll('#gallery button').length > 0")
    driver.find_element("id", "seed").click()
    for _ in range(60):
        ActionChains(driver).send_keys(Keys.TAB).perform()
        focused = driver.execute_script("const b = document.activeElement.closest('#gallery button'); return b && Number(b.dataset.appearance);")
        if focused is not None and focused != state_of(driver)["appearance"]:
            break
    assert focused is not None, "Tab never reached the gallery"
    ActionChains(driver).send_keys(Keys.ENTER).perform()
    settled(driver, f"window.pandaShown().appearance === {focused}")

    # One drag of the slider is one step of undo; so is a stroke of the brush.
    slider = driver.find_element("id", "alpha")
    ActionChains(driver).click_and_hold(slider).move_by_offset(40, 0).move_by_offset(20, 0).release().perform()
    settled(driver, "window.pandaShown().alpha > 1")
    dragged = state_of(driver, "Shown")
    driver.find_element("id", "tool-brush").click()
    canvas = driver.find_element("id", "mask-canvas")
    ActionChains(driver).move_to_element_with_offset(canvas, -20, -40).click_and_hold().move_by_offset(40, 0).release().perform()
    settled(driver, "window.pandaShown().mask !== null")
    undo()
    settled(driver, "window.pandaShown().mask === null")
    assert state_of(driver, "Shown") == dragged
    assert driver.execute_script("const c = document.getElementById('mask-canvas');"
                                 "return c.getContext('2d').getImageData(0, 0, c.width, c.height).data.every((v, i) => i % 4 !== 3 || v === 0);")
    undo()
    settled(driver, "window.pandaShown().alpha === 0")
    assert state_of(driver, "Shown")["appearance"] == focused
    ActionChains(driver).click_and_hold(slider).move_by_offset(50, 0).release().perform()
    settled(driver, "window.pandaShown().alpha > 1")

    # A reload (or the address, shared) restores the edit.
    before, command = state_of(driver, "Shown"), driver.find_element("id", "command").get_attribute("value")
    assert "seed=0" in driver.current_url and "part=3" in driver.current_url
    driver.refresh()
    settled(driver, "window.pandaShown() !== null && window.pandaEdits >= 1")
    assert state_of(driver, "Shown") == before and driver.find_element("id", "command").get_attribute("value") == command

    # An address whose state is not valid here says why and shows the start.
    driver.get(app_url.split("?")[0] + "#seed=1&part=99&appearance=0&alpha=1")
    driver.refresh()
    settled(driver, "window.pandaShown() !== null")
    assert "part=99 must be an integer from 0 to 7" in driver.find_element("id", "status").text
    assert state_of(driver, "Shown")["part"] is None

    # From 400 px wide, nothing is cut off at the side. (Headless Chromium's windows are at
    # least 500 px wide: the page is given a 400 px screen instead.)
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {"width": 400, "height": 900, "deviceScaleFactor": 1, "mobile": False})
    try:
        assert driver.execute_script("return window.innerWidth;") == 400
        assert driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth;")
        assert driver.find_element("id", "stage").size["width"] > 250
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def test_open_a_photo_choose_its_box_invert_it_edit_it_and_export(app_url, browser, converged, tmp_path, monkeypatch):
    """The photo a person brings: opened with the file picker, its box set, inverted with its progress
    shown, edited at a refined part, and the exported command writes the page's download bit for bit."""
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    from test_photos import astronaut_jpeg

    driver = browser
    open_page(driver, app_url)
    folder = converged.parents[2]  # where the app runs, and so where its exported commands are run
    (folder / "me.jpg").write_bytes(astronaut_jpeg())
    driver.find_element("id", "photo-file").send_keys(str(folder / "me.jpg"))
    settled(driver, "document.getElementById('box-size').value === '512'")  # the middle square at first
    assert driver.find_element("id", "photo-panel").is_displayed()
    for field, value in (("box-size", "190"), ("box-x", "135"), ("box-y", "5")):  # (a smaller square first: it can move)
        box = driver.find_element("id", field)
        box.send_keys(Keys.CONTROL, "a")
        box.send_keys(value, Keys.TAB)
    settled(driver, "['box-x', 'box-y', 'box-size'].map((id) => document.getElementById(id).value).join() === '135,5,190'")
    driver.find_element("id", "invert").click()
    seen = set()
    from selenium.webdriver.support.ui import WebDriverWait

    def inverted(d):
        seen.add(d.find_element("id", "photo-status").text.split(" ")[0])
        return d.execute_script("return window.pandaShown() !== null && window.pandaShown().photo !== null && window.pandaBusy === 0;")

    WebDriverWait(driver, 120, poll_frequency=0.1).until(inverted)
    assert "inverting:" in seen  # the progress was shown
    assert not driver.find_element("id", "photo-panel").is_displayed()
    assert "Photo me.jpg, box 135,5,190 of 512 x 512 px" in driver.find_element("id", "photo-name").text
    assert image_of(driver, "original").shape == (512, 512, 3)

    Select(driver.find_element("id", "parts")).select_by_value("full")
    settled(driver, "window.pandaShown().parts === 'full'")
    driver.find_element("css selector", "#legend button[data-part='7']").click()
    settled(driver, "window.pandaShown().part === 7 && window.pandaEdits >= 1")
    slider = driver.find_element("id", "alpha")
    for _ in range(15):
        slider.send_keys(Keys.ARROW_LEFT)
    settled(driver, "window.pandaShown().alpha === -1.5")
    command = driver.find_element("id", "command").get_attribute("value")
    assert "--image me.jpg --inversion me.inversion.pt" in command and "--refine full" in command and "--seed" not in command
    assert "me.jpg, me.inversion.pt" in driver.find_element("id", "mask-hint").text
    link = driver.find_element("id", "download")
    link.click()  # the preview is a JPEG: the whole image, a PNG, is asked for on the click
    WebDriverWait(driver, 30).until(lambda d: d.find_element("id", "download").get_attribute("data-whole") == "yes")
    download = link.get_attribute("href")
    assert download.startswith("data:image/png") and pixels(download).shape == (512, 512, 3)  # the photo at its own size
    link = driver.find_element("id", "download-inversion")
    link.click()
    WebDriverWait(driver, 30).until(lambda d: (d.find_element("id", "download-inversion").get_attribute("href") or "").startswith("data:"))
    import base64

    (folder / "me.inversion.pt").write_bytes(base64.b64decode(link.get_attribute("href").split(",", 1)[1]))
    monkeypatch.chdir(folder)
    monkeypatch.setattr(sys, "argv", ["panda"])
    run([*shlex.split(command)[1:-1], str(tmp_path / "edit.png")])  # (--output elsewhere)
    np.testing.assert_array_equal(file_pixels(tmp_path / "edit.png"), pixels(download))
    # A seed returns to the samples.
    seed_box = driver.find_element("id", "seed")
    seed_box.clear()
    seed_box.send_keys("3", Keys.TAB)
    settled(driver, "window.pandaShown().photo === null && window.pandaShown().seed === 3")
    assert not driver.find_element("id", "photo-name").is_displayed()
