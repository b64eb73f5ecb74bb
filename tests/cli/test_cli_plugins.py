"""Plugins reach every command: the example package in tests/plugin_package (a model 'mine',
a noise model 'uniform_jitter', a method 'clean_and_noisy', a dataset 'blobs') through
`--plugin` with PYTHONPATH, and installed (entry point) into a folder of its own that only the
commands of the installed-plugin test see on their path: nothing is installed into the venv,
so the tests need no order and other test processes running beside them never see the plugin.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "plugin_package"
MODULE = "noiseproof_example_plugin"
BIN = Path(sys.executable).parent
TRAIN = [
    "train",
    "--dataset",
    "blobs",
    "--model",
    "mine",
    "--method",
    "clean_and_noisy",
    "--noise",
    "uniform_jitter",
    "--epochs",
    "2",
    "--seed",
    "0",
    "--set",
    "train.batch_size=32",
]
EVALUATE = ["--levels", "0,0.3", "--transfers", "3", "--no-progress"]
CONFIG = """
dataset: {name: blobs, n: 200}
model: {name: mine, width: 8}
methods: [standard, {name: clean_and_noisy, weight: 0.5}]
noise: [uniform_jitter, relative_gaussian]
levels: [0, 0.2]
transfers: 2
seeds: [0]
train: {epochs: 1, batch_size: 64}
"""


def noiseproof(*args: str, pythonpath: bool = False, extra_path: str | None = None):
    """Run the venv's `noiseproof` script; (exit code, stdout, stderr)."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("PYTHONPATH", None)
    paths = [str(PACKAGE)] if pythonpath else []
    paths += [extra_path] if extra_path else []
    if paths:
        env["PYTHONPATH"] = os.pathsep.join(paths)
    done = subprocess.run(
        [str(BIN / "noiseproof"), *args], capture_output=True, text=True, env=env, timeout=300
    )
    return done.returncode, done.stdout, done.stderr


def pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", *args], check=True, timeout=300)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """A folder shared by the module's tests, holding `mine.pt`: a checkpoint trained with
    --plugin (its metadata names the plugin)."""
    folder = tmp_path_factory.mktemp("plugins")
    code, _, err = noiseproof(
        "--plugin", MODULE, *TRAIN, "--out", str(folder / "mine.pt"), pythonpath=True
    )
    assert code == 0, err
    return folder


@pytest.fixture(scope="module")
def installed_plugin(tmp_path_factory) -> str:
    """The example package installed (offline, no build isolation) into a folder of its own,
    returned for PYTHONPATH; built from a copy so the source folder gets no build files."""
    source = tmp_path_factory.mktemp("source") / "plugin_package"
    shutil.copytree(PACKAGE, source)
    site = tmp_path_factory.mktemp("site")
    pip(
        "install",
        "--no-deps",
        "--no-build-isolation",
        "--no-index",
        "-q",
        "--target",
        str(site),
        str(source),
    )
    assert any(site.glob("noiseproof_example_plugin-*.dist-info/entry_points.txt"))
    return str(site)


def test_plugin_option_reaches_train_evaluate_and_list(runs):
    ckpt = str(runs / "mine.pt")  # trained with --plugin by the fixture
    code, out, err = noiseproof(
        "evaluate", ckpt, *EVALUATE, "--out", str(runs / "ev"), "--plugin", MODULE, pythonpath=True
    )
    assert code == 0, err
    assert "accuracy under relative_gaussian" in out and "clean_and_noisy" in out
    code, out, err = noiseproof("--plugin", MODULE, "list", "--json", pythonpath=True)
    assert code == 0, err
    listed = json.loads(out)
    for kind, name in [
        ("models", "mine"),
        ("noise", "uniform_jitter"),
        ("methods", "clean_and_noisy"),
        ("datasets", "blobs"),
    ]:
        (row,) = [r for r in listed[kind] if r["name"] == name]
        assert row["plugin"] == MODULE


def test_plugin_components_in_a_config_file(runs, tmp_path):
    config = tmp_path / "grid.yaml"
    config.write_text(CONFIG)
    out = tmp_path / "grid"
    args = ["compare", "--config", str(config), "--out", str(out), "--no-progress"]
    code, stdout, err = noiseproof("--plugin", MODULE, *args, pythonpath=True)
    assert code == 0, err
    assert "accuracy under uniform_jitter" in stdout
    jobs = json.loads((out / "results.json").read_text())["jobs"]
    assert {j["method"] for j in jobs} == {"standard", "clean_and_noisy"} and len(jobs) == 8


def test_checkpoint_without_its_plugin_is_one_line(runs):
    ckpt = runs / "mine.pt"
    code, out, err = noiseproof("evaluate", str(ckpt), *EVALUATE, "--out", str(runs / "ev2"))
    assert code == 2 and out == ""
    assert err == (
        f"error: checkpoint {ckpt} needs plugin '{MODULE}', which registered its components: "
        f"install the package that provides it or pass --plugin {MODULE}\n"
    )
    assert not (runs / "ev2").exists()
    code, _, err = noiseproof("attack", str(ckpt), "--out", str(runs / "at"))
    assert code == 2 and f"--plugin {MODULE}" in err and len(err.splitlines()) == 1


def test_plugin_that_fails_to_import_is_one_line(tmp_path):
    (tmp_path / "broken_plugin.py").write_text("import torch\nraise RuntimeError('no chip')\n")
    code, _, err = noiseproof(
        "--plugin", "broken_plugin", "list", "models", extra_path=str(tmp_path)
    )
    assert code == 2
    assert err == "error: plugin 'broken_plugin' failed to import (RuntimeError: no chip)\n"
    code, _, err = noiseproof("--plugin", "not a module", "list")
    assert code == 2 and "--plugin: expected a module path" in err


def test_broken_installed_plugin_is_one_warning_line(tmp_path):
    """An entry point whose module fails: one warning naming it; the command still works."""
    info = tmp_path / "broken_dist-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-dist\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[noiseproof.plugins]\nbroken = no_such_module\n")
    code, out, err = noiseproof("list", "models", extra_path=str(tmp_path))
    assert code == 0 and "mlp" in out
    assert err == (
        "warning: plugin 'no_such_module' failed to import (ModuleNotFoundError: No module "
        "named 'no_such_module') (entry point 'broken' of broken-dist)\n"
    )


def test_installed_plugin_loads_lazily_everywhere(runs, installed_plugin, tmp_path):
    # --help loads no plugin; a registry miss and `list` do
    code = (
        "import sys\nfrom noiseproof.cli import cli\n"
        "try:\n    cli.main(['--help'], standalone_mode=False)\nexcept SystemExit:\n    pass\n"
        f"assert {MODULE!r} not in sys.modules and 'torch' not in sys.modules\n"
        "from noiseproof.models import models\n"
        f"models.get('mine')\nassert {MODULE!r} in sys.modules\n"
    )
    env = dict(os.environ, PYTHONPATH=installed_plugin)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    code, out, err = noiseproof("list", "models", extra_path=installed_plugin)
    assert code == 0 and f"mine  - The user's own two-layer network.  [plugin: {MODULE}]" in out
    ckpt = runs / "mine.pt"  # trained with --plugin: the installed package serves it as well
    code, out, err = noiseproof(
        "evaluate", str(ckpt), *EVALUATE, "--out", str(tmp_path / "ev"), extra_path=installed_plugin
    )
    assert code == 0, err
    assert "clean_and_noisy" in out
    config = tmp_path / "grid.yaml"
    config.write_text(CONFIG)
    args = ["--config", str(config), "--out", str(tmp_path / "grid"), "--no-progress"]
    code, out, err = noiseproof("compare", *args, extra_path=installed_plugin)
    assert code == 0, err
    assert "accuracy under uniform_jitter" in out


def test_a_checkpoint_never_imports_the_plugin_it_names(tmp_path, monkeypatch):
    """The metadata only names plugins: a module of that name on the path is not imported."""
    import torch

    from noiseproof.errors import NoiseproofError
    from noiseproof.training.checkpoints import load_checkpoint, save_checkpoint

    marker = tmp_path / "ran"
    (tmp_path / "sneaky_plugin.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    state = {"w": torch.zeros(2)}
    save_checkpoint(tmp_path / "a.pt", state, {"plugins": ["sneaky_plugin"]})
    with pytest.raises(
        NoiseproofError, match="needs plugin 'sneaky_plugin'.*--plugin sneaky_plugin"
    ):
        load_checkpoint(tmp_path / "a.pt")
    assert not marker.exists() and "sneaky_plugin" not in sys.modules
    for forged in ["sneaky_plugin", [1], ["os; rm -rf /"]]:
        save_checkpoint(tmp_path / "b.pt", state, {"plugins": forged})
        with pytest.raises(NoiseproofError, match="'plugins' must be a list of module names"):
            load_checkpoint(tmp_path / "b.pt")
