"""The whole study's time left, from the row counts of its three phases and the rate measured so far.

Each phase's own sweep knows its time left (engine.runs.sweep.Clock: busy seconds per computed row). The phases
after it are estimated from their planned rows and the cost of one of their rows relative to a row of the phase
being measured, in forward-pass units (`row_units`): the screen runs one forward pass per row, a heatmap adds the
LRP backward pass (about two), a pruned graph a few more, causal checks a quarter of one per masked variant (they
run batched). So the screen's seconds per row, divided by its units, price the reference and models phases before
they start; each phase's own measured rate takes over once it has computed a row. A rough estimate by design
(longer prompts and larger models cost more per unit; model loading is not counted): refined at each phase.
On the zoo study's own numbers (bench/RESULTS.md) it prices the reference phase at 6.4 min from the screen (it took
6.0) and the models phase at 7.3 min from the reference (it took 5.9).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

from engine.runs.config import ComputeSpec

HEATMAP_UNITS = 2.0  # the LRP backward pass, about two forward passes
GRAPH_UNITS = 4.0  # relevance through the recommended layers and pruning, a few backward passes
# a masked variant of a causal check: they run in batches, so about a quarter of a forward pass each (the zoo study
# of bench/RESULTS.md: a screen row 0.084 s, a reference row with 80 variants 2.1 s, on the same machine)
VARIANT_UNITS = 0.25


def row_units(c: ComputeSpec) -> float:
    """The cost of one row in forward-pass units (see the module docstring)."""
    units = 1.0  # the forward pass that finds the first wrong token
    if c.heatmap:
        units += HEATMAP_UNITS
    if c.graph.enabled:
        units += GRAPH_UNITS
    if c.checks.enabled:  # deletion curves: k steps in the relevance order and in each random order; node ablation
        units += VARIANT_UNITS * (c.checks.k * (1 + len(c.checks.seeds)) + c.checks.nodes)
    return units


@dataclass(frozen=True)
class PhasePlan:
    rows: int  # (model, case) rows of the phase; an upper bound until the phase before it is done
    units: float  # row_units of the phase's compute


def study_eta(plans: Sequence[PhasePlan], index: int, done: int, unit_s: Optional[float]) -> Optional[float]:
    """Seconds left in the whole study while phase `index` (0-based) has `done` of its rows: the rows still to do in
    it and in every later phase, each times its units, times `unit_s`, the seconds per unit measured last (a row's
    seconds / its phase's units). In the phase that measured it this is the sweep's own time left. None until a
    row has been measured."""
    if unit_s is None:
        return None
    todo = [max(plans[index].rows - done, 0), *(p.rows for p in plans[index + 1:])]
    return unit_s * sum(n * p.units for n, p in zip(todo, plans[index:]))


def unit_rate(done: int, total: int, left_s: Optional[float], units: float) -> Optional[float]:
    """Seconds per unit behind a sweep's time left (its Clock: left = seconds per row x rows still to do) in a phase
    of `units` per row; None when it says nothing (no row measured, or none left)."""
    return left_s / (total - done) / units if left_s is not None and total > done else None
