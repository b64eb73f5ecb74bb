"""Tasks against hand computations: perplexity, R^2, reliability over tokens and examples; LM
transfers equal a plain loop; the inferred task; refusals naming the argument."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score
from torch import nn

import noiseproof as nf
from noiseproof.chip import chip_params
from noiseproof.evaluation.chipstream import block_size, vmappable
from noiseproof.evaluation.metrics import metric_summaries, reliability
from noiseproof.evaluation.transfers import run_transfers
from noiseproof.noise import create_noise
from noiseproof.tasks import create_task, infer_task, tasks
from reference.tasks_reference import chip_perplexities, perplexity_by_hand, r2_by_hand
from zoo import VOCAB, Regressor, Tagger, regression_data, tagging_data, token_stream_data


def tiny_gpt() -> nn.Module:
    torch.manual_seed(0)
    spec = {"name": "gpt", "n_layer": 1, "n_head": 2, "n_embd": 8, "block_size": 8}
    return nf.build_model(spec, (6,), VOCAB)


def test_registry_lists_the_four_built_in_tasks():
    assert {"classification", "regression", "token_classification", "language_model"} <= set(
        tasks.names()
    )


def test_perplexity_and_token_accuracy_by_hand_with_padding():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, 5, 7, generator=gen)  # 2 chips, 4 sequences of 5 tokens
    y = torch.randint(0, 7, (4, 5), generator=gen)
    y[0, :2] = -100
    y[3, 4] = -100
    task = create_task("language_model")
    metrics = task.chip_metrics(task.sums(logits, y))
    for chip in range(2):
        expected = perplexity_by_hand(logits[chip], y)
        assert float(metrics["perplexity"][chip]) == pytest.approx(expected, rel=1e-6)
        counted = y != -100
        right = (logits[chip].argmax(-1) == y) & counted
        assert float(metrics["token_accuracy"][chip]) == int(right.sum()) / int(counted.sum())


def test_sums_add_over_batches_and_stack_over_chips():
    gen = torch.Generator().manual_seed(1)
    logits, y = torch.randn(3, 6, 4, 9, generator=gen), torch.randint(0, 9, (6, 4), generator=gen)
    task = create_task("language_model")
    whole = task.sums(logits, y)
    halves = task.sums(logits[:, :3], y[:3]) + task.sums(logits[:, 3:], y[3:])
    torch.testing.assert_close(whole, halves)
    one_by_one = torch.stack([task.sums(logits[c], y) for c in range(3)])
    torch.testing.assert_close(whole, one_by_one)


@pytest.mark.parametrize("outputs", [1, 2])
def test_regression_metrics_by_hand_and_against_scikit_learn(outputs):
    gen = torch.Generator().manual_seed(2)
    y = torch.randn(40, outputs, generator=gen).double()
    predicted = y + 0.3 * torch.randn(40, outputs, generator=gen).double()
    y_task, out = (y[:, 0], predicted) if outputs == 1 else (y, predicted)
    task = create_task({"name": "regression", "tolerance": 0.2})
    sums = task.sums(out[:25], y_task[:25]) + task.sums(out[25:], y_task[25:])
    metrics = {k: float(v) for k, v in task.chip_metrics(sums).items()}
    p, t = predicted.numpy(), y.numpy()
    assert metrics["mse"] == pytest.approx(mean_squared_error(t, p), rel=1e-12)
    assert metrics["mae"] == pytest.approx(mean_absolute_error(t, p), rel=1e-12)
    expected = r2_score(t, p, multioutput="variance_weighted")
    assert metrics["r2"] == pytest.approx(expected, rel=1e-10)
    if outputs == 1:
        assert metrics["r2"] == pytest.approx(r2_by_hand(p[:, 0].tolist(), t[:, 0].tolist()))
    hits = task.hits(out, y_task)
    assert torch.equal(hits, (predicted - y).abs().amax(-1) <= 0.2)


def test_regression_losses():
    out, y = torch.tensor([[0.0], [3.0]]), torch.tensor([1.0, 1.0])
    assert float(create_task({"name": "regression", "loss": "mse"}).loss(out, y)) == 2.5
    assert float(create_task({"name": "regression", "loss": "l1"}).loss(out, y)) == 1.5
    huber = create_task({"name": "regression", "loss": "huber"}).loss(out, y)
    assert float(huber) == pytest.approx((0.5 + 1.5) / 2)
    assert create_task({"name": "regression", "loss": "huber"}).spec()["loss"] == "huber"


@pytest.mark.parametrize("tolerance", [0, -1.0, float("nan")])
def test_regression_tolerance_must_be_positive(tolerance):
    with pytest.raises(nf.NoiseproofError, match="tolerance"):
        create_task({"name": "regression", "tolerance": tolerance})


def test_language_model_transfers_equal_a_plain_loop():
    model, data = tiny_gpt(), token_stream_data()
    noise = create_noise({"name": "relative_gaussian", "zeta": 0.3})
    result = run_transfers(
        model, noise, data.x_test, data.y_test, 4, torch.Generator().manual_seed(3), batch_size=5
    )
    assert result.task.registered_name == "language_model"
    clean = {n: t.detach() for n, t in chip_params(model).items()}
    block = block_size(clean, vmappable(noise, clean, torch.device("cpu")))
    expected = chip_perplexities(
        model,
        noise,
        data.x_test,
        data.y_test,
        4,
        torch.Generator().manual_seed(3),
        list(clean),
        block,
    )
    np.testing.assert_allclose(result.metrics["perplexity"].numpy(), expected, rtol=1e-5)
    assert len(set(expected)) == 4  # the chips differ


def test_token_model_vmapped_and_loop_paths_agree_and_padding_never_counts():
    torch.manual_seed(0)
    model, data = Tagger(), tagging_data()
    noise = create_noise({"name": "relative_gaussian", "zeta": 0.2})
    runs = [
        run_transfers(
            model,
            noise,
            data.x_test,
            data.y_test,
            6,
            torch.Generator().manual_seed(4),
            keep_matrix=True,
            vectorise=vectorise,
        )
        for vectorise in (True, False)
    ]
    torch.testing.assert_close(runs[0].sums, runs[1].sums)
    assert torch.equal(runs[0].matrix, runs[1].matrix)
    result = runs[0]
    assert result.task.registered_name == "token_classification"
    padded = data.y_test == -100
    assert torch.equal(result.mask, ~padded) and not bool(result.correct_counts[padded].any())
    counted = result.correct_counts[~padded]
    share = float((counted >= 0.95 * 6 - 1e-9).double().mean())
    assert reliability(result, 0.95)["share"] == share
    summary = metric_summaries(result)
    assert summary["accuracy"]["higher_is_better"] is True
    assert summary["cross_entropy"]["worst"] == float(result.metrics["cross_entropy"].max())


def test_regression_reliability_counts_examples_within_tolerance():
    torch.manual_seed(0)
    model, data = Regressor(), regression_data()
    task = create_task({"name": "regression", "tolerance": 0.5})
    result = run_transfers(
        model,
        create_noise({"name": "relative_gaussian", "zeta": 0.3}),
        data.x_test,
        data.y_test,
        5,
        torch.Generator().manual_seed(5),
        keep_matrix=True,
        task=task,
    )
    assert result.matrix.shape == (5, len(data.y_test))
    assert torch.equal(result.correct_counts, result.matrix.sum(0))
    worst = metric_summaries(result)["mse"]["worst"]
    assert worst == float(result.metrics["mse"].max()) and worst >= float(
        result.metrics["mse"].mean()
    )


def test_inferred_tasks():
    tokens = torch.randint(0, 5, (4, 7))
    assert infer_task(torch.randn(4))[0] == "regression"
    assert infer_task(torch.randn(4, 2))[0] == "regression"
    assert infer_task(torch.tensor([0, 1, 1, 0]))[0] == "classification"
    assert infer_task(tokens[:, 1:], tokens[:, :-1])[0] == "language_model"
    assert infer_task(tokens % 2, tokens)[0] == "token_classification"


def test_training_a_language_model_selects_the_lowest_validation_perplexity():
    model, data = tiny_gpt(), token_stream_data()
    result = nf.train(
        model,
        data,
        nf.create_method("standard"),
        nf.TrainConfig(epochs=3, batch_size=8, lr=0.01),
        progress=False,
    )
    values = [row["val_perplexity"] for row in result.history]
    assert result.val_metric == "perplexity" and result.best_val == min(values)
    assert result.best_epoch == values.index(min(values)) + 1
    assert all("val_token_accuracy" in row for row in result.history)


# ---------------------------------------------------------------- bad input, one line


def noise():
    return create_noise("relative_gaussian")


def test_float_targets_under_classification_name_y():
    torch.manual_seed(0)
    with pytest.raises(TypeError, match="y must be a 1-d integer tensor"):
        run_transfers(
            Regressor(3),
            noise(),
            torch.randn(4, 6),
            torch.randn(4),
            2,
            torch.Generator(),
            task="classification",
        )


def test_per_example_targets_for_a_sequence_output_name_y():
    model = tiny_gpt()
    with pytest.raises(ValueError, match=r"y: classification needs \[B, classes\] logits"):
        run_transfers(
            model,
            noise(),
            torch.randint(0, VOCAB, (4, 6)),
            torch.tensor([0, 1, 2, 1]),
            2,
            torch.Generator(),
        )


def test_target_ids_beyond_the_vocabulary_name_y():
    model, data = tiny_gpt(), token_stream_data()
    y = data.y_test.clone()
    y[0, 0] = VOCAB + 3
    with pytest.raises(ValueError, match=r"y holds target ids outside \[0, 11\)"):
        run_transfers(model, noise(), data.x_test, y, 2, torch.Generator(), task="language_model")


def test_token_ids_beyond_the_embedding_name_x():
    model, data = tiny_gpt(), token_stream_data()
    x = data.x_test.clone()
    x[0, 0] = 500
    with pytest.raises(
        ValueError, match=r"x: the model cannot read these inputs \(largest id 500\)"
    ):
        run_transfers(model, noise(), x, data.y_test, 2, torch.Generator())


def test_sequences_longer_than_block_size_are_refused():
    model = tiny_gpt()  # block_size 8
    x = torch.randint(0, VOCAB, (4, 12))
    with pytest.raises(ValueError, match="block_size"):
        run_transfers(model, noise(), x, torch.roll(x, -1, 1), 2, torch.Generator())


def test_correctnet_refuses_a_language_model_in_one_line():
    model, data = tiny_gpt(), token_stream_data()
    with pytest.raises(nf.NoiseproofError, match="cannot train task 'language_model'"):
        nf.train(model, data, nf.create_method("correctnet"), noise=noise(), progress=False)


# ---------------------------------------------------------------- command line


def test_list_tasks_names_each_task_and_its_metrics():
    from click.testing import CliRunner

    from noiseproof.cli import cli

    result = CliRunner().invoke(cli, ["list", "tasks"])
    assert result.exit_code == 0, result.output
    assert "language_model" in result.output and "[metrics: perplexity, token_accuracy]" in (
        result.output
    )
    assert "tolerance (float, default 0.1)" in result.output
    assert "loss (Literal['mse', 'l1', 'huber'], default 'mse')" in result.output


def test_compare_on_diabetes_reports_regression_metrics(tmp_path):
    import json

    from click.testing import CliRunner

    from noiseproof.cli import cli

    args = [
        "compare",
        "--set",
        "dataset=diabetes",
        "--set",
        "model={name: mlp, hidden: [16]}",
        "--set",
        "task={name: regression, tolerance: 0.5}",
        "--methods",
        "standard,noise_injection",
        "--levels",
        "0,0.3",
        "--transfers",
        "4",
        "--epochs",
        "2",
        "--out",
        str(tmp_path / "run"),
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "mse under relative_gaussian (mean ± std (worst chip) over 4 transfers)" in result.stdout
    assert "task regression;" in result.stderr  # given, not inferred
    records = json.loads((tmp_path / "run" / "results.json").read_text())["jobs"]
    for record in records:
        assert set(record["metrics"]) == {"mse", "mae", "r2"} and "accuracy" not in record
        assert record["task"] == {"name": "regression", "loss": "mse", "tolerance": 0.5}
    report = (tmp_path / "run" / "report.md").read_text()
    assert "Cells: test mse, mean ± std (worst chip)" in report and "within tolerance" in report
