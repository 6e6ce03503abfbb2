"""srvp.book: the helpers that format the chapters' tables and labels."""
import math

import pytest

from srvp import preset
from srvp.book import (
    cell_float,
    describe_run,
    md_table,
    pm_summary,
    report_summary,
    verdict,
)
from srvp.run_folder import append_log


def test_pm_summary_digits_and_signs():
    assert pm_summary({"mean": 15.0149, "ci95": 0.0712}) == "15.01 ± 0.07"
    assert pm_summary({"mean": 0.77991, "ci95": 0.002}, 4) == "0.7799 ± 0.0020"
    assert pm_summary({"mean": 0.022, "ci95": 0.014}, 3, signed=True) == \
        "+0.022 ± 0.014"
    assert pm_summary({"mean": -0.449, "ci95": 0.037}, 3, signed=True) == \
        "-0.449 ± 0.037"
    assert pm_summary({"mean": -0.449, "ci95": 0.037}, 1) == "-0.4 ± 0.0"
    assert pm_summary({"mean": 2.0, "ci95": 1.0, "n": 5}) == "2.00 ± 1.00"  # extra keys


def test_verdict_reads_which_side_of_zero_the_interval_lies():
    assert verdict({"mean": 0.3, "ci95": 0.1}) == "higher"
    assert verdict({"mean": -0.3, "ci95": 0.1}) == "lower"
    assert verdict({"mean": 0.05, "ci95": 0.1}) == "not resolved"
    # an interval that touches zero does not leave it out
    assert verdict({"mean": 0.25, "ci95": 0.25}) == "not resolved"
    assert verdict({"mean": -0.25, "ci95": 0.25}) == "not resolved"
    words = {"higher": "better", "lower": "worse", "unresolved": "no difference"}
    assert verdict({"mean": 1.0, "ci95": 0.5}, **words) == "better"
    assert verdict({"mean": -1.0, "ci95": 0.5}, **words) == "worse"
    assert verdict({"mean": 0.0, "ci95": 0.5}, **words) == "no difference"


def test_md_table_text_and_alignment():
    table = md_table(["run", "PSNR (dB)", "steps"], [["`cpu`", "15.01 ± 0.07", 10000],
                                                     ["a|b", 1.5, ""]], align="lrc")
    assert table.data.splitlines() == [
        "| run | PSNR (dB) | steps |",
        "| --- | ---: | :---: |",
        "| `cpu` | 15.01 ± 0.07 | 10000 |",
        r"| a\|b | 1.5 |  |",  # a pipe in a cell does not split it
    ]
    assert md_table(["a", "b"], []).data == "| a | b |\n| --- | --- |"  # left: default
    assert md_table(["a"], iter([(1,)]))._repr_markdown_() == "| a |\n| --- |\n| 1 |"


def test_md_table_refuses_rows_and_alignments_of_the_wrong_size():
    with pytest.raises(ValueError, match="2 columns"):
        md_table(["a", "b"], [], align="l")
    with pytest.raises(ValueError, match="align"):
        md_table(["a", "b"], [], align="lx")
    with pytest.raises(ValueError, match="3 cells"):
        md_table(["a", "b"], [[1, 2, 3]])


def test_cell_float_is_nan_for_an_empty_cell():
    runs = {"cpu": {"psnr": "15.015", "dpsnr": ""}}
    assert cell_float(runs, "cpu", "psnr") == 15.015
    assert math.isnan(cell_float(runs, "cpu", "dpsnr"))


def test_report_summary_leaves_out_infinite_videos():
    report = {"metrics": {"psnr": {"mean": 15.0, "ci95": 0.07, "n": 1000}},
              "reference": {"last_frame": {"psnr": {
                  "mean": math.inf, "ci95": math.nan, "n": 5000, "n_infinite": 9,
                  "finite_mean": 11.79, "finite_ci95": 0.05}}}}
    assert report_summary(report, "psnr") == {"mean": 15.0, "ci95": 0.07, "n": 1000,
                                              "n_infinite": 0}
    assert report_summary(report, "psnr", "last_frame") == {
        "mean": 11.79, "ci95": 0.05, "n": 5000, "n_infinite": 9}


def _run_folder(folder, records):
    folder.mkdir()
    for record in records:
        append_log(folder, record)
    return folder


def test_describe_run_reads_the_last_timed_step(tmp_path):
    cfg = preset("smoke", nf=8, batch_size=16, lr_scheduling_burnin=10_000,
                 lr_scheduling_n_iter=2_000)  # 12,000 steps
    run = _run_folder(tmp_path / "run", [
        {"step": 100, "time": 600.0, "nll": 1.0},
        {"step": 200, "time": 5400.0, "nll": 0.5},
        {"step": 200, "val_psnr": 14.0},  # a validation record has no time
    ])
    assert describe_run(run, cfg) == ("trained model: nf=8, batch 16, 12,000 steps "
                                      "planned;\nits log ends at step 200, after 1.5 h "
                                      "of training")
    short = _run_folder(tmp_path / "short", [{"step": 1500, "time": 1250.0}])
    assert describe_run(short, cfg).endswith("step 1,500, after 21 min of training")
