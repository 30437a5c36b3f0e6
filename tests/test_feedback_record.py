import json

import pytest

from rlxf.feedback.record import SCHEMA_PATH, FeedbackRecord, RecordError, read_records


def base(**kw):
    return {"id": "1", "item_id": "i", "type": "pairwise", "prompt": "hi",
            "responses": ["a", "b"], "choice": 0, "annotator": {"id": "u1"}, "source": "human", **kw}


@pytest.mark.parametrize("record, message", [
    (base(choice=2), "choice must be 0 or 1"),
    (base(choice=None), "tie=true"),
    (base(responses=["a"]), "2 responses"),
    (base(type="ranking", responses=["a", "b", "c"], ranking=[0, 0, 1]), "ranking must list distinct"),
    (base(type="rating", responses=["a"]), "rating needs ratings"),
    (base(type="binary", responses=["a"]), "binary needs label"),
    (base(source="crowd"), "source"),
    (base(colour="red"), "colour"),
])
def test_invalid_records_are_rejected_with_the_field(record, message):
    with pytest.raises(Exception, match=message):
        FeedbackRecord.model_validate(record)


def test_every_type_validates_and_round_trips():
    records = [base(), base(choice=None, tie=True, strength=0.0),
               base(type="ranking", responses=["a", "b", "c"], ranking=[2, 0, 1]),
               base(type="rating", responses=["a"], ratings={"helpful": 4, "harmless": 5}),
               base(type="binary", responses=["a"], label=False),
               base(type="edit", responses=["a"], edit="a, corrected"),
               base(type="critique", responses=["a"], critique="too long")]
    for r in records:
        again = FeedbackRecord.model_validate(FeedbackRecord.model_validate(r).to_json())
        assert again == FeedbackRecord.model_validate(r)


def test_shipped_schema_is_the_models_schema():
    assert json.loads(SCHEMA_PATH.read_text()) == FeedbackRecord.model_json_schema()


def test_read_records_names_file_line_and_field(tmp_path):
    path = tmp_path / "f.jsonl"
    path.write_text(json.dumps(base()) + "\n" + json.dumps(base(choice=7)) + "\n")
    with pytest.raises(RecordError, match=r"f.jsonl line 2: .*choice must be 0 or 1"):
        read_records(path)
    path.write_text("{not json\n")
    with pytest.raises(RecordError, match="line 1: not valid JSON"):
        read_records(path)
