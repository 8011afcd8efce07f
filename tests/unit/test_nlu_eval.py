import argparse
import json
from pathlib import Path
from xml.etree import ElementTree

import pytest

from integrations.nlu.base import OUT_OF_SCOPE, IntentPrediction
from integrations.nlu.holdout import stratified_holdout
from simulator.nlu import cli as nlu
from simulator.nlu.calibration import sweep
from simulator.nlu.datasets import load_split, read_banking, read_clinc
from simulator.nlu.evaluation import macro_f1

FIXTURES = Path(__file__).parents[1] / "fixtures" / "nlu"
CLINC = FIXTURES / "clinc150_slice.json"
BANKING = FIXTURES / "banking77_slice.csv"


def cli(*argv):
    parser = argparse.ArgumentParser()
    nlu.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["nlu", *argv])
    return args.func(args)


def test_readers_map_oos_to_out_of_scope():
    items = read_clinc(CLINC, ["oos_val"])
    assert items and all(intent == OUT_OF_SCOPE for _, intent in items)
    rows = read_banking(BANKING)
    assert len(rows) == 150 and rows[0][1] != OUT_OF_SCOPE


def test_reader_errors_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="no key"):
        read_clinc(CLINC, ["test"])
    bad = tmp_path / "bad.csv"
    bad.write_text("sentence,label\nhi,greet\n")
    with pytest.raises(ValueError, match="text,category"):
        read_banking(bad)


def test_holdout_is_stratified_and_deterministic():
    rows = read_banking(BANKING)
    kept, held = stratified_holdout(rows, 0.2)
    assert len(kept) + len(held) == len(rows)
    assert {i for _, i in held} == {i for _, i in rows}
    assert stratified_holdout(rows, 0.2) == (kept, held)
    assert not set(held) & set(kept)


def test_macro_f1():
    assert macro_f1(["a", "a", "b"], ["a", "a", "b"]) == 1.0
    assert macro_f1(["a", "b"], ["b", "a"]) == 0.0


def test_eval_clinc_slice_json(capsys):
    assert (
        cli("eval", "--dataset", "clinc150", "--train", str(CLINC), "--cache-dir", "", "--json")
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["n_test"] == 15 * 5 + 15
    assert report["n_oos"] == 15
    assert report["in_scope_accuracy"] > 0.8
    assert report["oos_recall"] is not None
    assert 0 < report["macro_f1"] <= 1
    assert sum(report["bands"].values()) == report["n_test"]
    assert sum(report["paths"].values()) == report["n_test"]
    assert report["latency_p95_ms"] >= report["latency_p50_ms"] > 0


def test_eval_banking_slice_with_holdout(capsys, tmp_path):
    assert (
        cli(
            "eval",
            "--dataset",
            "banking77",
            "--train",
            str(BANKING),
            "--holdout",
            "0.2",
            "--cache-dir",
            str(tmp_path),
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "in-scope accuracy" in out and "macro-F1" in out and "p95" in out
    assert "OOS recall" not in out
    assert list(tmp_path.glob("head-*.npz"))


def test_banking_needs_a_test_set_or_holdout():
    with pytest.raises(ValueError, match="--test or --holdout"):
        load_split("banking77", BANKING, None)


def test_calibrate_slice_writes_svg_and_recommends(capsys, tmp_path):
    svg = tmp_path / "rel.svg"
    assert (
        cli(
            "calibrate",
            "--dataset",
            "clinc150",
            "--train",
            str(CLINC),
            "--cache-dir",
            "",
            "--svg",
            str(svg),
            "--target-wrong-rate",
            "0.05",
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "acted" in out and "escalate" in out and "reliability diagram" in out
    assert "act_threshold" in out or "no act threshold" in out
    root = ElementTree.parse(svg).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert float(root.attrib["viewBox"].split()[2]) > 100
    assert root.find("{http://www.w3.org/2000/svg}rect") is not None


def test_sweep_recommends_the_lowest_safe_threshold():
    predictions = [
        IntentPrediction("a", 0.95),
        IntentPrediction("a", 0.9),
        IntentPrediction("b", 0.7),
        IntentPrediction("b", 0.6),
        IntentPrediction(OUT_OF_SCOPE, 0.9),
        IntentPrediction("a", 0.4),
    ]
    gold = ["a", "a", "a", "b", OUT_OF_SCOPE, "b"]
    result = sweep(predictions, gold, clarify=0.5, target_wrong_rate=0.0, act_grid=[0.5, 0.65, 0.8])
    by_act = {r.act: r for r in result.rows}
    assert by_act[0.5].acted == pytest.approx(4 / 6)
    assert by_act[0.5].wrong_action_rate == pytest.approx(1 / 4)
    assert by_act[0.8].wrong_action_rate == 0.0
    assert by_act[0.8].clarify_rate == pytest.approx(2 / 6)
    assert by_act[0.8].escalate_rate == pytest.approx(2 / 6)
    assert result.recommended_act == 0.8
    assert sum(b.count for b in result.bins) == len(predictions)


def test_clinc_test_split_holds_out_what_val_runs_only_trained_on():
    val = load_split("clinc150", CLINC, None)
    test = load_split("clinc150", CLINC, None, split="test")
    tuned_on = set(val.test)
    assert not set(test.test) & tuned_on
    assert set(test.test) <= set(val.train)
    assert not set(test.test) & set(test.train)
    assert tuned_on <= set(test.train)  # val and oos_val train the test runs
    oos = [t for t, i in test.test if i == OUT_OF_SCOPE]
    assert sorted(oos) == sorted(t for t, _ in read_clinc(CLINC, ["oos_train"]))
    assert load_split("clinc150", CLINC, None, split="test") == test


def test_banking_test_split_avoids_the_tuned_holdout():
    val = load_split("banking77", BANKING, None, holdout=0.2)
    test = load_split("banking77", BANKING, None, split="test")
    assert test.test and not set(test.test) & set(val.test)
    assert not set(test.test) & set(test.train)
    assert len(test.train) + len(test.test) == len(read_banking(BANKING))
    with pytest.raises(ValueError, match="carved from --train"):
        load_split("banking77", BANKING, None, holdout=0.2, split="test")


def test_eval_test_split_prints_oos_precision_and_f1(capsys):
    args = ("eval", "--train", str(CLINC), "--split", "test", "--cache-dir", "")
    assert cli(*args) == 0
    out = capsys.readouterr().out
    assert "split: test" in out and "OOS recall" in out and "OOS F1" in out
    assert cli(*args, "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["split"] == "test" and report["n_oos"] == 15
    assert 0 <= report["oos_precision"] <= 1 and 0 <= report["oos_f1"] <= 1
