"""The report's tables: a wide grid turned on its side, the best and indistinguishable cells
marked, the Pareto fronts listed, the training cost per method, and the summary's
recommendation equal to what `recommend` says."""

from __future__ import annotations

from test_decision import run

from noiseproof.experiments.decision import comparisons, pareto, recommend
from noiseproof.experiments.report_summary import cost_rows, decision_rows
from noiseproof.experiments.report_tables import (
    BEST,
    MAX_COLUMNS,
    TIED,
    fitted,
    marked,
    pareto_rows,
)


def test_a_wide_table_is_transposed_and_a_narrow_one_kept():
    header = ["method", "clean", *[f"n={lv}" for lv in range(MAX_COLUMNS)]]
    rows = [["a", "1", *"abcdef"], ["b", "2", *"ghijkl"]]
    turned_header, turned = fitted(header, rows, "n level", "n=")
    assert turned_header == ["n level", "a", "b"]
    assert turned[0] == ["clean", "1", "2"] and turned[1] == ["0", "a", "g"]
    assert len(turned) == len(header) - 1
    narrow = (header[:4], [r[:4] for r in rows])
    assert fitted(*narrow, "n level", "n=") == narrow
    long = (header, [rows[0]] * len(header))  # as many rows as columns: kept
    assert fitted(*long, "n level") == long


def test_best_and_indistinguishable_cells_are_marked():
    results = run({"standard": 0.0, "close": 0.02, "best": 0.0201}, {m: 1 for m in "abc"})
    decided = comparisons(results["jobs"], results["trainings"])
    header = ["method", "clean", "relative_gaussian=0.5"]
    rows = [[m, "95.00", "x"] for m in ("standard", "close", "best")]
    shown = {row[0]: row[2] for row in marked(header, rows, decided, "relative_gaussian")}
    assert shown == {"standard": "x", "close": f"x {TIED}", "best": f"x {BEST}"}


def test_pareto_rows_list_every_front():
    results = run({"a": 0.0, "b": 0.03}, {"a": 1, "b": 4})
    fronts = pareto(comparisons(results["jobs"], results["trainings"]))
    header, rows = pareto_rows(fronts, "relative_gaussian")
    assert header[0] == "level" and len(header) == 5  # mean and worst, vs cost and vs clean
    assert rows == [["0.5", "a, b", "a, b", "b", "b"]]


def test_the_summary_says_what_recommend_says():
    results = run(
        {"standard": 0.0, "cheap": 0.02, "costly": 0.0201}, {"standard": 1, "cheap": 1, "costly": 5}
    )
    decided = comparisons(results["jobs"], results["trainings"])
    header, rows = decision_rows(results["jobs"], decided, "relative_gaussian")
    assert header[-1] == "recommend"
    said = recommend(results, "relative_gaussian", 0.5)
    assert rows[0][1].startswith("costly") and rows[0][-1].startswith(said["method"] + " (")
    assert said["method"] == "cheap"


def test_cost_rows_average_over_seeds():
    trainings = [
        {
            "method": "m",
            "seed": s,
            "history": [{}] * 3,
            "cost": {
                "steps": 10 * (s + 1),
                "examples": 100,
                "forwards": 20,
                "flops": 1e9 * (s + 1),
                "seconds": 2.0,
            },
        }
        for s in range(2)
    ]
    trainings.append({"method": "old", "seed": 0, "history": [{}]})  # before costs were kept
    header, rows = cost_rows(trainings)
    assert rows[0] == ["m", "2", "3", "15", "100", "20", "1.5e+09", "2.0"]
    assert rows[1][3:] == ["n/a"] * 5
