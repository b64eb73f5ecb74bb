"""`noiseproof export`: target conductances of a trained checkpoint, tiled for a real crossbar.

The round trip is checked by an independent reader of the files (reference.export_reference)
against the checkpoint's weights; the layout by computing a convolution on the exported array.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from torch import nn

from noiseproof.chip import ChipSelection
from noiseproof.cli import cli
from noiseproof.export import tiles as tiles_module
from noiseproof.export.layout import DIGITAL_REASON, OFF_SELECTION, crossbar_arrays
from noiseproof.export.tiles import (
    check_export_size,
    conductance_window,
    parse_tile,
    tile_conductances,
)
from noiseproof.noise import noise_models
from noiseproof.restore import model_from_checkpoint
from noiseproof.training.checkpoints import load_checkpoint
from reference.export_reference import assemble, weights_from_export

CNN = "model={name: cnn, channels: 4, kernel_size: 2, hidden: [16]}"
MEASURED = Path(__file__).parents[1] / "noise" / "measured_device.yaml"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A small CNN (two convolutions, two dense layers) trained one epoch on digits."""
    path = tmp_path_factory.mktemp("trained") / "cnn.pt"
    args = ["--dataset", "digits", "--set", CNN, "--method", "standard", "--seed", "0"]
    result = CliRunner().invoke(
        cli, ["train", *args, "--epochs", "1", "--no-progress", "--out", str(path)]
    )
    assert result.exit_code == 0, result.output
    return path


@pytest.fixture(scope="module")
def exported(checkpoint, tmp_path_factory) -> tuple[Path, dict]:
    """(folder, manifest) of the checkpoint exported with the defaults in 4x3 tiles."""
    out = tmp_path_factory.mktemp("exported") / "export"
    return out, export(checkpoint, out, "--tile", "4x3")


def export(checkpoint: Path, out: Path, *options: str) -> dict:
    result = CliRunner().invoke(cli, ["export", str(checkpoint), "--out", str(out), *options])
    assert result.exit_code == 0, result.output
    return json.loads((out / "manifest.json").read_text())


def assert_round_trip(checkpoint: Path, out: Path) -> None:
    """Every exported tensor read back equals the checkpoint's, cast to its dtype."""
    state, _ = load_checkpoint(checkpoint)
    back = weights_from_export(out)
    assert set(back) == {name for name in state if name.endswith(("weight", "bias"))}
    for name, values in back.items():
        restored = torch.from_numpy(np.asarray(values)).to(state[name].dtype)
        assert torch.equal(restored, state[name]), name


def test_round_trip_gives_the_checkpoint_weights(checkpoint, exported):
    out, manifest = exported
    assert_round_trip(checkpoint, out)
    assert (manifest["mapping"]["g_min_us"], manifest["mapping"]["g_max_us"]) == (100.0, 500.0)
    assert manifest["units"]["conductance"] == "uS" and manifest["bias"]["mode"] == "row"
    assert manifest["noise_model"]["name"] == "tio2_crossbar"
    assert len(manifest["checkpoint"]["sha256"]) == 64
    for layer in manifest["layers"]:
        with np.load(out / layer["files"]["npz"]) as npz:
            plus, minus = npz["g_plus_us"], npz["g_minus_us"]
        assert plus.shape[2:] == (4, 3) and plus.shape[:2] == tuple(layer["tiles"]["grid"])
        for g in (plus, minus):
            assert g.dtype == np.float64 and g.min() >= 100.0 and g.max() <= 500.0
        rows, cols = layer["array_shape"]
        padded = np.ones(plus.shape, dtype=bool)
        for i, used_rows in enumerate(layer["tiles"]["rows_used"]):
            for j, used_cols in enumerate(layer["tiles"]["cols_used"]):
                padded[i, j, :used_rows, :used_cols] = False
        assert padded.sum() == plus.size - rows * cols
        assert (plus[padded] == 100.0).all() and (minus[padded] == 100.0).all()
        assert max(plus.max(), minus.max()) == 500.0  # the largest |w| of each array at G_max
        assert (out / layer["files"]["histogram"]).stat().st_size > 0


def test_conv_is_unrolled_and_the_array_computes_the_layer(checkpoint, exported):
    out, manifest = exported
    first = next(layer for layer in manifest["layers"] if layer["module_class"] == "Conv2d")
    state, meta = load_checkpoint(checkpoint)
    conv = model_from_checkpoint(state, meta).get_submodule(first["module"])
    out_ch, in_ch, kh, kw = conv.weight.shape
    assert first["shape"] == [out_ch, in_ch, kh, kw]
    assert first["unrolled_shape"] == [out_ch, in_ch * kh * kw]
    assert first["array_shape"] == [in_ch * kh * kw + 1, out_ch]  # + the bias row
    assert first["bias"]["row"] == in_ch * kh * kw and first["bias"]["input"] == 1.0
    assert "reshape" in first["unroll"] and first["groups"] == 1
    g_min, g_max = manifest["mapping"]["g_min_us"], manifest["mapping"]["g_max_us"]
    with np.load(out / first["files"]["npz"]) as npz:
        plus = assemble(npz["g_plus_us"], *first["array_shape"])
        minus = assemble(npz["g_minus_us"], *first["array_shape"])
    array = torch.from_numpy((plus - minus) * first["scale"] / (g_max - g_min))
    x = torch.randn(2, in_ch, 8, 8, generator=torch.Generator().manual_seed(0))
    patches = F.unfold(x, conv.kernel_size, conv.dilation, conv.padding, conv.stride)
    inputs = torch.cat([patches, torch.ones(2, 1, patches.shape[2])], 1).double()
    y = (inputs.transpose(1, 2) @ array).transpose(1, 2)  # y = x A, the bias row driven by 1
    expected = conv(x)
    assert torch.allclose(y.reshape(expected.shape).float(), expected, atol=1e-5)


