"""`python -m engine check --model zoo:l --case l/eval-math-00014 [--json] [--curves full]`: does it hold?

Runs the heatmap, the token deletion / insertion curves with their verdict (engine.cases.checks) and the
ablation of the top-N graph nodes (engine.cases.ablation) for one case: a shipped zoo failure
("<zoo model>/<case id>", as the dashboard shows it) or a prompt with target and contrast.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from engine.records import FailureLensError, dumps


@dataclass(frozen=True)
class CheckRequest:
    prompt: str
    target: Any
    contrast: Any
    label: str


def zoo_case(ref: str):
    """The shipped zoo failure named "<zoo model>/<case id>" (e.g. l/eval-math-00014)."""
    from engine import zoo

    model, _, case_id = ref.partition("/")
    if not case_id:
        raise FailureLensError(f"--case {ref!r} is not '<zoo model>/<case id>', e.g. l/eval-math-00014.")
    fails = zoo.load_failures(model)  # names the available zoo models when `model` is not one
    found = next((f for f in fails if f.case_id == case_id), None)
    if found is None:
        some = ", ".join(f"{model}/{f.case_id}" for f in fails[:3])
        raise FailureLensError(f"No shipped failure {ref!r}; zoo:{model} has {len(fails)} (e.g. {some}).")
    return found


def _request(a, token) -> CheckRequest:
    if bool(a.case) == bool(a.prompt):
        raise FailureLensError("Give either --case <zoo model>/<case id> or --prompt TEXT (with --target/--contrast).")
    if a.case:
        f = zoo_case(a.case)
        return CheckRequest(f.prompt, f"#{f.target_id}", f"#{f.contrast_id}", a.case)
    return CheckRequest(a.prompt, token(a.target), token(a.contrast), "prompt")


def run_check(handle, req: CheckRequest, k: int, seeds: int, replacement: Any, nodes: int, split: bool,
              curves: str = "verdict") -> dict[str, Any]:
    """Heatmap, curves and node ablation of one case as one JSON-able dict."""
    from engine.cases.ablation import ablate_nodes
    from engine.cases.checks import check_attribution
    from engine.heatmap import attribute
    from engine.objectives import Objective

    if not 1 <= seeds <= 100:
        raise FailureLensError(f"--seeds {seeds} is out of range: use 1..100 random orders (5 is the usual choice).")
    if not 0 <= nodes <= 500:
        raise FailureLensError(f"--nodes {nodes} is out of range: use 0..500 (0 skips the node ablation).")
    att = attribute(handle, req.prompt, Objective(req.target, req.contrast))
    checked = check_attribution(handle, att, k, tuple(range(seeds)), replacement, curves=curves)
    ablation: Optional[Any] = None
    if nodes:
        ablation = ablate_nodes(handle, att.token_ids, att.target.token_id, att.contrast.token_id, top_n=nodes,
                                split=split)
    return {"case": req.label, "model": handle.label, "target": att.target.text, "contrast": att.contrast.text,
            "logit_diff": att.logit_diff, "tokens": len(att.tokens), "curves": checked.to_dict(),
            "ablation": ablation.to_dict() if ablation else None}


def _num(v: Optional[float]) -> str:
    return "     -" if v is None else f"{v:+7.3f}"


def print_report(r: dict[str, Any]) -> None:
    c = r["curves"]
    print(f"{r['case']} on {r['model']}: says {r['target']!r} instead of {r['contrast']!r}, "
          f"Δℓ {r['logit_diff']:+.3f}, {r['tokens']} tokens")
    print(f"\nVerdict ({c['verdict']}): {c['sentence']}")
    print(f"Verdict from {c['verdict_rows']} model runs in {c['verdict_seconds']:.2f} s.")
    print(f"Removed tokens are replaced by id {c['mask_id']} ({c['replacement']}); random: {len(c['seeds'])} seeds.\n")
    if c["curves"] != "full":
        print("   k  removed           heatmap top")
        for k, value in enumerate(c["target"]):
            tok = repr(c["target_tokens"][k - 1])[:16] if k else ""
            print(f"{k:>4}  {tok:<16} {value:>+12.3f}")
        if c["random_k"]:
            print(f"random tokens at k = {c['random_k']}: {c['random_mean_k']:+.3f} ± {c['random_std_k']:.3f}"
                  "   (every curve at every k: --curves full)")
    else:
        _print_curves(c)
    _print_ablation(r["ablation"])


def _print_curves(c: dict[str, Any]) -> None:
    print(f"Area between the random and the heatmap curve: {c['area']:+.3f} (mean over k of the gap, logits)")
    print("   k  removed          heatmap top   random mean ± std   contrast top   insertion")
    for k in range(len(c["random_mean"])):
        tok = repr(c["target_tokens"][k - 1])[:16] if 0 < k <= len(c["target_tokens"]) else ""
        cols = [c["target"][k] if k < len(c["target"]) else None, c["contrast"][k] if k < len(c["contrast"]) else None,
                c["insertion"][k] if k < len(c["insertion"]) else None]
        print(f"{k:>4}  {tok:<16} {_num(cols[0]):>12}   {c['random_mean'][k]:+8.3f} ± {c['random_std'][k]:5.3f}"
              f"   {_num(cols[1]):>12}   {_num(cols[2]):>9}")


def _print_ablation(a: Optional[dict[str, Any]]) -> None:
    if not a:
        return
    r_txt = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
    print(f"\nNode ablation (top {len(a['nodes'])} nodes by |R|): correlation predicted vs measured — "
          f"zero {r_txt(a['r_zero'])}, mean {r_txt(a['r_mean'])}"
          + (f"; block output zero {r_txt(a['r_block_zero'])}, mean {r_txt(a['r_block_mean'])}" if a["split"] else ""))
    print("  node            token           R      pred 0   meas 0   pred μ   meas μ")
    for n in a["nodes"]:
        print(f"  {n['stage_name']:<8} T{n['token']:<5} {repr(n['token_text'])[:14]:<14} {n['relevance']:+8.3f} "
              f"{_num(n['predicted_zero'])} {_num(n['measured_zero'])} {_num(n['predicted_mean'])} "
              f"{_num(n['measured_mean'])}")
    for note in a["notes"]:
        print("note:", note)


def register(sub, commands, model_args, objective_args, load, token) -> None:
    p = sub.add_parser("check", help="does the explanation hold? deletion curves, verdict and node ablation")
    model_args(p)
    p.add_argument("--case", help="a shipped zoo failure, '<zoo model>/<case id>' (e.g. l/eval-math-00014)")
    p.add_argument("--prompt", help="instead of --case: a prompt (with --target / --contrast)")
    p.add_argument("--target")
    p.add_argument("--contrast")
    p.add_argument("--K", dest="kmax", type=int, default=10, help="remove up to K tokens (default 10)")
    p.add_argument("--seeds", type=int, default=5, help="random orders for the baseline (default 5)")
    p.add_argument("--replacement", default="neutral",
                   help="token that replaces removed ones: neutral (unk, else pad, else a space), pad, unk, or #id")
    p.add_argument("--nodes", type=int, default=20, help="graph nodes to ablate, largest |R| first (0: none)")
    p.add_argument("--split", action="store_true", help="ablate with attention / MLP rows (block outputs too)")
    p.add_argument("--curves", choices=["verdict", "full"], default="verdict",
                   help="verdict (default): only the rows the verdict needs; full: every curve at every k")
    p.add_argument("--json", action="store_true")

    def run(a) -> int:
        req = _request(a, token)
        report = run_check(load(a), req, a.kmax, a.seeds, a.replacement, a.nodes, a.split, a.curves)
        if a.json:
            print(dumps(report, ensure_ascii=False))  # never NaN: JSON readers refuse it
        else:
            print_report(report)
        return 0

    commands["check"] = run
