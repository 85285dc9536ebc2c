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


@pytest.fixture(scope="module")
def with_graph(saved):
    """The saved case with the pruned graph as the Graph page shows it by default."""
    from engine.graph.build import build_graph
    from engine.graph.prune import prune
    from engine.graph.shown import shown_graph
    from engine.present.deck import dashboard_prune

    h, cf = saved
    g = build_graph(h, cf.prompt, cf.objective)
    pruned = prune(g, dashboard_prune())
    return g, pruned, dataclasses.replace(cf, results=dataclasses.replace(cf.results, graph=shown_graph(g, pruned)))


def test_the_pruned_graph_as_shown_round_trips_and_draws_read_only(with_graph, tmp_path):
    from engine.graph.shown import rebuild
    from engine.present import charts

    g, pruned, cf = with_graph
    back = load_case(write_case(tmp_path / "g.flcase", cf))
    assert back == cf
    shown = back.results.graph
    assert len(shown.nodes) == len(pruned.visible()) > 0
    assert len(shown.edges) == sum(int(m.sum()) for m in pruned.edge_masks) > 0
    g2, p2 = rebuild(shown, model="zoo:xs")
    assert p2.visible() == pruned.visible() and p2.shown_stages() == pruned.shown_stages()
    for s, t in pruned.visible():  # the kept nodes keep their relevance, the kept edges their weight
        assert abs(g2.node_relevance[s, t] - g.node_relevance[s, t]) <= 1e-6 * max(1.0, abs(g.node_relevance[s, t]))
    kept = {(es.src_stage, es.dst_stage, int(a), int(b)): float(w) for es, m in zip(g.transitions, pruned.edge_masks)
            for a, b, w in zip(es.src_tok[m], es.dst_tok[m], es.weight[m])}
    again = {(es.src_stage, es.dst_stage, int(a), int(b)): float(w) for es in g2.transitions
             for a, b, w in zip(es.src_tok, es.dst_tok, es.weight)}
    assert again.keys() == kept.keys() and all(abs(again[k] - w) <= 1e-6 * max(1.0, abs(w)) for k, w in kept.items())
    spec = charts.graph_chart(g2, p2).to_dict()  # drawable without the model
    assert len(spec["layer"]) == 2


@pytest.mark.parametrize("change, message", [
    ({"results__graph__nodes": [[0, 10**6, 1.0]]}, "out of range"),
    ({"results__graph__edges": [[0, 1, 0, 0, "1"]]}, "not a finite number"),
    ({"results__graph__edges": [[0, 1, 0]]}, "rows of 5 values"),
    ({"results__graph__stages": [["emb", -1, "<script>"]]}, "stages must be"),
    ({"results__graph__tokens": [1, 2]}, "tokens must be a list"),
    ({"results__graph__shown": [99]}, "out of range"),
    ({"results__graph": [1]}, "must be an object"),
])
def test_a_hostile_graph_in_a_case_file_is_refused(with_graph, change, message):
    with pytest.raises(FailureLensError, match=message):
        read_case(_doc(with_graph[2], **change))


def test_a_graph_with_too_many_edges_is_refused_before_drawing(with_graph):
    from engine.graph import shown

    d = json.loads(with_graph[2].to_bytes())
    d["results"]["graph"]["edges"] = [[0, 1, 0, 0, 0.5]] * (shown.MAX_EDGES + 1)
    with pytest.raises(FailureLensError, match="edges must be a list of at most"):
        read_case(json.dumps(d).encode())
