"""The static scorecard report: self-contained HTML, and what a browser really draws of it."""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from governance_build import Built
from png_decode import read_png

from customer_mdm.governance import write_report
from customer_mdm.governance.report import SCOPE_COLOURS, nice_axis

CHROMIUM = Path("/usr/bin/chromium")


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


@pytest.fixture(scope="module")
def report(gov: Built, history: pd.DataFrame) -> Path:
    docs = gov.settings.reports_dir / "data_docs"
    docs.mkdir(parents=True, exist_ok=True)
    (docs / "index.html").write_text("<html><body>Data Docs</body></html>", encoding="utf-8")
    return write_report(gov.settings)


def test_report_is_self_contained(gov: Built, report: Path):
    assert report == gov.settings.reports_dir / "scorecard" / "index.html"
    page = report.read_text(encoding="utf-8")
    parser = _Tags()
    parser.feed(page)
    tags = [t for t, _ in parser.tags]
    assert "script" not in tags, "no JavaScript"
    assert tags.count("svg") == 6, "one chart per dimension"
    for tag, attrs in parser.tags:
        for name in ("src", "href"):
            link = attrs.get(name) or ""
            assert not re.match(r"(https?:)?//", link), f"external {name} on <{tag}>: {link}"
        if tag == "link":
            pytest.fail(f"external resource <link {attrs}>")
    hrefs = {attrs.get("href") for tag, attrs in parser.tags if tag == "a"}
    assert "../data_docs/index.html" in hrefs  # relative link to the Data Docs
    assert {"reverification_worklist.csv", "consistency_report.csv"} <= hrefs
    for name in ("reverification_worklist.csv", "consistency_report.csv"):
        assert (report.parent / name).exists()


def test_report_shows_latest_values_with_changes(gov: Built, report: Path, history: pd.DataFrame):
    page = report.read_text(encoding="utf-8")
    assert "Latest run <b>run_2</b>" in page and "2 run(s) recorded" in page
    latest = history[(history["run_id"] == "run_2") & (history["scope"] == "overall")]
    completeness = latest[(latest["dimension"] == "completeness") & (latest["metric"] == "key_fields")]["value"].iloc[0]
    assert f"{100 * completeness:.1f} %" in page
    assert "→ 0.0" in page  # same data twice: unchanged since the previous run
    worklist = gov.query("select count(*) as n, count(distinct golden_id) as c from governance.reverification_worklist")
    assert f"{worklist['n'][0]:,} fields of {worklist['c'][0]:,} customers are due" in page
    extract = pd.read_csv(report.parent / "reverification_worklist.csv")
    assert len(extract) == worklist["n"][0]
    consistency = pd.read_csv(report.parent / "consistency_report.csv")
    assert "value" not in consistency.columns  # personal values stay in the warehouse
    for scope in ("crm", "ecommerce", "callcenter", "store_pos", "overall"):
        assert f"<th>{scope}</th>" in page


def test_arrows_compare_with_the_previous_run(gov: Built, tmp_path: Path):
    from customer_mdm.governance.report import _delta

    assert "▲" in _delta("completeness", "key_fields", 0.9, 0.8) and "up" in _delta(
        "completeness", "key_fields", 0.9, 0.8
    )
    worse = _delta("uniqueness", "duplicate_rate_before_linkage", 0.6, 0.5)
    assert "▲" in worse and "down" in worse  # a higher duplicate rate is worse
    assert "new" in _delta("validity", "phone", 0.9, None)
    assert nice_axis([0.9, 0.99]) == pytest.approx((0.88, 1.0, 0.02))


def _colour_pixels(image: np.ndarray, hex_colour: str, tolerance: int = 40) -> int:
    rgb = np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(image[..., :3].astype(int) - rgb).sum(axis=2) < tolerance).sum())


def test_browser_renders_the_charts(report: Path, tmp_path: Path):
    chromium = shutil.which("chromium") or (str(CHROMIUM) if CHROMIUM.exists() else None)
    if not chromium:
        pytest.skip("chromium not installed: .ci/run installs Debian's chromium")
    shot = tmp_path / "scorecard.png"
    cmd = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        f"--screenshot={shot}",
        "--window-size=1280,2000",
        report.as_uri(),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert shot.exists(), proc.stderr[-2000:]
    image = read_png(shot)
    assert image.shape[:2] == (2000, 1280)
    pixels = image[..., :3].reshape(-1, 3)
    assert len(np.unique(pixels[::7], axis=0)) > 100, "the screenshot is blank"
    assert (pixels.min(axis=1) > 240).mean() > 0.3  # mostly light page
    # every source's line colour is drawn (lines, dots and legend), not only the header's blue
    for scope in ("crm", "ecommerce", "callcenter", "store_pos"):
        assert _colour_pixels(image, SCOPE_COLOURS[scope]) > 300, scope
    # the charts sit below the header: chart colours appear in the lower part of the page too
    assert _colour_pixels(image[700:], SCOPE_COLOURS["crm"]) > 100


def test_report_before_any_run(duckdb_settings):
    page = write_report(duckdb_settings).read_text(encoding="utf-8")
    assert "No scorecard recorded yet" in page and "<script" not in page
