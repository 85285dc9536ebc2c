"""One glossary: a plain name and a one-line definition for every code, metric and column a user can see.

Pages, charts, exports and the sweep report take their words from here (`name`, `label`, `define`, `title`),
so a code such as "NC-IA+M-AG" or a column such as "n90_share" is explained the same way everywhere.
tests/test_present_glossary.py enumerates the codes and columns from their sources of truth (the category enums,
the graph metrics, the drill-down tables, the sweep store, the comparison tables) and fails on any without an entry.
"""
from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Iterable, Optional


@dataclass(frozen=True)
class Term:
    code: str  # what the engine calls it (shown next to the plain name)
    name: str  # plain name, for titles and dropdowns
    definition: str  # one line, for tooltips and legends


def _terms(*rows: tuple[str, str, str]) -> dict[str, Term]:
    codes = [row[0] for row in rows]
    twice = sorted({c for c in codes if codes.count(c) > 1})
    if twice:  # a second entry would silently replace the first
        raise ValueError(f"glossary codes defined twice: {', '.join(twice)}")
    return {code: Term(code, name, definition) for code, name, definition in rows}


TERMS: dict[str, Term] = _terms(
    # ---- the objective
    ("target", "wrong answer (target)", "The token the model predicts but should not: red supports it."),
    ("contrast", "right answer (contrast)", "The token the model should predict: blue supports it."),
    ("logit", "logit", "The model's raw score for a next token; a higher logit means a higher probability."),
    ("Δℓ", "logit gap (Δℓ)",
     "ℓ(target) − ℓ(contrast): how many logits the wrong answer leads by; above 0 the model makes the mistake."),
    ("logit_diff", "logit gap (Δℓ)",
     "ℓ(target) − ℓ(contrast): how many logits the wrong answer leads by; above 0 the model makes the mistake."),
    ("objective", "explained score", "The number the heatmap explains: Δℓ, or the target's logit alone."),
    ("relevance", "relevance (R)",
     "How much a token pushes toward the wrong answer (> 0, red) or the right one (< 0, blue)."),
    ("R", "relevance (R)", "How much a token pushes toward the wrong answer (> 0, red) or the right one (< 0, blue)."),
    ("conservation", "how much the heatmap accounts for",
     "Sum of token relevance ÷ Δℓ: near 1 the colours account for the whole gap; far from 1 biases absorbed part."),
    ("prob", "probability", "The model's probability for the next token (softmax of the logits)."),
    ("token", "token", "A piece of text the model reads or writes: a word, part of a word, or a sign."),
    ("id", "token id", "The token's number in the model's vocabulary."),
    ("rank", "rank", "Position among the model's next-token candidates (1 = its first choice)."),
    ("role", "role", "Whether the candidate is the current target (wrong answer) or contrast (right answer)."),
    ("ref_rank", "rank of the right answer", "Where the right answer stands among the model's candidates (1 = first)."),
    # ---- failure outcome (does an explanation account for the failure?)
    ("M-IA", "explained by the heatmap",
     "Input attribution explains the failure: the tokens' relevance points to the wrong answer."),
    ("NC-IA+M-AG", "needs the graph, which explains it",
     "The heatmap does not explain the failure; the attribution graph through the layers does."),
    ("NC-IA+AG", "not explained yet",
     "Neither the heatmap nor (so far) the attribution graph explains why the model picks the wrong answer."),
    # ---- failure pattern
    ("URT", "relevant tokens underweighted",
     "Tokens that should lead to the right answer (usually the instruction) get too little weight."),
    ("OIT", "irrelevant tokens overweighted", "Tokens that should not matter pull the model toward the wrong answer."),
    ("URT+OIT", "both: relevant underweighted, irrelevant overweighted",
     "The instruction loses weight while words naming the wrong answer gain it."),
    ("none", "no category", "No rule fired, or nobody has labelled the case."),
    ("unlabelled", "not labelled by a person", "Only the engine's suggestion exists for this case."),
    ("outcome", "outcome",
     "Whether the heatmap, the graph or neither explains the failure (M-IA, NC-IA+M-AG, NC-IA+AG)."),
    ("pattern", "pattern", "What goes wrong in the input: URT, OIT or both."),
    ("suggested_outcome", "suggested outcome", "The outcome the engine's rules suggest (a person may change it)."),
    ("suggested_pattern", "suggested pattern", "The pattern the engine's rules suggest (a person may change it)."),
    ("human_outcome", "outcome set by a person", "The outcome a person confirmed or chose (latest label)."),
    ("human_pattern", "pattern set by a person", "The pattern a person confirmed or chose (latest label)."),
    ("human_author", "labelled by (name)", "The name the person gave when saving the label (optional)."),
    ("human_note", "labeller's note", "The note the person saved with the label (optional)."),
    ("labelled", "decided by", "What the category shown comes from: a person's label, else the causal check, else "
     "a guess from the heatmap alone."),
    # ---- segments of a prompt
    ("instruction", "instruction", "The words that tell the model what to do."),
    ("query", "query", "The material the instruction applies to (everything not marked otherwise)."),
    ("answer", "answer so far", "The correct part of the answer the model already wrote before the mistake."),
    ("special", "special tokens", "Start marker and template tokens such as <q> and <a>."),
    ("total", "all ordinary tokens", "Sum over every token except the special ones."),
    ("segment", "segment", "Part of the prompt: instruction, query, answer so far or special tokens."),
    # ---- the graph's rows
    ("emb", "embedding", "The tokens as the model first reads them, before any layer."),
    ("embedding", "embedding", "The tokens as the model first reads them, before any layer."),
    ("layer", "layer", "One transformer block: attention, then an MLP; rows are counted from 0."),
    ("attention", "attention", "The part of a layer that moves information between token positions."),
    ("MLP", "MLP", "The part of a layer that transforms each position on its own (the feed-forward network)."),
    (".mid", "after attention", "The residual stream inside a layer, after attention and before its MLP."),
    ("post", "after the layer", "The residual stream after a whole layer (attention and MLP)."),
    ("stage", "row", "A row of the graph: the embedding, a layer's output, or the point after a layer's attention."),
    ("stage_index", "row number", "Index of the row in the graph (0 = embedding)."),
    ("kind", "row kind", "emb: embedding; mid: after attention; post: after the whole layer."),
    ("mid", "after attention", "The residual stream inside a layer, after attention and before its MLP."),
    ("node", "node", "One token at one row of the graph; its size is its relevance."),
    ("edge", "edge", "Relevance that flows from a token at a lower row to a token at a higher row."),
    # ---- graph metrics (engine.graph.metrics)
    ("nodes", "nodes shown", "Tokens of this row that survive pruning."),
    ("edges", "edges shown", "Kept edges leaving this row."),
    ("edges_per_node", "edges per node", "Kept edges leaving the row ÷ its nodes."),
    ("fan_in", "mean incoming edges", "Average number of kept edges arriving at a node of this row."),
    ("fan_out", "mean outgoing edges", "Average number of kept edges leaving a node of this row."),
    ("sparsity", "share of tokens hidden", "1 − nodes ÷ tokens: how much of the prompt pruning removed from this row."),
    ("rel_mean", "mean |relevance|", "Average size of the relevance of the nodes shown."),
    ("rel_gini", "relevance concentration",
     "Gini of |R| over the nodes: 0 = spread evenly, 1 = one node holds it all."),
    ("w_in_mean", "mean incoming edge weight", "Average |w| of the kept edges arriving at this row."),
    ("w_in_gini", "incoming weight concentration", "Gini of |w| over the kept incoming edges (0 even, 1 one edge)."),
    ("gini_in_by_node", "incoming concentration per node",
     "Per node, how unevenly its incoming edges share the weight (mean Gini; 1 = one edge)."),
    ("gini_out_by_node", "outgoing concentration per node",
     "Per node, how unevenly its outgoing edges share the weight (mean Gini; 1 = one edge)."),
    ("verticality", "stays on its token", "Share of incoming weight that comes from the same token one row below."),
    ("n90", "nodes for 90 %", "Fewest nodes whose |R| adds up to 90 % of the row's relevance."),
    ("n90_pos", "red nodes for 90 %", "Fewest wrong-answer (red) nodes holding 90 % of their relevance."),
    ("n90_neg", "blue nodes for 90 %", "Fewest right-answer (blue) nodes holding 90 % of their relevance."),
    ("n90_share", "share of nodes for 90 %", "Nodes for 90 % ÷ nodes shown: small means a few nodes carry the row."),
    ("hubs_in", "incoming hubs", "Nodes with clearly more incoming edges than the row's average (mean + 1 std)."),
    ("hubs_out", "outgoing hubs", "Nodes with clearly more outgoing edges than the row's average (mean + 1 std)."),
    ("centre_of_mass", "where relevance sits", "Relevance-weighted mean token position (0 = first token)."),
    ("lookback_mean", "mean look-back", "Average distance in tokens an incoming edge reaches back."),
    ("local_share", "same-token edges", "Share of incoming edges (by count) that start at the same token."),
    ("input_entropy", "spread over the input", "0: one token holds all input relevance; 1: evenly spread."),
    ("early_late", "early / late relevance", "Relevance in the first half of the prompt ÷ the second half."),
    # ---- node drill-down (engine.graph.drilldown)
    ("dim", "hidden dimension", "One coordinate of the residual stream vector."),
    ("neuron", "MLP neuron", "One unit inside the layer's MLP."),
    ("source", "from row", "The row the edge starts at."),
    ("source_token", "from token #", "Position of the token the edge starts at."),
    ("source_text", "from token", "The text of the token the edge starts at."),
    ("weight", "edge weight (w)", "Signed relevance that flows along the edge (> 0 toward the wrong answer)."),
    ("value", "through values", "Part of the edge weight that flows through the attention values."),
    ("key", "through keys", "Part of the edge weight that flows through the attention keys (where to look)."),
    ("diagonal", "same position", "Part of the edge weight that stays on the position (query, residual and MLP)."),
    ("head_*", "attention head", "Part of the edge weight carried by that attention head."),
    # ---- sweep results (engine.runs.store, engine.runs.report)
    ("run_id", "run", "Identifier of the sweep run."),
    ("model_label", "model", "The model's name in the sweep."),
    ("case_id", "case", "Identifier of the benchmark case."),
    ("status", "status", "ok: a failure explained; no_failure: the model was right; filtered; error."),
    ("ok", "failure found", "The model got the case wrong and the failure was explained."),
    ("no_failure", "no failure", "The model answered the case correctly."),
    ("filtered", "filtered out", "A sweep filter (e.g. the right answer's rank) dropped the case."),
    ("error", "error", "The case could not be processed; the message says why."),
    ("target_id", "wrong answer's token id", "Vocabulary id of the target token."),
    ("contrast_id", "right answer's token id", "Vocabulary id of the contrast token."),
    ("position", "position", "Token position where the model went wrong."),
    ("prefix", "answer before the failure", "The correct part of the answer written before the wrong token."),
    ("arrays", "stored arrays", "Where the case's heatmap and graph arrays are stored."),
    ("created", "created", "When the row was stored."),
    ("benchmark", "benchmark", "The set of cases the failure comes from."),
    ("seg_total", "relevance, all ordinary tokens", "Sum of relevance over non-special tokens ÷ max |R|."),
    ("seg_instruction", "relevance of the instruction", "Sum of relevance over instruction tokens ÷ max |R|."),
    ("seg_query", "relevance of the query", "Sum of relevance over query tokens ÷ max |R|."),
    ("seg_answer", "relevance of the answer so far", "Sum of relevance over answer tokens ÷ max |R|."),
    ("seg_special", "relevance of special tokens", "Sum of relevance over special tokens ÷ max |R|."),
    ("seg_instruction_target", "instruction naming the wrong answer",
     "Relevance of instruction phrases that contain the wrong answer ÷ max |R|."),
    ("seg_instruction_other", "rest of the instruction",
     "Relevance of the other instruction phrases ÷ max |R|."),
    ("faith_k_relevance", "tokens to flip (by relevance)",
     "Removing this many top-relevance tokens flips the answer (fewer = a more faithful heatmap)."),
    ("faith_k_random_mean", "tokens to flip (random)", "Mean number of random tokens whose removal flips the answer."),
    ("faith. flip rate", "flip rate", "Share of failures where removing top-relevance tokens flips the answer."),
    # ---- causal checks (engine.cases.checks, engine.cases.ablation)
    ("check_verdict", "does the heatmap hold?",
     "What removing the red tokens did: explains, partly, fragile, not explained."),
    ("verdict", "verdict", "The outcome of a check or a comparison in words; across models it is decided by the "
                           "model's own next token, not by a Δℓ threshold."),
    ("explains", "explains",
     "Removing the top red tokens flips the answer while removing as many random tokens does not."),
    ("fragile", "fragile", "Removing the top red tokens flips the answer, but so does removing random ones."),
    ("partly", "partly explains", "No flip, but removing the top red tokens cuts Δℓ clearly more than random removal."),
    ("not_explained", "not explained", "Removing the top red tokens does no more than removing random ones."),
    ("check_area", "gain over random removal",
     "Mean of (random − target curve) in logits: > 0 when the red tokens matter more."),
    ("mean area", "gain over random removal", "Mean of (random − target curve) in logits over the checked cases."),
    ("check_flip_k", "tokens to flip", "How many top red tokens must go before the model gives the right answer."),
    ("check_random_k", "k compared with random", "Where the verdict compares with random removal: the flip, else K."),
    ("check_random_mean", "random removal there", "Mean Δℓ after removing that many random tokens."),
    ("check_random_std", "spread of random removal", "Standard deviation of that Δℓ over the seeds."),
    ("check_full", "full curves stored", "Whether every curve at every k was computed, or only the verdict's rows."),
    ("check_r_zero", "graph agrees with removal",
     "Correlation of the graph's predicted and the measured change when its "
     "top nodes are zeroed."),
    ("median r (nodes)", "graph agrees with removal",
     "Median correlation of predicted and measured node-removal change."),
    ("check_r_mean", "graph agrees (mean removal)",
     "The same correlation when nodes are replaced by their mean instead."),
    ("checked", "cases checked", "Failures whose heatmap was tested by removing tokens."),
    ("by input", "explained by the heatmap", "Share of checked failures the heatmap explains (M-IA)."),
    ("by graph", "explained by the graph",
     "Share the heatmap does not explain but the graph's top nodes do (NC-IA+M-AG)."),
    ("no clue", "not explained yet", "Share neither explains (NC-IA+AG)."),
    # ---- comparison tables (engine.compare.deltas)
    ("family", "task family", "Kind of benchmark task: instruction, math, code or retrieval."),
    ("model", "model", "The model the row belongs to."),
    ("delta", "logit gap (Δℓ)", "ℓ(target) − ℓ(contrast) in this model; above 0 it still makes the mistake."),
    ("delta_ref", "logit gap in the reference", "Δℓ in the reference model."),
    ("corrected", "corrected", "The other model gets right what the reference got wrong."),
    ("notes", "notes", "What could not be computed for the row and why."),
    ("checkpoint", "checkpoint", "A saved point of the model's training."),
    ("order", "training order", "Position of the checkpoint in training."),
    ("mean", "mean", "Average over the cases."),
    ("sem", "standard error", "Standard error of the mean."),
    ("n", "cases", "Number of cases in the average."),
    ("fraction", "share of cases", "Share of cases with Δℓ at most this value."),
    # ---- verdicts of a case in another model (engine.compare.verdicts) and the row-over-row heatmaps
    ("fixed", "fixed", "The model's next token is the right one, or a piece that starts the right answer."),
    ("still wrong", "still wrong", "The model's next token is the same wrong token (the target)."),
    ("different wrong answer", "different wrong answer", "The model's next token is neither the target nor right."),
    ("not scored", "not scored", "The case could not be scored in this model (the notes say why)."),
    ("top1", "model's next token", "The token the model ranks first at the end of the prompt."),
    ("p_top1", "probability of its next token", "The model's probability for its own first choice."),
    ("p_target", "probability of the wrong answer", "The model's probability for the target token."),
    ("p_contrast", "probability of the right answer", "The model's probability for the contrast token."),
    ("count", "cases", "Number of cases with this verdict."),
    ("cases", "cases judged", "Number of cases judged for the model."),
    ("row", "row", "One row of the aligned heatmaps: a model, a checkpoint, or the difference of two rows."),
    ("column", "column", "Position of the column in the aligned heatmaps."),
    ("group", "column", "Position of the column in the aligned heatmaps."),
    ("start", "first character", "Where the column's text starts in the prompt."),
    ("end", "end character", "Where the column's text ends in the prompt (the same as start for <bos>)."),
    ("text", "text", "The prompt text the column covers."),
    ("tokens", "tokens", "The row's tokens in this column, joined by |."),
    ("colour_value", "colour value", "Relevance on the colour scale shown, from -1 (blue) to +1 (red)."),
    # ---- causal-check tables and curves (engine.cases.checks, engine.cases.ablation)
    ("category", "category", "The person's label where there is one, else the suggested outcome."),
    ("k", "tokens removed", "How many tokens are replaced by the replacement token."),
    ("removed token", "token removed", "The heatmap's k-th most target-supporting token."),
    ("red removed", "Δℓ, red tokens removed", "Δℓ after removing the heatmap's k most target-supporting tokens."),
    ("random mean", "Δℓ, random tokens removed", "Mean Δℓ after removing k random tokens (over the seeds)."),
    ("random std", "spread of the random removals", "Standard deviation of that Δℓ over the seeds."),
    ("blue removed", "Δℓ, blue tokens removed", "Δℓ after removing the k most contrast-supporting tokens."),
    ("only red kept", "Δℓ, only red tokens kept", "Δℓ when every ordinary token is replaced except the k red ones."),
    ("predicted (zero)", "predicted change (zero)",
     "Change of Δℓ the relevance predicts when the node is set to zero: −R."),
    ("measured (zero)", "measured change (zero)", "Change of Δℓ when the model runs with the node set to zero."),
    ("predicted (mean)", "predicted change (mean)",
     "Change of Δℓ the relevance predicts when the node is set to its mean: (mean − state)·gradient."),
    ("measured (mean)", "measured change (mean)", "Change of Δℓ when the model runs with the node set to its mean."),
    ("block", "block", "The attention or MLP block whose output at the token is removed (split graphs)."),
    ("block predicted (zero)", "block: predicted change (zero)", "Predicted change when the block's output is zero."),
    ("block measured (zero)", "block: measured change (zero)", "Measured change when the block's output is zero."),
    ("block predicted (mean)", "block: predicted change (mean)",
     "Predicted change when the block's output is its mean."),
    ("block measured (mean)", "block: measured change (mean)", "Measured change when the block's output is its mean."),
)

