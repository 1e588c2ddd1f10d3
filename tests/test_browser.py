"""The dashboard in a real browser: ``streamlit run app/main.py`` and headless Chromium (Selenium).

Every page is loaded, its plotly charts must draw, and no exception, error box or "Traceback" /
"Error" text may appear. A screenshot of each page goes to ``$IBINN_SCREENSHOTS`` (default: a
temporary folder, printed). Skips when Chromium, chromedriver or Selenium are missing (Debian:
``apt-get install -y chromium chromium-driver``; ``.ci/run`` installs them).
"""

from __future__ import annotations

import math
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from ibinn import zoo

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
#: url path → number of plotly charts the page draws with the default selection (one model).
PAGES = {"": 0, "latent": 1, "interpolation": 2, "sampling": 1, "ood": 3, "gamma": 2, "train": 0,
         "your_image": 2, "versus": 6}
WINDOW = (1500, 2200)  # the browser's window size in pixels (as --window-size)
PAGE_TIMEOUT = 180  # seconds: the first page to use a model loads it and runs the demo set through it

pytestmark = [
    pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason="chromium / chromedriver not installed"),
    pytest.mark.slow,
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[str]:
    """The app served on a free port; yields its base URL."""
    if not any(c.kind == "ibinn" for c in zoo.list_models()) and not os.environ.get("IBINN_MODELS"):
        pytest.skip("no IB-INN in pretrained/ (and no $IBINN_MODELS)")
    port = _free_port()
    log = tmp_path_factory.mktemp("server") / "streamlit.log"
    env = {**os.environ, "IBINN_RUNS": str(tmp_path_factory.mktemp("runs"))}
    cmd = [sys.executable, "-m", "streamlit", "run", str(REPO / "app" / "main.py"),
           "--server.headless", "true", "--server.port", str(port), "--server.address", "127.0.0.1",
           "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"streamlit did not start:\n{log.read_text()}")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--window-size={WINDOW[0]},{WINDOW[1]}",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("IBINN_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"screenshots: {folder}")
    return folder


#: Finds what overlaps or is cut off on the page shown, as one line per problem: in each plotly
#: chart, its legend over a plot area, an axis title, annotation, legend or title over a plot area
#: it does not belong to (titles) or over one another, point labels (class means) on top of each
#: other, and any of its text under the toolbar or past the chart's edge or over another chart or
#: image; in the page, text cut by its box (ellipsis or hidden overflow: sidebar chips, labels).
LAYOUT_CHECK = """
const problems = [];
const box = e => e.getBoundingClientRect();
const area = r => Math.max(0, r.width) * Math.max(0, r.height);
const shared = (a, b) => Math.max(0, Math.min(a.right, b.right) - Math.max(a.left, b.left))
                       * Math.max(0, Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top));
const covers = (a, b, share) => shared(a, b) > share * Math.min(area(a), area(b));
const words = e => (e.textContent || "").trim().slice(0, 40);
const charts = [...document.querySelectorAll('[data-testid="stPlotlyChart"]')];
const images = [...document.querySelectorAll('[data-testid="stImage"] img')];
charts.forEach((chart, i) => {
  const where = `chart ${i + 1}`;
  const frame = box(chart);
  const plots = [...chart.querySelectorAll('.nsewdrag')].map(box).filter(r => area(r) > 0);
  const legend = chart.querySelector('g.legend rect.bg');
  const modebar = chart.querySelector('.modebar');
  const titles = [...chart.querySelectorAll('g[class^="g-"][class$="title"] text, g.annotation-text-g')]
    .filter(e => words(e) && area(box(e)) > 0);
  const labels = [...chart.querySelectorAll('g.textpoint text')].filter(e => words(e));
  if (legend) {
    plots.forEach(p => { if (covers(box(legend), p, 0.02)) problems.push(`${where}: legend over a plot`); });
  }
  titles.forEach((t, j) => {
    const r = box(t);
    if (t.matches('g[class^="g-"][class$="title"] text')) {
      plots.forEach(p => { if (covers(r, p, 0.1)) problems.push(`${where}: "${words(t)}" over a plot`); });
    }
    if (legend && covers(r, box(legend), 0.1)) problems.push(`${where}: "${words(t)}" under the legend`);
    titles.slice(j + 1).forEach(u => {
      if (covers(r, box(u), 0.1)) problems.push(`${where}: "${words(t)}" over "${words(u)}"`);
    });
  });
  labels.forEach((t, j) => labels.slice(j + 1).forEach(u => {
    if (covers(box(t), box(u), 0.15)) problems.push(`${where}: label "${words(t)}" over "${words(u)}"`);
  }));
  [...titles, ...labels, ...chart.querySelectorAll('g.legend text')].forEach(t => {
    const r = box(t);
    if (modebar && covers(r, box(modebar), 0.1)) problems.push(`${where}: "${words(t)}" under the toolbar`);
    if (r.left < frame.left - 1 || r.right > frame.right + 1 || r.top < frame.top - 1
        || r.bottom > frame.bottom + 1) problems.push(`${where}: "${words(t)}" past the chart's edge`);
    [...charts.filter(c => c !== chart).map(box), ...images.map(box)].forEach(o => {
      if (shared(r, o) > 0) problems.push(`${where}: "${words(t)}" over another chart or image`);
    });
  });
});
document.querySelectorAll('[data-testid="stSidebar"] *, [data-testid="stMain"] *').forEach(e => {
  if (e.closest('.js-plotly-plot') || e instanceof SVGElement || !e.clientWidth) return;
  const style = getComputedStyle(e);
  const clipped = style.textOverflow === "ellipsis" || ["hidden", "clip"].includes(style.overflowX);
  if (clipped && e.scrollWidth > e.clientWidth && words(e)) problems.push(`text cut: "${words(e)}"`);
});
return [...new Set(problems)];
"""


def layout_problems(browser) -> list[str]:
    """What overlaps or is cut off on the page shown (:data:`LAYOUT_CHECK`)."""
    return browser.execute_script(LAYOUT_CHECK)


class Settled:
    """Wait condition: the script run has finished (no "running" icon, no spinner, no stale
    element), the page's element count held still for one poll, and ``expected`` charts drew."""

    def __init__(self, expected: int):
        self.expected = expected
        self.last = -1

    def __call__(self, driver) -> bool:
        from selenium.webdriver.common.by import By

        if driver.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]'):
            return True  # no point waiting: the test reports it
        busy = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stStatusWidgetRunningIcon"], '
                                                     '[data-testid="stSpinner"], [data-stale="true"]')
        count = len(driver.find_elements(By.CSS_SELECTOR, '[data-testid="stElementContainer"]'))
        steady, self.last = count == self.last, count
        if busy or not steady or not driver.find_elements(By.CSS_SELECTOR, '[data-testid="stMain"] h1'):
            return False
        charts = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stPlotlyChart"]')
        return sum(1 for c in charts if c.find_elements(By.CSS_SELECTOR, ".main-svg")) >= self.expected


