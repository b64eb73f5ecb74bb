"""report.html of a real (tiny) compare run in a real headless browser, Debian's `chromium`, at
1280 px: the page does not overflow sideways, every image decodes and is shown at no less than
MIN_SCALE of its own size (its text stays legible), no script or console error; a screenshot of
the whole page is kept in test-artifacts/ (ignored by git). Skipped where chromium is absent."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from noiseproof.cli import cli

BROWSER = next(
    (shutil.which(name) for name in ("chromium", "chromium-browser") if shutil.which(name)), None
)
pytestmark = pytest.mark.skipif(
    BROWSER is None, reason="no chromium on this machine (Debian: apt-get install chromium)"
)
WIDTH = 1280
MIN_SCALE = 0.6
"""Plots are drawn at 120 dpi with 10 pt text (about 17 px); shown at 0.6 of their size, 10 px."""
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

PROBE = """<script>
window.probeErrors = [];
window.addEventListener("error", (e) => window.probeErrors.push(
  e.message || ("could not load " + (e.target && e.target.tagName))), true);
const consoleError = console.error;
console.error = (...args) => { window.probeErrors.push(args.join(" ")); consoleError(...args); };
window.addEventListener("load", () => {
  const root = document.documentElement;
  const images = [...document.images].map((img) => ({
    alt: img.alt, natural: img.naturalWidth, shown: img.getBoundingClientRect().width}));
  const out = document.createElement("pre");
  out.id = "probe";
  out.hidden = true;
  out.textContent = JSON.stringify({scrollWidth: root.scrollWidth, clientWidth: root.clientWidth,
    height: root.scrollHeight, images: images, errors: window.probeErrors});
  document.body.appendChild(out);
});
</script>"""


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess:
    """Run headless chromium once (no sandbox: CI containers run as root)."""
    command = [
        BROWSER,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=10000",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """report.html of a real compare: two methods, eight levels (a grid wider than the page)."""
    out = tmp_path_factory.mktemp("browser") / "run"
    args = ["compare", "--dataset", "moons", "--model", "mlp"]
    args += ["--methods", "standard,noise_injection", "--levels", "0,0.1,0.2,0.3,0.4,0.5,0.6,0.8"]
    args += ["--transfers", "8", "--epochs", "2", "--seed", "0", "--no-progress", "--out", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    return out / "report.html"


def test_report_html_in_a_browser(report, tmp_path):
    probed = tmp_path / "probed.html"
    probed.write_text(report.read_text().replace("<head>", "<head>\n" + PROBE, 1))
    shown = chromium(
        f"--window-size={WIDTH},1000", "--dump-dom", probed.as_uri(), profile=tmp_path / "p1"
    )
    marker = '<pre id="probe" hidden="">'
    assert marker in shown.stdout, shown.stderr[-2000:]
    found = shown.stdout.split(marker, 1)[1].split("</pre>", 1)[0]
    probe = json.loads(found.replace("&quot;", '"').replace("&lt;", "<").replace("&amp;", "&"))
    assert probe["errors"] == []
    assert probe["scrollWidth"] <= probe["clientWidth"] <= WIDTH, probe
    assert len(probe["images"]) >= 5  # accuracy, reliability, histogram, Pareto, training
    for image in probe["images"]:
        assert image["natural"] > 0, image  # decoded
        assert image["shown"] >= MIN_SCALE * image["natural"], image  # legible as shown
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "report-1280.png"
    height = min(probe["height"], 16000)
    chromium(
        f"--window-size={WIDTH},{height}",
        f"--screenshot={screenshot}",
        report.as_uri(),
        profile=tmp_path / "p2",
    )
    assert screenshot.stat().st_size > 0
    shutil.copy(screenshot, tmp_path / screenshot.name)
