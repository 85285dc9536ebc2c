"""`python -m engine explain|deck`: a case in plain words, and as a slide deck (`cases` lists the case ids:
engine.cases.case_cli).

    python -m engine explain --model zoo:l --case l/eval-math-00014 [--json]
    python -m engine deck --model zoo:l --case l/eval-math-00014 --out case.pptx   (or --out case.html)
`--case` takes a failure case id as the dashboard shows it; `--prompt/--target/--contrast` work as in `attribute`.
"""
from __future__ import annotations

import json
import os
from pathlib import Path


def register(sub, commands, model_args, objective_args, load, token) -> None:
    def case_args(p) -> None:
        model_args(p)
        objective_args(p, prompt_required=False)
        p.add_argument("--case", help="a failure case id as the dashboard shows it, e.g. l/eval-math-00014")

    p = sub.add_parser("explain", help="a case in plain words (what the model says, which tokens push, how far)")
    case_args(p)
    p.add_argument("--json", action="store_true", help="the same summary as structured fields")
    p.add_argument("--case-file", help="a saved .flcase file to reopen (then --model is optional)")
    next(x for x in p._actions if x.dest == "model").required = False  # a case file names its own model
    commands["explain"] = lambda a: _explain(a, load, token)

    p = sub.add_parser("deck", help="a case as a PowerPoint deck (.pptx) or a one-file HTML report (.html)")
    case_args(p)
    p.add_argument("--out", required=True, help="output file: .pptx or .html")
    p.add_argument("--compare", action="append", default=[], metavar="MODEL",
                   help="another model for the scaling slide (repeatable), e.g. zoo:s")
    p.add_argument("--no-graph", action="store_true", help="leave out the graph slide (faster on long prompts)")
    commands["deck"] = lambda a: _deck(a, load, token)


def _request(a, load, token):
    """(handle, prompt, attribution, segment labels, case id) of --case or --prompt."""
    from engine import zoo
    from engine.cases.segments import assign_segments
    from engine.heatmap import attribute
    from engine.objectives import Objective
    from engine.records import FailureLensError

    if a.case and a.prompt:
        raise FailureLensError("Give either --case or --prompt, not both.")
    if not a.model:
        raise FailureLensError("Give --model (zoo:<name>, a local folder or a hub id), or --case-file FILE.")
    if not a.case and not a.prompt:
        raise FailureLensError("Give --case ID (e.g. l/eval-math-00014; list them with `python -m engine cases`) "
                               "or --prompt TEXT.")
    failure = None
    if a.case:
        default = a.model[4:] if a.model.startswith("zoo:") else None
        failure = zoo.find_failure(a.case, default)
    handle = load(a)
    prompt = failure.prompt if failure else a.prompt
    target = token(a.target) if a.target else (failure.target_id if failure else None)
    contrast = token(a.contrast) if a.contrast else (failure.contrast_id if failure else None)
    att = attribute(handle, prompt, Objective(target, contrast, a.mode, a.strategy, a.k, a.position))
    labels = assign_segments(att.offsets, dict(failure.segments), att.special_mask) if failure else None
    case = f"{failure.model}/{failure.case_id}" if failure else ""
    return handle, prompt, att, labels, case, _recorded(att, failure)


def _recorded(att, failure) -> bool:
    """The pair is the case's recorded wrong and right answer: only then does the summary say "should say"."""
    return failure is not None and att.contrast is not None and \
        (att.target.token_id, att.contrast.token_id) == (failure.target_id, failure.contrast_id)


def _explain(a, load, token) -> int:
    from engine.present.summary import case_summary, to_text

    if a.case_file:
        from engine.cases.case_cli import explain_case_file

        return explain_case_file(a, load)
    _, _, att, labels, case, recorded = _request(a, load, token)
    s = case_summary(att, labels, model=a.model, case=case, recorded=recorded)
    print(json.dumps(s.to_dict(), ensure_ascii=False, indent=1) if a.json else to_text(s),
          end="" if not a.json else "\n")
    return 0


def _deck(a, load, token) -> int:
    from engine.heatmap import attribute
    from engine.models import load_model
    from engine.objectives import Objective
    from engine.present.deck import case_story, dashboard_prune_words, deck_pptx, report_html
    from engine.records import FailureLensError

    out = Path(a.out)
    if out.suffix.lower() not in (".pptx", ".html"):
        raise FailureLensError(f"Cannot write a deck to {out.name}: use a .pptx or .html file name.")
    if not out.parent.is_dir():
        raise FailureLensError(f"The folder {out.parent} does not exist; create it or choose another --out.")
    handle, prompt, att, labels, case, recorded = _request(a, load, token)
    check = None
    if att.contrast is not None:  # the check slide, and the category it decides (as in the dashboard)
        from engine.cases.checks import check_attribution

        check = check_attribution(handle, att, curves="full")  # the slide draws every curve
    graph = None
    if not a.no_graph:
        from engine.graph.build import build_graph

        graph = build_graph(handle, prompt, Objective.of(att))
    others = []
    for spec in a.compare:
        other = load_model(spec, dtype=a.dtype, rule=a.rule, device=a.device)
        others.append((spec, attribute(other, prompt, Objective(att.target.text,
                                       att.contrast.text if att.contrast else None, a.mode, a.strategy, a.k))))
    story = case_story(att, labels, model=a.model, case=case, prompt=prompt, graph=graph, others=others,
                       check=check, recorded=recorded,
                       graph_note=f"Pruned as the Graph page does by default: {dashboard_prune_words()}.")
    data = deck_pptx(story) if out.suffix.lower() == ".pptx" else report_html(story).encode("utf-8")
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        tmp.replace(out)  # never leave a half-written file
    finally:
        tmp.unlink(missing_ok=True)
    print(f"wrote {out} ({len(data) // 1024} KiB): {story.summary.headline}")
    return 0

