"""report.html in a real headless Chromium (Debian's, driven by Playwright): its tables as the
report built them, a figure against the raw samples, every plot decoded, and no network request.

Skipped, saying why, only where no Chromium is installed; `.ci/run` installs it and sets
``PROFILER_REQUIRE_BROWSER=1``, which turns that skip into a failure.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from profiler.report.render import Report, build_report
from profiler.rundir import RunDirectory
from profiler.stats import percentile

from .conftest import DATA, Rendered

pytestmark = pytest.mark.integration

CHROMIUM = Path(os.environ.get("PROFILER_CHROMIUM", "/usr/bin/chromium"))
#: Headless, and nothing Chromium would fetch on its own: any request seen is the page's.
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: Records Content-Security-Policy violations: what the page tried to load and was refused.
RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener('securitypolicyviolation', e => window.__violations.push(e.blockedURI));
"""
#: Every table as {caption, headers, rows of cell texts and classes}.
READ_TABLES = """
() => [...document.querySelectorAll('table')].map(t => ({
  caption: t.caption ? t.caption.textContent : null,
  headers: [...t.querySelectorAll('thead th')].map(th => th.textContent),
  rows: [...t.querySelectorAll('tbody tr')].map(tr => [...tr.cells].map(td => td.textContent)),
  best: [...t.querySelectorAll('tbody td.best')].map(td => getComputedStyle(td).fontWeight),
}))
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.is_file():
        reason = f"no Chromium at {CHROMIUM}: `apt-get install -y chromium` (or set PROFILER_CHROMIUM)"
        if os.environ.get("PROFILER_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{reason}; PROFILER_REQUIRE_BROWSER=1 (set by .ci/run) requires it")
        pytest.skip(reason)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        yield launched
        launched.close()


@dataclass
class Visit:
    """A page opened from a file, with every request it made and everything its CSP refused."""

    page: Page
    requests: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    @property
    def violations(self) -> list[str]:
        found: list[str] = self.page.evaluate("window.__violations")
        return found

    def external(self) -> list[str]:
        """What the page asked for beyond its own file and data: URIs."""
        loads = [*self.requests, *self.failed, *self.violations]
        return [url for url in loads if not url.startswith(("file:", "data:"))]


def visit(browser: Browser, path: Path) -> Iterator[Visit]:
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    page = context.new_page()
    page.add_init_script(RECORD_VIOLATIONS)
    opened = Visit(page)
    page.on("request", lambda request: opened.requests.append(request.url))
    page.on("requestfailed", lambda request: opened.failed.append(request.url))
    page.goto(path.as_uri(), wait_until="load")
    yield opened
    context.close()


@pytest.fixture(scope="module")
def opened(browser: Browser, cpu_report: Rendered) -> Iterator[Visit]:
    yield from visit(browser, cpu_report.outputs.report_html)


@pytest.fixture(scope="module")
def built(cpu_report: Rendered) -> Report:
    """The same report's tables, built as render_report built them."""
    return build_report(cpu_report.run_dir, DATA / "gpu-h100")


def test_every_table_is_on_the_page_as_built(opened: Visit, built: Report) -> None:
    tables: list[dict[str, Any]] = opened.page.evaluate(READ_TABLES)
    expected = [built.environment] + [t for _, ts in built.sections for t in ts]
    assert built.comparison_table is not None
    expected.append(built.comparison_table)
    assert [t["caption"] for t in tables] == [t.title for t in expected]
    assert tables[0]["headers"] == []  # the environment: names and values, no header
    for shown, table in zip(tables[1:], expected[1:], strict=True):
        assert shown["headers"] == [c.header for c in table.columns]
        assert shown["rows"] == [[e.text for e in row] for row in table.rows]
        marked = sum(e.best for row in table.rows for e in row)
        assert shown["best"] == ["700"] * marked  # the best figures render bold


def test_a_figure_matches_the_raw_samples(opened: Visit) -> None:
    """led-small onnx at 1024 tokens, one user: p50 from its record's raw latencies, as shown."""
    (record,) = [
        r
        for r in RunDirectory(DATA / "cpu-demo").results.read()
        if r.cell == "led-small|onnx|closed:1|repeat 1|1024"
    ]
    p50 = f"{percentile(record.stage.latency_ms, 50.0):.1f}"
    tables: list[dict[str, Any]] = opened.page.evaluate(READ_TABLES)
    (latency,) = [t for t in tables if t["caption"].startswith("Latency and throughput: closed loop, 1 user")]
    headers = latency["headers"]
    rows = [
        r for r in latency["rows"] if r[: headers.index("tokens") + 1] == ["led-small", "onnx", "cpu", "1024"]
    ]
    assert [row[headers.index("p50 ms")] for row in rows] == [p50]
    assert "estimate" in opened.page.locator("h2:has-text('Energy source') + ul").inner_text()


def test_every_plot_is_decoded(opened: Visit, cpu_report: Rendered) -> None:
    images: list[list[Any]] = opened.page.eval_on_selector_all(
        "img", "imgs => imgs.map(i => [i.alt, i.complete, i.naturalWidth, i.src.slice(0, 22)])"
    )
    assert len(images) == len(cpu_report.outputs.plots) == 5
    for alt, complete, width, src in images:
        assert complete, alt
        assert width > 0, alt
        assert src == "data:image/png;base64,", alt


def test_the_page_loads_nothing_from_the_network(opened: Visit) -> None:
    assert opened.requests, "the page's own request was not seen: the check below would prove nothing"
    assert opened.external() == []
    assert opened.failed == []


def test_the_network_check_sees_an_external_resource(
    browser: Browser, cpu_report: Rendered, tmp_path: Path
) -> None:
    """The check above can fail: the same page with one image from elsewhere is caught."""
    page = cpu_report.outputs.report_html.read_text(encoding="utf-8")
    tampered = tmp_path / "tampered.html"
    # 192.0.2.1 is TEST-NET-1: never routed, so nothing leaves this machine even if it were asked.
    tampered.write_text(page.replace("</body>", '<img src="http://192.0.2.1/x.png" alt="x"></body>'))
    for seen in visit(browser, tampered):
        assert seen.external()
        assert all(url.startswith("http://192.0.2.1/") for url in seen.external())
