"""Gwet's AC1 beside raw agreement and Krippendorff's alpha in a run's feedback stage and report,
computed from the run's own feedback records."""

import json

import jsonschema
import pytest

from rlxf.audit.report import SCHEMA_PATH
from rlxf.feedback.agreement import gwet_ac1
from rlxf.feedback.quality import items_of, krippendorff_alpha
from rlxf.feedback.record import read_records


def test_the_report_shows_ac1_computed_from_the_runs_feedback(tiny_run):
    labels = list(items_of(read_records(tiny_run / "feedback" / "feedback.jsonl")).values())
    want = gwet_ac1(labels, ("a", "b", "tie"))
    assert want is not None
    # the ledger keeps 6 decimals
    stage = json.loads((tiny_run / "feedback" / "_stage.json").read_text())["metrics"]
    assert stage["agreement/gwet_ac1"] == pytest.approx(want, abs=1e-6)
    report = json.loads((tiny_run / "report" / "report.json").read_text())
    jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text())).validate(report)
    fb = report["feedback"]
    assert fb["agreement/gwet_ac1"] == pytest.approx(want, abs=1e-6)
    assert fb["agreement/krippendorff_alpha"] == pytest.approx(krippendorff_alpha(labels), abs=1e-6)
    assert "agreement/gwet_ac1" in (tiny_run / "report" / "report.md").read_text()