_HEAD = re.compile(r"head_\d+$")


def term(code: str) -> Optional[Term]:
    """The entry of a code or column (head_3 -> head_*; "L3.mid" -> ".mid"), or None."""
    if code in TERMS:
        return TERMS[code]
    if _HEAD.match(code):
        return TERMS["head_*"]
    if code.endswith(".mid"):
        return TERMS[".mid"]
    return None


def name(code: str) -> str:
    """The plain name; the code itself when the glossary has no entry."""
    t = term(code)
    return t.name if t else code


def define(code: str) -> str:
    t = term(code)
    return t.definition if t else ""


def label(code: Optional[str]) -> str:
    """Plain name with the code, for dropdowns: "relevant tokens underweighted (URT)"; the name alone when they
    match."""
    if code is None:
        return name("none")
    t = term(code)
    if t is None or t.name == code:
        return code
    if _HEAD.match(code):
        return f"attention head {code[5:]}"
    return f"{t.name} ({code})"


def title(column: str) -> str:
    """A plain column title ("relevance concentration"); head_3 -> "head 3"."""
    if _HEAD.match(column):
        return f"head {column[5:]}"
    return name(column)


def stage_label(stage_name: str) -> str:
    """A graph row in words: "emb" -> "embedding", "L3" -> "after layer 3", "L3.mid" -> "layer 3 after attention"."""
    if stage_name == "emb":
        return "embedding"
    m = re.fullmatch(r"L(\d+)(\.mid)?", stage_name)
    if not m:
        return stage_name
    return f"layer {m.group(1)} after attention" if m.group(2) else f"after layer {m.group(1)}"


def legend_html(codes: Iterable[str]) -> str:
    """A <dl> of the given codes with their plain names and definitions (all text escaped)."""
    rows = []
    for code in dict.fromkeys(codes):
        t = term(code)
        if t is not None:
            rows.append(f"<dt><b>{html.escape(code)}</b> · {html.escape(t.name)}</dt>"
                        f"<dd style=\"margin:0 0 .4em 1.2em\">{html.escape(t.definition)}</dd>")
    return f'<dl class="fl-glossary">{"".join(rows)}</dl>'
