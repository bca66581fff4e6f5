"""The dbt docs lineage and the diagnostics report, looked at in a real (headless) Chromium.

The docs are served by `dbt docs serve` on localhost, as `make docs` serves them (the page loads
manifest.json and catalog.json with fetch, so it needs http). Screenshots are kept under the
test's temporary directory.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from loaders.settings import Paths
from tests.chromium import Chromium, chromium_binary
from tests.report_sample import built_sample

DIAGNOSTICS = (
    "overlap_diagnostics",
    "covariate_balance",
    "variance_ratios",
    "ks_statistics",
    "weight_diagnostics",
    "trimming_bounds",
)
FLOW = (
    "source.ciq.loader.records",
    "model.ciq.stg_loader__records",
    "model.ciq.cur_records",
    "model.ciq.causal_ready",
    "model.ciq.propensity_scores",
)
REPORT = "exposure.ciq.diagnostics_report"
# what the lineage canvas shows: cytoscape's visible nodes (with their on-screen positions)
# and edges, once the layout has placed every node inside the canvas
LINEAGE_JS = """(() => {
  const injector = window.angular && angular.element(document.body).injector();
  if (!injector) return null;
  const graph = injector.get('graph');
  const cy = graph.graph_element;
  if (!cy || graph.loading) return null;
  const width = cy.width(), height = cy.height();
  const nodes = cy.nodes().filter(n => n.visible()).map(n => {
    const p = n.renderedPosition();
    return {id: n.id(), label: n.data('label'), x: p.x, y: p.y};
  });
  const placed = nodes.every(n => n.x >= 0 && n.y >= 0 && n.x <= width && n.y <= height);
  if (nodes.length === 0 || !placed) return null;
  const edges = cy.edges().filter(e => e.visible()).map(e => [e.source().id(), e.target().id()]);
  return {nodes: nodes, edges: edges};
})()"""
REPORT_JS = """(() => {
  const images = [...document.images];
  if (document.readyState !== 'complete' || !images.every(i => i.complete)) return null;
  return {
    images: images.map(i => ({name: i.dataset.name, natural: i.naturalWidth,
                              shown: i.getBoundingClientRect().width})),
    pageWidth: document.documentElement.scrollWidth,
    viewport: window.innerWidth,
    headings: [...document.querySelectorAll('section h2')].map(h => h.textContent),
    badges: [...document.querySelectorAll('.summary .badge')].map(b => b.textContent),
    fetched: performance.getEntriesByType('resource').map(r => r.name),
  };
})()"""


@pytest.fixture(scope="module")
def chromium_path() -> str:
    binary = chromium_binary()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: .ci/run installs it with apt-get")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return binary


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Paths:
    return built_sample(tmp_path_factory)


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture(scope="module")
def browser(chromium_path: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chromium]:
    with Chromium(chromium_path, tmp_path_factory.mktemp("chromium-profile")) as chromium:
        yield chromium


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def docs_url(sample: Paths) -> Iterator[str]:
    """`dbt docs serve` on a free localhost port, stopped after the module."""
    port = free_port()
    dbt = Path(sys.executable).with_name("dbt")
    if not dbt.exists():
        dbt = Path(shutil.which("dbt") or "dbt")
    server = subprocess.Popen(
        [
            str(dbt),
            "docs",
            "serve",
            "--project-dir",
            str(sample.dbt_project),
            "--profiles-dir",
            str(sample.root),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-browser",
        ],
        cwd=sample.root,
        env={**os.environ, "CIQ_HOME": str(sample.root)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    output = server.stdout.read().decode() if server.stdout else ""
                    pytest.fail(f"dbt docs serve did not start:\n{output}")
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        if server.stdout:
            server.stdout.close()


def publish_exposures(sample: Paths) -> list[str]:
    """The PostgreSQL publish exposures of the docs, if the publish layer declares any."""
    manifest = json.loads((sample.dbt_project / "target" / "manifest.json").read_text())
    return sorted(uid for uid in manifest["exposures"] if "publish" in uid)


def test_docs_lineage_reads_raw_to_staging_to_curated_to_diagnostics_to_report(
    browser: Chromium, sample: Paths, docs_url: str, shots: Path
) -> None:
    publish = publish_exposures(sample)
    selection = " ".join(f"+exposure:{uid.split('.')[-1]}" for uid in [REPORT, *publish])
    page = browser.page(1400, 900)
    browser.open(page, f"{docs_url}#!/overview?g_v=1&g_i={quote(selection)}")
    lineage = browser.wait_for(page, LINEAGE_JS)
    shot = browser.screenshot(page, shots / "docs_lineage.png")
    print(f"lineage screenshot: {shot}")
    nodes = {node["id"]: node for node in lineage["nodes"]}
    edges = {tuple(edge) for edge in lineage["edges"]}
    expected = {*FLOW, *(f"model.ciq.{name}" for name in DIAGNOSTICS), REPORT}
    assert expected <= set(nodes)
    assert nodes["source.ciq.loader.records"]["label"] == "loader.records"
    assert nodes[REPORT]["label"].startswith("Diagnostics report")
    for parent, child in itertools.pairwise(FLOW):
        assert (parent, child) in edges
        assert nodes[parent]["x"] < nodes[child]["x"]  # drawn left to right
    for name in DIAGNOSTICS:
        model = f"model.ciq.{name}"
        assert ("model.ciq.propensity_scores", model) in edges
        assert (model, REPORT) in edges
        assert nodes["model.ciq.propensity_scores"]["x"] < nodes[model]["x"] < nodes[REPORT]["x"]
    for exposure in publish:  # the PostgreSQL publish, once the publish layer declares it
        assert ("model.ciq.causal_ready", exposure) in edges
        assert nodes["model.ciq.causal_ready"]["x"] < nodes[exposure]["x"]
    assert shot.stat().st_size > 20_000  # a drawn graph, not a blank page


def test_docs_page_of_a_diagnostics_model_shows_its_description_and_columns(
    browser: Chromium, docs_url: str
) -> None:
    page = browser.page(1280, 900)
    browser.open(page, f"{docs_url}#!/model/model.ciq.trimming_bounds")
    text = browser.wait_for(
        page,
        "document.body && document.body.innerText.includes('Crump') && "
        "document.body.innerText.includes('n_removed_treated') && document.body.innerText",
    )
    assert "Where to trim the propensity score" in text
    assert "Treated rows outside the bounds." in text


@pytest.mark.parametrize(
    ("device", "width", "height", "mobile"),
    [("desktop", 1280, 900, False), ("phone", 390, 844, True)],
)
def test_report_renders_offline_with_its_pictures(
    browser: Chromium,
    sample: Paths,
    shots: Path,
    device: str,
    width: int,
    height: int,
    mobile: bool,
) -> None:
    page = browser.page(width, height, mobile=mobile, scale=2 if mobile else 1)
    browser.open(page, (sample.artifacts("events") / "report.html").as_uri())
    shown = browser.wait_for(page, REPORT_JS)
    shot = browser.screenshot(page, shots / f"report_{device}.png", full_page=True)
    print(f"report screenshot ({device}): {shot}")
    names = sorted(image["name"] for image in shown["images"])
    assert names == ["love_plot.png", "propensity.png", "weights.png"]
    for image in shown["images"]:
        assert image["natural"] >= 600  # decoded PNG
        assert 0.5 * shown["viewport"] < image["shown"] <= shown["viewport"]
    assert shown["pageWidth"] <= shown["viewport"]  # wide tables scroll inside their box
    assert shown["fetched"] == []  # nothing loaded from anywhere
    for heading in ("Rows read", "Leakage checks", "Overlap", "Covariate balance", "Weights"):
        assert any(text.startswith(heading) for text in shown["headings"])
    assert shown["badges"][:3] == ["PASS", "PASS", "PASS"]  # leakage, overlap, balance
    assert re.fullmatch(r"\d+ ran, 0 failed", shown["badges"][3])  # the build's dbt tests
