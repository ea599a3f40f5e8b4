"""The page at / in Debian's headless Chromium: charts with data, the alert raised here, history."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics.export import MetricsData

from otel_sysops.alerts import Severity
from otel_sysops.store import RingStore
from tests.conftest import need

from .conftest import Agent, wait_for

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


class ScoreInjector:
    """A sink that gives one series a high anomaly score each tick (the detector's output, injected)."""

    name = "test.scores"

    def __init__(self, store: RingStore) -> None:
        self.store = store

    def consume(self, data: MetricsData, timestamp: float) -> None:
        self.store.put("sysops.anomaly.score", [(("sysops.metric", "system.cpu.load_average.1m"),)], [0.93])

    def failures(self) -> int:
        return 0

    def close(self, timeout: float) -> None:
        return None


@pytest.fixture
def browser() -> Iterator[Any]:
    """Return a Selenium driver for headless Chromium (skipped, or failed in CI, when absent)."""
    need(Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists(), "chromium and chromium-driver")
    selenium = pytest.importorskip("selenium")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    assert selenium
    options = Options()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(arg)
    options.add_argument("--window-size=1400,1900")
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def ticking(agent: Agent, stop: threading.Event) -> threading.Thread:
    def run() -> None:
        while not stop.is_set():
            agent.pipeline.tick()
            stop.wait(0.5)

    thread = threading.Thread(target=run, name="test-ticks", daemon=True)
    thread.start()
    return thread


def test_the_page_shows_live_charts_the_alert_raised_and_its_history(
    start_agent: Callable[..., Agent], browser: Any
) -> None:
    agent = start_agent(load=True)
    agent.pipeline.sinks.insert(1, ScoreInjector(agent.pipeline.store))
    for _ in range(3):
        agent.pipeline.tick()  # history for the charts before the page loads
    stop = threading.Event()
    thread = ticking(agent, stop)
    try:
        browser.get(agent.url + "/")
        script = browser.execute_script
        wait_for(lambda: script("return document.body.dataset.ready === 'true'"), "the page to load")
        # Ticks arrive over the event stream and extend the charts.
        wait_for(
            lambda: int(script("return Number(document.body.dataset.ticks || 0)")) >= 2, "two live ticks"
        )
        for key in ("cpu", "memory", "network", "load"):
            points = script(
                "return [...charts.get(arguments[0]).lines.values()].reduce((n, l) => n + l.v.length, 0)", key
            )
            assert points >= 3, f"chart {key} has {points} points"
            legend = browser.find_element("css selector", f'[data-chart="{key}"] .legend').text
            assert legend.strip(), key
            assert "no data" not in legend, key
        assert browser.find_elements("css selector", "#top tbody tr"), "top processes listed"
        # A request landing mid-tick can see the detector's own score before the injected one: the
        # page asks again every 30 s, so wait past one refresh.
        wait_for(
            lambda: "load_average" in browser.find_element("id", "anomalies").text,
            "the anomaly listed",
            timeout=45.0,
        )

        agent.fire("cpu.saturated", Severity.CRITICAL, cpu="1")
        wait_for(
            lambda: "cpu.saturated" in browser.find_element("id", "alerts").text, "the alert on the page"
        )
        wait_for(
            lambda: "cpu.saturated" in browser.find_element("id", "history").text, "the alert in history"
        )
        assert "critical" in browser.find_element("id", "alerts").text.lower()
        wait_for(lambda: "test-host" in browser.find_element("id", "inventory").text, "the inventory")
        assert not [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        ARTIFACTS.mkdir(exist_ok=True)
        browser.save_screenshot(str(ARTIFACTS / "agent-page.png"))
    finally:
        stop.set()
        thread.join(10.0)