def test_csv_matches_npz(exported):
    out, manifest = exported
    layer = manifest["layers"][1]
    with np.load(out / layer["files"]["npz"]) as npz:
        plus, minus = npz["g_plus_us"], npz["g_minus_us"]
    with open(out / layer["files"]["csv"], newline="") as handle:
        lines = list(csv.DictReader(handle))
    assert len(lines) == plus.size
    rows, cols = layer["array_shape"]
    for line in lines:
        i, j, r, c = (int(line[k]) for k in ("tile_row", "tile_col", "row", "col"))
        assert line["layer"] == layer["name"]
        assert float(line["g_plus_us"]) == plus[i, j, r, c]
        assert float(line["g_minus_us"]) == minus[i, j, r, c]
        assert line["padding"] == str(int(i * 4 + r >= rows or j * 3 + c >= cols))


def test_pcm_keeps_biases_digital_and_starts_at_zero(checkpoint, tmp_path):
    manifest = export(checkpoint, tmp_path / "pcm", "--tile", "16x16", "--mapping", "pcm")
    assert (manifest["mapping"]["g_min_us"], manifest["mapping"]["g_max_us"]) == (0.0, 25.0)
    assert manifest["bias"]["mode"] == "digital"
    state, _ = load_checkpoint(checkpoint)
    for layer in manifest["layers"]:
        assert layer["bias"]["handling"] == "digital"
        assert layer["array_shape"][0] == layer["unrolled_shape"][1]  # no bias row
        assert layer["bias"]["values"] == state[layer["bias"]["tensor"]].tolist()
    assert {e["tensor"] for e in manifest["off_chip"]} == {
        layer["bias"]["tensor"] for layer in manifest["layers"]
    }
    assert_round_trip(checkpoint, tmp_path / "pcm")
    spec = tmp_path / "pcm20.yaml"
    spec.write_text("name: pcm\ng_max: 20\n")
    manifest = export(
        checkpoint, tmp_path / "pcm20", "--tile", "16x16", "--mapping", str(spec), "--bias", "row"
    )
    assert manifest["mapping"]["g_max_us"] == 20.0 and manifest["bias"]["mode"] == "row"
    assert_round_trip(checkpoint, tmp_path / "pcm20")


def test_a_measured_device_maps_onto_its_window(checkpoint, tmp_path):
    window = noise_models.create({"name": "measured", "file": str(MEASURED)}).conductance_window()
    manifest = export(checkpoint, tmp_path / "m", "--tile", "32x32", "--measured", str(MEASURED))
    assert (manifest["mapping"]["g_min_us"], manifest["mapping"]["g_max_us"]) == window
    assert manifest["noise_model"]["name"] == "measured"
    assert_round_trip(checkpoint, tmp_path / "m")


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        (["--tile", "256"], "--tile: tile must be ROWSxCOLS"),
        (["--tile", "0x4"], "--tile: tile must be ROWSxCOLS"),
        (["--tile", "4x4x4"], "--tile: tile must be ROWSxCOLS"),
        (["--tile", "-2x4"], "--tile: tile must be ROWSxCOLS"),
        (["--tile", "ax4"], "--tile: tile must be ROWSxCOLS"),
        (
            ["--tile", "4x4", "--mapping", "relative_gaussian"],
            "noise model 'relative_gaussian' does not map weights onto conductances",
        ),
        (["--tile", "4x4", "--mapping", "cosmic"], "unknown noise model 'cosmic'"),
        (["--tile", "4x4", "--mapping", "{name: pcm, g_max: -1}"], "g_max"),
        (["--tile", "4x4", "--mapping", "[1, 2]"], "--mapping: expected a noise model name"),
        (["--tile", "4x4", "--mapping", "none.yaml"], "--mapping: file not found: none.yaml"),
        (["--tile", "4x4", "--mapping", "pcm", "--measured", "d.yaml"], "not both"),
        (
            ["--tile", "100000x100000"],
            "--tile 100000x100000: the tiles would hold 40,000,000,000 device pairs (596 GiB of "
            "G+/G- targets) for 530 weights, over the limit of 33,554,432 pairs (512 MiB): use "
            "smaller tiles (the largest array, 1.weight, is 17x16)",
        ),
        (["--tile", f"{2**70}x1"], "device pairs"),
    ],
)
def test_bad_input_is_one_line(checkpoint, tmp_path, options, needle):
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["export", str(checkpoint), "--out", str(out), *options])
    assert result.exit_code == 2, result.output
    assert needle in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert not out.exists()


