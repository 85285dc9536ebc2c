"""`python -m engine compare --models zoo:xs,zoo:s,zoo:m,zoo:l --case l/eval-math-00014 [--json]`: one case in
several models — top-1, p(target), p(contrast), Δℓ on the same token pair, and the verdict
(engine.compare.verdicts)."""
from __future__ import annotations

import math


def _case(a):
    from ..records import FailureLensError
    from .deltas import cases_from_failures

    if a.case:
        from .. import zoo

        model, _, case_id = a.case.partition("/")
        if model not in zoo.zoo_names() or not case_id:
            raise FailureLensError(f"--case {a.case!r}: write <zoo model>/<case id>, e.g. l/eval-math-00014 "
                                   f"(zoo models: {', '.join(zoo.zoo_names()) or 'none'}).")
        found = [f for f in zoo.load_failures(model) if f.case_id == case_id]
        if not found:
            raise FailureLensError(f"zoo:{model} has no failure case {case_id!r}; list them with "
                                   f"engine.zoo.load_failures('{model}').")
        return cases_from_failures(found)[0], None
    if not a.prompt:
        raise FailureLensError("Give a case (--case l/eval-math-00014) or a prompt (--prompt TEXT, with --target "
                               "and --contrast, or the first model's top-1 and runner-up).")
    return None, a.prompt


def _fmt(x, spec: str) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def register(sub, commands, model_args, objective_args, load, token) -> None:
    p = sub.add_parser("compare", help="one case in several models: top-1, probabilities, Δℓ and a verdict")
    p.add_argument("--models", required=True, help="comma-separated: zoo:xs,zoo:s,/path/to/folder,org/name")
    p.add_argument("--case", help="a zoo failure case: <zoo model>/<case id>, e.g. l/eval-math-00014")
    p.add_argument("--prompt", help="instead of --case: the prompt text")
    p.add_argument("--target", help="with --prompt: the wrong token's text (default: the first model's top-1)")
    p.add_argument("--contrast", help="with --prompt: the right token's text (default: the runner-up)")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true")

    def run(a) -> int:
        from ..models import load_model
        from ..records import FailureLensError, dumps
        from . import verdicts as V

        sources = [m.strip() for m in a.models.split(",") if m.strip()]
        if not sources:
            raise FailureLensError("--models is empty; list the models, e.g. --models zoo:xs,zoo:l.")
        handles = [load_model(s, device=a.device) for s in sources]
        case, prompt = _case(a)
        if case is None:
            case = V.spec_from_view(handles[0], prompt, a.target or "", a.contrast or "")
        result = V.case_across_models(handles, case, labels=sources)
        counts = V.counts(result.rows)
        if a.json:
            print(dumps({"case": {"case_id": case.case_id, "prompt": case.prompt, "target": case.target,
                                       "contrast": case.contrast, "reference": case.reference},
                              "rows": V.table(result.rows).to_dict(orient="records"),
                              "counts": counts.to_dict(orient="records")}, ensure_ascii=False))
            return 0
        print(f"case {case.case_id}: {case.target!r} (target, wrong) vs {case.contrast!r} (contrast, right)")
        print(f"prompt: {case.prompt!r}")
        print(f"{'model':<16} {'top-1':<10} {'p(top-1)':>8} {'p(target)':>9} {'p(contr.)':>9} {'Δℓ':>8}  verdict")
        for r in result.rows:
            top = repr(r.top1.text) if r.top1 else "-"
            print(f"{r.model:<16} {top:<10} {_fmt(r.p_top1, '8.3f')} {_fmt(r.p_target, '9.3f')} "
                  f"{_fmt(r.p_contrast, '9.3f')} {_fmt(r.delta, '+8.3f')}  {r.verdict}")
            if r.notes:
                print(f"{'':<16} note: {r.notes}")
        fixed = [r.model for r in result.rows if r.verdict == V.FIXED]
        print(f"fixed in {len(fixed)} of {len(result.rows)} models" + (f": {', '.join(fixed)}" if fixed else ""))
        return 0

    commands["compare"] = run
