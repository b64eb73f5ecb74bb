"""Trainer callbacks: the hooks' order and arguments, the CSV and TensorBoard loggers read back."""

from __future__ import annotations

import csv
import math

import pytest

from helpers import tiny_data
from noiseproof.errors import NoiseproofError
from noiseproof.methods import create_method
from noiseproof.models import build_model
from noiseproof.noise import create_noise
from noiseproof.training.callbacks import (
    Callback,
    CSVLogger,
    TensorBoardLogger,
    check_logger_names,
    make_loggers,
)
from noiseproof.training.config import TrainConfig
from noiseproof.training.trainer import train

EPOCHS = 3


class Recorder(Callback):
    """Every hook call, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def on_train_begin(self, model, config) -> None:
        self.calls.append(("begin", model, config))

    def on_epoch_end(self, epoch, row) -> None:
        self.calls.append(("epoch", epoch, dict(row)))

    def on_train_end(self, result) -> None:
        self.calls.append(("end", result))


def tiny_training(callbacks, method="noise_injection"):
    data = tiny_data()
    model = build_model("mlp", data.input_shape, data.num_outputs)
    config = TrainConfig(epochs=EPOCHS, batch_size=32)
    result = train(
        model,
        data,
        create_method(method),
        config,
        noise=create_noise("relative_gaussian"),
        progress=False,
        callbacks=callbacks,
    )
    return model, config, result


def test_hooks_see_every_epoch_row_in_order():
    recorder = Recorder()
    only_epochs = type("OnlyEpochs", (), {"on_epoch_end": lambda self, e, r: seen.append(e)})()
    seen: list[int] = []
    model, config, result = tiny_training([recorder, only_epochs])  # a partial callback is fine
    kinds = [call[0] for call in recorder.calls]
    assert kinds == ["begin", *["epoch"] * EPOCHS, "end"]
    assert recorder.calls[0][1] is model and recorder.calls[0][2] == config
    assert [call[1] for call in recorder.calls[1:-1]] == [1, 2, 3] == seen
    assert [call[2] for call in recorder.calls[1:-1]] == result.history
    assert recorder.calls[-1][1] is result


def test_csv_and_tensorboard_loggers_hold_each_epoch(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    loggers = make_loggers(["csv", "tensorboard"], tmp_path / "logs")
    assert isinstance(loggers[0], CSVLogger) and isinstance(loggers[1], TensorBoardLogger)
    _, _, result = tiny_training(loggers)
    rows = list(csv.DictReader((tmp_path / "logs" / "history.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    for row, logged in zip(result.history, rows, strict=True):
        for key, value in row.items():
            assert math.isclose(float(logged[key]), value, rel_tol=1e-12), key
    events = EventAccumulator(str(tmp_path / "logs"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"loss", "task", "lr", "val_accuracy", "seconds"} <= tags and "epoch" not in tags
    for tag in ("loss", "val_accuracy", "lr"):
        scalars = events.Scalars(tag)
        assert [s.step for s in scalars] == [1, 2, 3]
        for scalar, row in zip(scalars, result.history, strict=True):
            assert scalar.value == pytest.approx(row[tag], rel=1e-6)  # stored as float32


def test_loggers_are_closed_when_training_fails(tmp_path):
    class Boom(Callback):
        def on_epoch_end(self, epoch, row) -> None:
            raise RuntimeError("stop")

    recorder, csv_logger = Recorder(), CSVLogger(tmp_path / "h.csv")
    with pytest.raises(RuntimeError, match="stop"):
        tiny_training([recorder, csv_logger, Boom()])
    assert recorder.calls[-1][0] == "end" and len(recorder.calls[-1][1].history) == 1
    assert len((tmp_path / "h.csv").read_text().splitlines()) == 2  # header + epoch 1


@pytest.mark.parametrize("callbacks", ["csv", 3, [object()]])
def test_bad_callbacks_are_a_type_error(callbacks):
    with pytest.raises(TypeError, match="callbacks"):
        tiny_training(callbacks)


def test_unknown_logger_name():
    with pytest.raises(NoiseproofError, match="unknown logger 'wandb'"):
        check_logger_names(["csv", "wandb"])
    assert check_logger_names(["csv", "csv"]) == ["csv"]
