"""A config file and --set merge the same deep way over the built-in default (yamlio.deep_merge)."""

from __future__ import annotations

import copy

import pytest

from noiseproof.commands.options import build_config
from noiseproof.config import ExperimentConfig, apply_override, default_config
from noiseproof.errors import NoiseproofError
from noiseproof.yamlio import deep_merge, load_yaml


def test_mappings_merge_key_by_key_and_inputs_stay_untouched():
    base = {"train": {"lr": 0.1, "epochs": 3}, "levels": [0, 1]}
    override = {"train": {"epochs": 5}, "levels": [2]}
    saved = copy.deepcopy((base, override))
    assert deep_merge(base, override) == {"train": {"lr": 0.1, "epochs": 5}, "levels": [2]}
    assert (base, override) == saved


def test_a_named_component_and_a_mapping_merge_whichever_side_holds_the_name():
    assert deep_merge("mnist", {"val_fraction": 0.2}) == {"name": "mnist", "val_fraction": 0.2}
    same = deep_merge({"name": "mlp", "hidden": [8]}, "mlp")
    assert same == {"name": "mlp", "hidden": [8]}  # the same name keeps the parameters


def test_another_name_replaces_the_whole_component():
    assert deep_merge({"name": "mlp", "hidden": [8]}, "cnn") == {"name": "cnn"}
    merged = deep_merge({"name": "mlp", "hidden": [8]}, {"name": "cnn", "width": 4})
    assert merged == {"name": "cnn", "width": 4}


def test_lists_scalars_and_none_replace():
    assert deep_merge({"a": [1, 2]}, {"a": [3]}) == {"a": [3]}
    assert deep_merge({"a": {"b": 1}}, {"a": None}) == {"a": None}
    assert deep_merge({"a": {"b": 1}}, {"a": 5}) == {"a": 5}  # validation then names 'a'


@pytest.mark.parametrize(
    ("yaml_text", "assignment"),
    [
        ("dataset: {val_fraction: 0.2}", "dataset.val_fraction=0.2"),
        ("train: {lr: 0.01}", "train.lr=0.01"),
        ("model: {name: mlp, hidden: [16]}", "model.hidden=[16]"),
        ("model: cnn", "model=cnn"),
        ("methods: [standard]", "methods=[standard]"),
    ],
)
def test_a_file_and_the_same_set_give_the_same_config(tmp_path, yaml_text, assignment):
    path = tmp_path / "c.yaml"
    path.write_text(yaml_text + "\n")
    from_file = build_config(str(path), {}, ())
    from_set = build_config(None, {}, (assignment,))
    assert from_file.to_dict() == from_set.to_dict()


def test_a_nested_file_value_keeps_the_default_dataset(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("dataset: {val_fraction: 0.2}\n")  # failed before: a mapping without 'name'
    config = build_config(str(path), {}, ())
    assert (config.dataset.registered_name, config.dataset.val_fraction) == ("mnist", 0.2)


def test_file_then_options_then_set(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("dataset: {name: digits, val_fraction: 0.3}\ntrain: {lr: 0.01}\n")
    config = build_config(str(path), {"dataset": "digits", "epochs": 2}, ("train.lr=0.02",))
    assert config.dataset.val_fraction == 0.3  # --dataset digits: same name, parameters kept
    assert (config.train.epochs, config.train.lr) == (2, 0.02)
    other = build_config(str(path), {"dataset": "moons"}, ())
    assert other.dataset.registered_name == "moons" and other.dataset.val_fraction == 0.0


def test_apply_override_merges_in_place_like_a_file():
    raw = {"dataset": "mnist", "model": {"name": "mlp", "hidden": [8]}}
    apply_override(raw, "dataset.val_fraction=0.2")
    apply_override(raw, "model.name=cnn")
    assert raw == {"dataset": {"name": "mnist", "val_fraction": 0.2}, "model": {"name": "cnn"}}


def test_yaml_refuses_duplicate_keys_at_any_depth():
    assert load_yaml("a: 1\nb: {c: 2}\n") == {"a": 1, "b": {"c": 2}}
    for text in ("a: 1\na: 2\n", "b: {c: 1, c: 2}\n", "- {x: 1, x: 1}\n"):
        with pytest.raises(Exception, match="duplicate key"):
            load_yaml(text)
    with pytest.raises(NoiseproofError, match="not valid YAML"):
        apply_override({}, "train={lr: 1, lr: 2}")


def test_to_dict_keeps_every_section_it_was_given():
    """config.yaml is written from to_dict: a `forward:` section dropped there would let a
    resumed run with other analog effects pass the folder check."""
    raw = default_config()
    raw["forward"] = {"adc_bits": 8, "output_noise": 0.04}
    config = ExperimentConfig.parse(raw)
    assert config.to_dict()["forward"]["adc_bits"] == 8
    assert ExperimentConfig.parse(config.to_dict()) == config
    assert "forward" not in ExperimentConfig.parse(default_config()).to_dict()
