"""The edge's page at ``/`` in a real headless Chromium with a fake microphone.

Debian's ``chromium`` and ``chromium-driver`` (``make test`` installs them via
mk/realtime.mk) play a generated WAV as the microphone; Selenium clicks
"Start talking" and waits for what the page received over the Realtime
protocol: a final transcript, the reply text, reply audio, the latency
breakdown and the engines. ``VOXMESH_SCREENSHOT=PATH`` saves a screenshot
(docs/img/realtime-page.png was made this way).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from tests.integration.realtime_edge import EdgeMesh, edge_mesh
from voxmesh.synthetic_speech import silence, speak

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
RATE = 16_000

pytestmark = pytest.mark.skipif(
    not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)),
    reason="needs Debian's chromium and chromium-driver (make test installs them: mk/realtime.mk)",
)


@pytest.fixture(scope="module")
def edge() -> Iterator[EdgeMesh]:
    with edge_mesh() as mesh:
        yield mesh


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    # Chromium loops the file: one question, then long enough a pause for the reply.
    mic = tmp_path / "mic.wav"
    sf.write(mic, np.concatenate([silence(0.5, RATE), speak("hello world", RATE), silence(6.0, RATE)]), RATE)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1000,760",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={mic}",
        "--autoplay-policy=no-user-gesture-required",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver: Any, script: str, timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.2)
    stats = driver.execute_script("return window.voxmeshStats")
    raise AssertionError(f"timed out waiting for `{script}`; the page saw {stats}")


def test_page_talks_through_a_fake_microphone(edge: EdgeMesh, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    browser.get(f"http://{edge.edge.address}/")
    wait_for(browser, "return window.voxmeshStats && window.voxmeshStats.engines", 30)
    browser.find_element(By.ID, "start").click()
    wait_for(browser, "const s = window.voxmeshStats; return s.responsesDone > 0 && s.latency", 120)
    time.sleep(1.0)  # let the last reply audio play for the screenshot
    stats = browser.execute_script("return window.voxmeshStats")

    assert stats["engines"]["voxtral"]["engine"] == "echo"
    assert stats["finalTranscripts"] and stats["finalTranscripts"][0].strip()
    assert "You said" in stats["replies"][0]
    assert stats["audioBytes"] > RATE  # > 0.3 s of 24 kHz PCM16 arrived
    assert stats["latency"]["response_latency_ms"] > 0
    assert not stats["errors"], stats["errors"]
    page = browser.find_element(By.TAG_NAME, "body").text
    assert "echo" in page and "loop-back" in page  # the engines, shown as what they are
    assert "response latency" in page
    print(
        f"browser: speech_stopped → first reply audio at the page {stats['firstAudioMs']:.0f} ms; "
        f"gateway latency_ms {stats['latency']}"
    )
    if target := os.environ.get("VOXMESH_SCREENSHOT"):
        browser.save_screenshot(target)