def test_missing_checkpoint_and_used_folder_are_one_line(checkpoint, tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli, ["export", str(tmp_path / "no.pt"), "--tile", "4x4", "--out", str(out)]
    )
    assert result.exit_code == 2 and "checkpoint not found" in result.output
    assert len(result.output.strip().splitlines()) == 1 and not out.exists()
    out.mkdir()
    (out / "results.json").write_text("{}")
    result = CliRunner().invoke(
        cli, ["export", str(checkpoint), "--tile", "4x4", "--out", str(out)]
    )
    assert result.exit_code == 2 and "already holds files (results.json)" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["results.json"]


def test_layout_of_tied_weights_buffers_and_biases_off_the_chip():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Linear(4, 4))
    model[2].weight = model[0].weight
    arrays, off_chip = crossbar_arrays(model, ChipSelection(kinds=("weight",)))
    assert [a.name for a in arrays] == ["0.weight"]  # the tied weight is one array
    assert arrays[0].bias.handling == "digital" and arrays[0].bias.reason == OFF_SELECTION
    assert arrays[0].matrix.shape == (4, 4)
    assert off_chip["2.weight"] == "the same tensor as 0.weight"
    assert off_chip["0.bias"] == off_chip["2.bias"] == off_chip["1.running_var"] == OFF_SELECTION
    assert set(off_chip) == set(model.state_dict()) - {"0.weight"}
    arrays, _ = crossbar_arrays(model)  # 2.bias: its weight is 0.weight's array
    assert [(a.name, tuple(a.matrix.shape)) for a in arrays] == [
        ("0.weight", (5, 4)),
        ("2.bias", (1, 4)),
    ]
    assert torch.equal(arrays[0].matrix[-1], model[0].bias.detach())
    arrays, off_chip = crossbar_arrays(model, bias="digital")
    assert [a.name for a in arrays] == ["0.weight"]
    assert off_chip["0.bias"] == off_chip["2.bias"] == DIGITAL_REASON
    arrays, _ = crossbar_arrays(model, ChipSelection(layers=("Linear",), exclude=("0.weight",)))
    assert [(a.name, tuple(a.matrix.shape)) for a in arrays] == [
        ("0.bias", (1, 4)),
        ("2.bias", (1, 4)),
    ]


def test_tiles_pad_edges_with_g_min_and_windows_are_checked():
    matrix = torch.tensor([[0.5, -1.0, 0.0], [0.25, 0.0, -0.5]])
    tiles = tile_conductances(matrix, (0.0, 10.0), (2, 2))
    assert tiles.g_plus.shape == (1, 2, 2, 2) and tiles.used == ([2], [2, 1])
    assert tiles.g_plus[0, 0].tolist() == [[5.0, 0.0], [2.5, 0.0]]
    assert tiles.g_minus[0, 0].tolist() == [[0.0, 10.0], [0.0, 0.0]]
    assert tiles.g_minus[0, 1].tolist() == [[0.0, 0.0], [5.0, 0.0]]  # column 1 is padding
    assert tiles.padding()[0, 1].tolist() == [[False, True], [False, True]]
    assert parse_tile(" 256X128 ") == (256, 128)
    with pytest.raises(TypeError, match="tile"):
        parse_tile((4, 4))
    with pytest.raises(ValueError, match="does not map weights onto conductances"):
        conductance_window(noise_models.create("lognormal"))
    assert conductance_window(noise_models.create("tio2_crossbar")) == pytest.approx((100, 500))


def test_size_limit_is_checked_from_the_shapes_before_any_allocation(checkpoint, tmp_path):
    limit = tiles_module.MAX_PAIRS
    check_export_size({"a": (limit // 2, 2)}, (limit // 2, 2))  # exactly the limit
    with pytest.raises(ValueError, match=f"33,554,434 device pairs .* over the limit of {limit:,}"):
        check_export_size({"a": (limit // 2, 2)}, (limit // 2 + 1, 2))  # 2 pairs of padding
    with pytest.raises(ValueError, match="1,000,000,000,000 device pairs"):  # 8 TB not allocated
        tile_conductances(torch.ones(3, 3), (0.0, 1.0), (10**6, 10**6))
    with pytest.raises(ValueError, match="the arrays hold 40,000,000 weights in all: over"):
        check_export_size({"a": (20000, 1000), "b": (20000, 1000)}, (1, 1))


def test_arrays_over_the_limit_are_one_line_whatever_the_tiles(checkpoint, tmp_path, monkeypatch):
    monkeypatch.setattr(tiles_module, "MAX_PAIRS", 500)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli, ["export", str(checkpoint), "--tile", "4x4", "--out", str(out)]
    )
    assert result.exit_code == 2, result.output
    assert result.output == (
        f"error: the on-chip arrays of {checkpoint} hold 530 weights in all: over the limit "
        "of 500 pairs (7.812 KiB) one export writes (docs/device-physics.md)\n"
    )
    assert not out.exists()
