import json
import typing

import pytest

from engine.records import FailureLensError
from engine.runs.config import GraphSpec, ModelSpec, Objective, SweepConfig, load_sweep_config, parse_sweep_config

GOOD = """\
name: ifeval-small
models:
  - source: Qwen/Qwen3-0.6B
    revision: main
    dtype: bfloat16
    quantize: 4bit
  - {source: zoo:s, label: zoo}
benchmarks:
  - kind: ifeval
    path: data/ifeval.jsonl
    references: data/responses.jsonl
    thinking: false
    filters: {min_logit_diff: 1, max_ref_rank: 10, limit: 50}
  - kind: table
    path: /abs/my.csv
    columns: {prompt: question, reference: gold}
objective: {mode: logit_diff, strategy: by_ref_token, k: 10}
rule: cp-lrp
compute:
  heatmap: true
  graph: {enabled: true, layers: [0, 2, 4], pruning: {mode: cum_mass, top_p: 0.9}}
  faithfulness: true
store: runs/store
"""


def test_full_config(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text(GOOD)
    cfg = load_sweep_config(path)
    assert cfg.models[0] == ModelSpec("Qwen/Qwen3-0.6B", "Qwen3-0.6B", "main", "bfloat16", "4bit")
    assert cfg.models[1].label == "zoo" and cfg.models[1].dtype == "auto"
    ifeval, table = cfg.benchmarks
    assert (ifeval.path == str(tmp_path / "data/ifeval.jsonl")
            and ifeval.references == str(tmp_path / "data/responses.jsonl"))
    assert ifeval.filters.min_logit_diff == 1.0 and isinstance(ifeval.filters.min_logit_diff, float)
    assert ifeval.thinking is False and ifeval.chat_template is True
    assert table.path == "/abs/my.csv" and table.columns == {"prompt": "question", "reference": "gold"}
    assert cfg.rule == "cp-lrp" and cfg.objective == Objective(mode="logit_diff", strategy="by_ref_token", k=10)
    assert cfg.compute.graph.layers == (0, 2, 4) and cfg.compute.graph.pruning.top_p == 0.9
    assert cfg.compute.faithfulness.enabled and cfg.compute.faithfulness.seeds == (0, 1, 2)
    assert cfg.store == str(tmp_path / "runs/store")
    json.dumps(cfg.to_dict())  # storable with the run


def test_minimal_config_defaults():
    cfg = parse_sweep_config("models: [{source: zoo:s}]\nbenchmarks: [{kind: zoo}]\nstore: s\n")
    assert cfg.compute.graph == GraphSpec() and cfg.compute.heatmap and not cfg.compute.faithfulness.enabled
    assert cfg.rule == "attnlrp" and cfg.store == "s"


@pytest.mark.parametrize("old, new, message", [
    ("    dtype: bfloat16", "    dtyp: bfloat16",
     r"sweep.yaml line 5: unknown key 'dtyp' in models\[0\] \(did you mean 'dtype'\?\)"),
    ("rule: cp-lrp", "rules: cp-lrp", r"line 18: unknown key 'rules' in the top level"),
    ("pruning: {mode: cum_mass, top_p: 0.9}", "pruning: {mode: cum_mass, top: 0.9}",
     r"line 21: unknown key 'top' in compute.graph.pruning"),
    ("limit: 50", "limit: fifty", r"line 13: benchmarks\[0\].filters.limit must be an integer or null, not 'fifty'"),
    ("dtype: bfloat16", "dtype: float17", r"line 5: models\[0\].dtype must be one of auto, float32"),
    ("kind: ifeval", "kind: mmlu", r"line 9: benchmarks\[0\].kind must be one of ifeval, math"),
    ("store: runs/store\n", "", r"line 1: missing required key 'store' in the top level"),
    ("  - {source: zoo:s, label: zoo}", "  - {source: zoo:s, label: Qwen3-0.6B}",
     r"line 7: model label 'Qwen3-0.6B' is used twice"),
    ("heatmap: true", "heatmap: true\n  heatmap: false", r"line 21: duplicate key 'heatmap' in compute"),
    ("top_p: 0.9", "top_p: 1.5",
     r"line 21: compute.graph.pruning.top_p is 1.5, out of its range: it must be above 0 and at most 1"),
    ("models:", "models: [", r"line \d+: not valid YAML"),
])
def test_bad_config_names_key_and_line(tmp_path, old, new, message):
    assert old in GOOD
    path = tmp_path / "sweep.yaml"
    path.write_text(GOOD.replace(old, new))
    with pytest.raises(FailureLensError, match=message):
        load_sweep_config(path)


def test_not_a_mapping_and_missing_file(tmp_path):
    with pytest.raises(FailureLensError, match="must be a YAML mapping"):
        parse_sweep_config("- a\n- b\n")
    with pytest.raises(FailureLensError, match="not found"):
        load_sweep_config(tmp_path / "nope.yaml")


def test_choices_match_the_engine():
    from engine.lrp.context import RULES
    from engine.models import DTYPES
    from engine.objectives import MODES, STRATEGIES

    hints = typing.get_type_hints(SweepConfig)
    assert set(typing.get_args(hints["rule"])) == set(RULES)
    assert set(typing.get_args(typing.get_type_hints(ModelSpec)["dtype"])) == {"auto", *DTYPES}
    assert set(typing.get_args(typing.get_type_hints(ModelSpec)["rule"])) == set(RULES)
    obj = typing.get_type_hints(Objective)
    strategy = next(t for t in typing.get_args(obj["strategy"]) if t is not type(None))  # Optional[Literal[...]]
    assert set(typing.get_args(obj["mode"])) == set(MODES) and set(typing.get_args(strategy)) == set(STRATEGIES)


def test_ray_block_is_not_part_of_the_run_identity():
    base = "models: [{source: zoo:s}]\nbenchmarks: [{kind: zoo}]\nstore: s\n"
    cfg = parse_sweep_config(base + "ray: {gpus_per_actor: 0.5, max_retries: 1}\n")
    assert cfg.ray.gpus_per_actor == 0.5 and cfg.ray.cpus_per_actor == 1.0 and cfg.ray.max_retries == 1
    other = parse_sweep_config(base.replace("store: s", "store: elsewhere"))
    assert cfg.identity() == other.identity() and "ray" not in cfg.identity() and "store" not in cfg.identity()
    with pytest.raises(FailureLensError, match="line 4: unknown key 'gpus' in ray"):
        parse_sweep_config(base + "ray: {gpus: 1}\n")
    with pytest.raises(FailureLensError, match="ray.max_retries is -1, out of its range: it must be at least 0"):
        parse_sweep_config(base + "ray: {max_retries: -1}\n")


def test_home_folder_in_paths_is_expanded_like_the_dashboard(tmp_path, monkeypatch):
    """`~/x` is the home folder (as on the dashboard and for model folders), never a folder literally named '~'."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    text = ("models: [{source: zoo:xs}]\nbenchmarks:\n  - {kind: ifeval, path: ~/data/ifeval.jsonl, "
            "references: ~/data/refs.jsonl}\nstore: ~/runs/store\n")
    cfg = parse_sweep_config(text, base_dir=tmp_path / "configs")
    home = tmp_path / "home"
    assert cfg.store == str(home / "runs" / "store")
    assert cfg.benchmarks[0].path == str(home / "data" / "ifeval.jsonl")
    assert cfg.benchmarks[0].references == str(home / "data" / "refs.jsonl")
    assert "~" not in cfg.store


def test_one_path_rule_for_sweep_and_study_configs_and_the_sweep_form(tmp_path, monkeypatch):
    """config.resolve_path: `~` is home, a relative path starts at the YAML's folder; the study config and the
    dashboard's sweep form resolve through it too, and both config files load through load_config_file."""
    from engine.runs.config import resolve_path
    from engine.runs.form import SweepForm, store_path
    from engine.runs.study import load_study_config

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert resolve_path("~/s", tmp_path) == str(tmp_path / "home" / "s")
    assert resolve_path("runs/x", tmp_path / "cfg") == str((tmp_path / "cfg" / "runs" / "x").resolve())
    assert resolve_path("runs/x", None) == "runs/x" and resolve_path("/abs/x", tmp_path) == "/abs/x"
    assert store_path(SweepForm("n", ("zoo:xs",), store="~/s"), tmp_path) == tmp_path / "home" / "s"
    assert store_path(SweepForm("n", ("zoo:xs",)), tmp_path) == (tmp_path / "runs" / "n").resolve()
    with pytest.raises(FailureLensError, match=r"study config not found: .*e\.g\. studies/zoo\.yaml"):
        load_study_config(tmp_path / "missing.yaml")
    with pytest.raises(FailureLensError, match="sweep config not found"):
        load_sweep_config(tmp_path / "missing.yaml")
