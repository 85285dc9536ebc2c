"""`python -m engine whatif|case save|cases`, and `explain --case-file`: edit a case's prompt from a script, save and
reopen case files, list the shipped case ids.

    python -m engine whatif --model zoo:l --case l/eval-math-00014 --remove 2 [--replace is=was] [--json]
    python -m engine case save --model zoo:l --case l/eval-math-00014 [--remove 2] [--note TEXT] --out x.flcase
    python -m engine explain --case-file x.flcase [--json] [--model zoo:l]
    python -m engine cases [--model zoo:l]
`--remove WORD` removes every ordinary token whose text is WORD (spaces ignored); `--replace WORD=NEW` puts the
one-token word NEW there. A case file's model is loaded only when it is a zoo model, or when --model names it.
"""
from __future__ import annotations

import time
from typing import Any

from engine.records import FailureLensError, dumps


def _edits(att: Any, removes: list[str], replaces: list[str]) -> list:
    from engine.cases.whatif import positions_of, remove, replace

    edits = [remove(i) for w in removes for i in positions_of(att.tokens, att.special_mask, w)]
    for spec in replaces:
        old, sep, new = spec.partition("=")
        if not sep or not old.strip() or not new:
            raise FailureLensError(f"--replace {spec!r} is not WORD=NEW; e.g. --replace plus=minus.")
        edits += [replace(i, new) for i in positions_of(att.tokens, att.special_mask, old)]
    return edits


def _case(a: Any, load: Any, token: Any):
    """(handle, failure or None, prompt, attribution) of --case or --prompt."""
    from engine import zoo
    from engine.heatmap import attribute
    from engine.objectives import Objective

    if bool(a.case) == bool(a.prompt):
        raise FailureLensError("Give either --case ID (e.g. l/eval-math-00014; list them with `python -m engine "
                               "cases`) or --prompt TEXT with --target and --contrast.")
    failure = zoo.find_failure(a.case, a.model[4:] if a.model.startswith("zoo:") else None) if a.case else None
    handle = load(a)
    prompt = failure.prompt if failure else a.prompt
    target = token(a.target) if a.target else (failure.target_id if failure else None)
    contrast = token(a.contrast) if a.contrast else (failure.contrast_id if failure else None)
    return handle, failure, prompt, attribute(handle, prompt, Objective(target, contrast, a.mode, a.strategy, a.k))


def _side(label: str, s: dict, target: str, contrast: str) -> str:
    return (f"{label:<7} answer {s['top1']!r:<8} p({target!r}) {s['p_target']:.3f}  p({contrast!r}) "
            f"{s['p_contrast']:.3f}  Δℓ {s['logit_diff']:+.3f}")


def _print_whatif(w: dict) -> None:
    print(_side("before", w["before"], w["target"], w["contrast"]))
    print(_side("after", w["after"], w["target"], w["contrast"]))
    print(w["sentence"])


def _whatif(a: Any, load: Any, token: Any) -> int:
    from engine.cases.whatif import what_if

    handle, _, _, att = _case(a, load, token)
    edits = _edits(att, a.remove, a.replace)
    if not edits:
        raise FailureLensError("Name at least one edit: --remove WORD or --replace WORD=NEW.")
    if att.contrast is None:
        raise FailureLensError("What if? needs a contrast token: give --contrast (or a --case).")
    w = what_if(handle, att.token_ids, att.special_mask, att.target.token_id, att.contrast.token_id, edits).to_dict()
    out = {"case": a.case or "", "model": a.model, **w}
    if a.json:
        print(dumps(out, ensure_ascii=False))
    else:
        print(f"{a.case or 'prompt'} on {a.model}: {len(edits)} edit(s) {', '.join(w['edits'])}")
        _print_whatif(w)
    return 0


def _save(a: Any, load: Any, token: Any) -> int:
    from engine import files
    from engine.cases.casefile import SUFFIX, CaseFile, model_ref, results_of, write_case
    from engine.cases.notes import Note, case_key, check_note
    from engine.cases.whatif import what_if_attribution

    out = files.check_target(a.out, "case file")
    if out.suffix != SUFFIX:
        raise FailureLensError(f"Cannot write a case file to {out.name}: use a {SUFFIX} file name.")
    handle, failure, prompt, att = _case(a, load, token)
    edits = _edits(att, a.remove, a.replace)
    whatif = after = curves = None
    if edits:
        whatif, after = what_if_attribution(handle, att, edits)
    if a.check:
        from engine.cases.checks import check_attribution

        curves = check_attribution(handle, att)
    ref = model_ref(handle)
    case = f"{failure.model}/{failure.case_id}" if failure else ""
    notes = tuple(check_note(Note(ref.name, case_key(case, prompt), text, a.category, a.status, a.author,
                                  time.time())) for text in a.note)
    cf = CaseFile(ref, case, prompt, f"#{att.target.token_id}", f"#{att.contrast.token_id}" if att.contrast else "",
                  att.mode, att.strategy, att.k, edits=tuple(e.spec() for e in edits), notes=notes,
                  results=results_of(att, whatif, after, curves), saved=time.time())
    write_case(out, cf)
    print(f"wrote {out}: {ref.name} · {case or 'own prompt'} · {len(edits)} edit(s), {len(notes)} note(s)"
          + (f"\n{whatif.sentence}" if whatif else ""))
    return 0