def full_page_screenshot(browser, shot: Path) -> None:
    """A screenshot of the whole page: the window grows to the height of the page's scrolling
    content for it (at most 9000 px), then returns to :data:`WINDOW`."""
    height = browser.execute_script(
        "return Math.max(...[...document.querySelectorAll('[data-testid=\"stMain\"], "
        "[data-testid=\"stAppViewContainer\"]')].map(e => e.scrollHeight), 0)")
    if height + 200 > WINDOW[1]:
        browser.set_window_size(WINDOW[0], min(height + 200, 9000))
        time.sleep(1.0)  # plotly redraws at the new size
    browser.save_screenshot(str(shot))
    browser.set_window_size(*WINDOW)


def load_page(browser, url: str, expected_charts: int, shot: Path) -> None:
    """Open ``url``, wait until it settles, save a screenshot, and fail on any error shown."""
    browser.get(url)
    settle(browser, expected_charts, shot)


def settle(browser, expected_charts: int, shot: Path) -> None:
    """Wait until the page shown settles with ``expected_charts`` charts drawn, save a
    screenshot, and fail on any error shown."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url = browser.current_url
    WebDriverWait(browser, PAGE_TIMEOUT, poll_frequency=0.5).until(Settled(expected_charts))
    time.sleep(1.0)  # let plotly finish its layout before the screenshot
    full_page_screenshot(browser, shot)

    exceptions = browser.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')
    assert not exceptions, exceptions[0].text
    errors = [e.text for e in browser.find_elements(By.CSS_SELECTOR, '[data-testid="stAlertContentError"]')]
    assert not errors, errors
    text = browser.find_element(By.TAG_NAME, "body").text
    for word in ("Traceback", "Error"):
        assert word not in text, f"{word!r} on {url}: see {shot}"
    charts = browser.find_elements(By.CSS_SELECTOR, '[data-testid="stPlotlyChart"]')
    assert len(charts) >= expected_charts
    for chart in charts:  # drawn with real size, not an empty box
        assert chart.size["width"] > 100 and chart.size["height"] > 100, chart.size
    problems = layout_problems(browser)
    assert not problems, f"{url} (see {shot}): {problems}"


@pytest.mark.parametrize("path", list(PAGES))
def test_page_in_chromium(path: str, server: str, browser, screenshots: Path) -> None:
    from selenium.webdriver.common.by import By

    load_page(browser, f"{server}/{path}", PAGES[path], screenshots / f"{path or 'models'}.png")
    if path in ("ood", "your_image", ""):
        assert browser.find_elements(By.CSS_SELECTOR, '[data-testid="stExpander"]')


#: url path → plotly charts per compared model
COMPARED = {"latent": 1, "interpolation": 1, "sampling": 1}


@pytest.mark.parametrize("path", list(COMPARED))
def test_comparison_in_chromium(path: str, server: str, browser, screenshots: Path) -> None:
    """Three bundled models side by side, chosen through the address bar (``?model=...``): γ = 0.1,
    1 and ∞ where the family has them (γ = ∞'s class means crowd most), of the family with the
    longest names (the sidebar's chips must show them whole)."""
    ibinns = [c for c in zoo.list_models() if c.kind == "ibinn"]
    families = [c.family for c in ibinns]
    family = max(families, key=lambda f: (families.count(f) >= 2, len(f)), default=None)
    cards = sorted((c for c in ibinns if c.family == family),
                   key=lambda c: (c.gamma not in (0.1, 1.0, math.inf) or c.mode == "class-nll", c.gamma))
    names = [c.name for c in cards][:3]
    if len(names) < 2:
        pytest.skip("needs two bundled IB-INN models")
    query = "&".join(f"model={name}" for name in names)
    load_page(browser, f"{server}/{path}?{query}", COMPARED[path] * len(names),
              screenshots / f"compare-{path}.png")



def test_latent_questions_in_chromium(server: str, browser, screenshots: Path) -> None:
    """The Latent space page's class plane, confusion matrix and nearest neighbours, each chosen
    by clicking its radio option as a visitor would."""
    from selenium.webdriver.common.by import By

    load_page(browser, f"{server}/latent", PAGES["latent"], screenshots / "latent.png")

    def choose(option: str, charts: int, shot: str) -> str:
        next(e for e in browser.find_elements(By.CSS_SELECTOR, "label") if e.text == option).click()
        time.sleep(2.0)  # the rerun starts
        settle(browser, charts, screenshots / f"latent-{shot}.png")
        return browser.find_element(By.TAG_NAME, "body").text

    assert "Class C" in choose("Plane through three class means", 1, "plane")
    assert "demo images of class" in choose("Which classes does it confuse?", 2, "confusion")
    assert "(query)" in choose("What is near an image?", 1, "neighbours")


def test_rgb_rotation_in_chromium(server: str, browser, screenshots: Path) -> None:
    """The OoD page on a bundled RGB model: the RGB-rotation trajectory (paper Fig. 12)."""
    from selenium.webdriver.common.by import By

    rgb = [c.name for c in sorted(zoo.list_models(), key=lambda c: c.gamma != 1)  # γ = 1 first
           if c.kind == "ibinn" and c.family == "cifar10"]
    if not rgb:
        pytest.skip("no bundled CIFAR-10 model")
    load_page(browser, f"{server}/ood?model={rgb[0]}", PAGES["ood"], screenshots / "ood-rgb.png")
    assert "RGB rotation" in browser.find_element(By.TAG_NAME, "body").text


def test_a_training_run_in_chromium(server: str, browser, screenshots: Path) -> None:
    """The Train page: a short run started from the form draws its curves and the animation of
    the latent space forming (with its play button) once it ends."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    load_page(browser, f"{server}/train", PAGES["train"], screenshots / "train.png")
    epochs = browser.find_element(By.CSS_SELECTOR, 'input[aria-label="Epochs"]')
    epochs.send_keys(Keys.CONTROL, "a")
    epochs.send_keys("0.3", Keys.TAB)
    next(b for b in browser.find_elements(By.TAG_NAME, "button") if b.text == "Start training").click()
    time.sleep(2.0)  # the job is queued; the page then polls it until it ends
    settle(browser, 2, screenshots / "train-forming.png")  # in this session: its job is listed
    assert "▶ Play" in browser.find_element(By.TAG_NAME, "body").text


def test_the_layout_check_finds_overlaps_and_cut_text(browser, tmp_path: Path) -> None:
    """:data:`LAYOUT_CHECK` on a page made to break it (a legend over the plot, two point labels on
    one spot, a title under the toolbar, text cut by its box) and on the same page made right."""
    import plotly.graph_objects as go
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def page(broken: bool) -> list[str]:
        fig = go.Figure([go.Scatter(x=[0, 1], y=[0, 1], name="curve"),
                         go.Scatter(x=[0.5, 0.5 if broken else 0.1], y=[0.5, 0.5 if broken else 0.9],
                                    mode="markers+text", text=["label A", "label B"], name="means")])
        fig.update_layout(width=600, height=400, title=dict(text="a title", x=0.97 if broken else 0.05),
                          margin=dict(t=40), legend=dict(x=0.4, y=0.6) if broken else
                          dict(orientation="h", yanchor="top", y=-0.15))
        width = "40px" if broken else "400px"
        html = (f'<div data-testid="stSidebar"><span style="display:block; width:{width}; '
                f'white-space:nowrap; overflow:hidden; text-overflow:ellipsis">family/gamma-1 model</span>'
                f'</div><div data-testid="stPlotlyChart">'
                f'{fig.to_html(full_html=False, include_plotlyjs=True, config={"displayModeBar": True})}'
                f'</div>')
        path = tmp_path / f"{'broken' if broken else 'right'}.html"
        path.write_text(f"<!doctype html><html><body>{html}</body></html>")
        browser.get(path.as_uri())
        WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "g.legend"))
        return layout_problems(browser)

    assert page(broken=False) == []
    problems = page(broken=True)
    for problem in ("chart 1: legend over a plot", 'chart 1: label "label A" over "label B"',
                    'chart 1: "a title" under the toolbar', 'text cut: "family/gamma-1 model"'):
        assert problem in problems, problems
