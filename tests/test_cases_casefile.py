"""Case files (engine.cases.casefile): round trip, fingerprint match, and hostile files refused with a message."""
from __future__ import annotations

import dataclasses
import io
import json
import zipfile

import pytest

from engine.cases.casefile import (
    MAX_CASE_BYTES,
    CaseFile,
    load_case,
    match,
    model_ref,
    read_case,
    results_of,
    write_case,
)
from engine.cases.notes import Note
from engine.objectives import Objective
from engine.records import FailureLensError


@pytest.fixture(scope="module")
def saved():
    from engine import zoo
    from engine.cases.whatif import remove, what_if_attribution
    from engine.heatmap import attribute
    from engine.models import load_model

    h = load_model("zoo:xs")
    f = zoo.load_failures("xs")[0]
    att = attribute(h, f.prompt, Objective(f"#{f.target_id}", f"#{f.contrast_id}"))
    w, after = what_if_attribution(h, att, [remove(2)])
    cf = CaseFile(model_ref(h), f"xs/{f.case_id}", f.prompt, f"#{f.target_id}", f"#{f.contrast_id}", att.mode,
                  att.strategy, att.k, {"top_p": 0.8, "layers": "All", "stages": [1, 2]}, "L1.T3", ("rm:2",),
                  (Note("zoo:xs", f"xs/{f.case_id}", "the <script>x</script> **bold**", "URT", "open", "ana", 1.0),),
                  results_of(att, w, after), 123.0)
    return h, cf


def test_round_trip_keeps_every_field(saved, tmp_path):
    h, cf = saved
    path = write_case(tmp_path / "a.flcase", cf)
    back = load_case(path)
    assert back == cf
    assert back.model.kind == "zoo" and back.model.name == "zoo:xs" and len(back.model.weights_hash) == 16
    assert back.results.after_relevance is not None and back.results.whatif["edits"] == ["rm:2"]
    assert back.notes[0].hypothesis == "the <script>x</script> **bold**"  # kept verbatim; shown escaped
    assert match(back.model, h).status == "same"


def test_fingerprint_mismatch_and_absent_model(saved):
    from engine.models import load_model

    h, cf = saved
    changed = dataclasses.replace(cf.model, weights_hash="0" * 16, rule="cp-lrp")
    m = match(changed, h)
    assert m.status == "differs" and "(weights, rule)" in m.message and "recomputed" in m.message
    assert match(cf.model, None).status == "absent" and "read-only" in match(cf.model, None).message
    m = match(cf.model, load_model("zoo:s"))
    assert m.status == "absent" and "saved with zoo:xs, not zoo:s" in m.message


def _doc(cf, **change):
    d = json.loads(cf.to_bytes())
    for path, value in change.items():
        node = d
        *head, last = path.split("__")
        for k in head:
            node = node[int(k)] if isinstance(node, list) else node[k]
        node[last] = value
    return json.dumps(d).encode()


@pytest.mark.parametrize("change, message", [
    ({"model__name": "/etc/passwd"}, "not a valid zoo model name"),
    ({"model__kind": "local", "model__name": "../../secret"}, "not a valid local model name"),
    ({"model__kind": "exec"}, "must be zoo, hub or local"),
    ({"k": True}, "case.k must be a whole number"),
    ({"k": "10"}, "case.k must be a whole number"),
    ({"prompt": 5}, "case.prompt must be text"),
    ({"results__relevance": ["1"]}, "results.relevance must be a list"),
    ({"results__token_ids": [1]}, "token_ids values"),
    ({"edits": ["rm:1; rm -rf /"]}, "is not an edit"),
    ({"notes__0__status": "done"}, "Unknown status 'done'"),
    ({"notes__0__category": "<b>"}, "Unknown category"),
    ({"graph": {"x": {"deep": 1}}}, "not a plain value"),
    ({"format": "other"}, "not a Failure Lens case file"),
    ({"schema_version": 99}, "written by a newer Failure Lens"),
    ({"results__whatif": {"sentence": 3}}, "results.whatif.sentence must be text"),
])
def test_wrong_types_and_paths_are_refused(saved, change, message):
    with pytest.raises(FailureLensError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_case(_doc(saved[1], **change))


def test_hostile_bytes_are_refused(saved, tmp_path):
    cf = saved[1]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("manifest.json", cf.to_bytes())
    cases = [
        (buf.getvalue(), "compressed archive"),
        (b"\xff\xfe\x00garbage", "not UTF-8"),
        (b"{not json", "not valid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "nested more than"),
        (b'{"a":' * 20 + b"1" + b"}" * 20, "nested more than 8"),
        (cf.to_bytes().replace(b'"saved": 123.0', b'"saved": NaN'), "NaN"),
        (_doc(cf, prompt="\ud800"), "lone surrogate"),
        (b"[1, 2]", "must be a JSON object"),
    ]
    for data, message in cases:
        with pytest.raises(FailureLensError, match=message):
            read_case(data)
    with pytest.raises(FailureLensError, match="more than the limit"):
        read_case(b" " * (MAX_CASE_BYTES + 1))
    huge = tmp_path / "huge.flcase"
    with open(huge, "wb") as fh:
        fh.truncate(MAX_CASE_BYTES + 1)  # sparse: refused by its size before reading
    with pytest.raises(FailureLensError, match="more than the limit"):
        load_case(huge)
    with pytest.raises(FailureLensError, match="is a folder"):
        load_case(tmp_path)