def explain_case_file(a: Any, load: Any) -> int:
    """Read a case file; recompute it when its model is here (saying first when the model differs), else show
    the saved results read-only with a notice."""
    from engine.cases.casefile import load_case, match
    from engine.cases.whatif import Edit, what_if, what_if_text
    from engine.heatmap import attribute
    from engine.models import DTYPES
    from engine.present.summary import case_summary, to_text

    cf = load_case(a.case_file)
    ref = cf.model
    handle = None
    if a.model or ref.kind == "zoo":
        a.model = a.model or ref.name
        a.dtype = ref.dtype if a.dtype == "auto" and ref.dtype in DTYPES else a.dtype
        a.quantize = a.quantize or ref.quantize
        a.rule = ref.rule if a.rule == "attnlrp" and ref.rule in ("attnlrp", "cp-lrp") else a.rule
        try:
            handle = load(a)
        except FailureLensError as e:
            if a.model != ref.name:
                raise
            print(f"note: {e}")
    m = match(ref, handle)
    report: dict[str, Any] = {"status": m.status, "notice": m.message, "case_file": cf.to_dict(), "recomputed": None}
    if handle is not None and m.status != "absent":
        att = attribute(handle, cf.prompt, cf.objective)
        summary = case_summary(att, None, model=ref.name, case=cf.case)
        w = None
        if cf.edits and att.contrast is not None:
            edits = [Edit.parse(e) for e in cf.edits]
            if edits[0].kind == "text":  # the prompt is tokenized anew: engine.cases.whatif.what_if_text
                w = what_if_text(handle, att, cf.prompt, edits[0])[0].to_dict()
            else:
                w = what_if(handle, att.token_ids, att.special_mask, att.target.token_id, att.contrast.token_id,
                            edits).to_dict()
        report["recomputed"] = {"summary": summary.to_dict(), "whatif": w}
    if a.json:
        print(dumps(report, ensure_ascii=False))
        return 0
    if m.message:
        print(f"note: {m.message}")
    when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(cf.saved))
    print(f"Case file: {ref.name} · {cf.case or 'own prompt'} · saved {when} UTC")
    if report["recomputed"]:
        print(to_text(summary), end="")
        if w:
            _print_whatif(w)
    elif cf.results is not None:
        r = cf.results
        ld = "-" if r.logit_diff is None else f"{r.logit_diff:+.3f}"
        print(f"Saved results (read-only): says {r.target!r} instead of {r.contrast!r}, Δℓ {ld}, "
              f"{len(r.tokens)} tokens")
        if r.whatif:
            _print_whatif(r.whatif)
        if r.verdict:
            print(f"Check ({r.verdict}): {r.verdict_sentence}")
    for n in cf.notes:
        print(f"note [{n.status}{', ' + n.category if n.category else ''}] {n.author or 'anonymous'}: {n.hypothesis}")
    return 0


def _cases(a: Any) -> int:
    from engine import zoo

    name = a.model[4:] if a.model and a.model.startswith("zoo:") else a.model
    for f in zoo.load_failures(name):
        print(f"{f.model}/{f.case_id}\tsays {f.target!r}, should say {f.contrast!r} (Δℓ {f.logit_diff:.2f})")
    return 0


def register(sub, commands, model_args, objective_args, load, token) -> None:
    from engine.cases.notes import CATEGORIES, STATUSES

    def case_args(p) -> None:
        model_args(p)
        objective_args(p, prompt_required=False)
        p.add_argument("--case", help="a failure case id, e.g. l/eval-math-00014")
        p.add_argument("--remove", action="append", default=[], metavar="WORD",
                       help="remove every token WORD (the neutral token of the causal checks); repeatable")
        p.add_argument("--replace", action="append", default=[], metavar="WORD=NEW",
                       help="put the one-token word NEW in place of every token WORD; repeatable")

    p = sub.add_parser("whatif", help="what if a word is removed or replaced? before -> after and one sentence")
    case_args(p)
    p.add_argument("--json", action="store_true")
    commands["whatif"] = lambda a: _whatif(a, load, token)

    case = sub.add_parser("case", help="case files (.flcase): save a case with its edits and notes")
    csub = case.add_subparsers(dest="case_command", required=True)
    p = csub.add_parser("save", help="write a case file")
    case_args(p)
    p.add_argument("--note", action="append", default=[], help="a hypothesis in words (repeatable)")
    p.add_argument("--author", default="")
    p.add_argument("--category", default="", choices=list(CATEGORIES))
    p.add_argument("--status", default="open", choices=list(STATUSES))
    p.add_argument("--check", action="store_true", help="also run the deletion check and keep its verdict")
    p.add_argument("--out", required=True, help="the .flcase file to write")
    commands["case"] = lambda a: _save(a, load, token)

    p = sub.add_parser("cases", help="list the shipped failure case ids")
    p.add_argument("--model", help="a zoo model (zoo:l or l); default: all")
    commands["cases"] = _cases
