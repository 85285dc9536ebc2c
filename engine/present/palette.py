"""One colour per model, the same on every chart, page and export; never the target red or the contrast blue.

- The zoo's size series (xs → l) gets ordered shades of green, light to dark, by its place among the zoo sizes.
- Each zoo checkpoint series (m-step00050 → m-step06000) gets ordered shades of orange-brown, light (early) to
  dark (late), by its place in that size's series; `ordered(labels)` gives any other series (hub revisions,
  local folders in training order) the same shades by position.
- Any other model gets a colour from a categorical set taken from the Okabe-Ito and Paul Tol colour-blind-safe
  palettes, less their blues and reds. The choice hashes the name (CRC-32), so it does not depend on the page;
  two names on one chart that hash alike move to the next free colour, in sorted name order.
Names are model labels as the pages show them ("zoo:xs", "m-step00050", "org/name@rev"); "zoo:" is optional.
"""
from __future__ import annotations

import zlib
from typing import Sequence

SIZE_SHADES = ("#a6dba0", "#5aae61", "#1b7837", "#00441b")  # greens (ColorBrewer PRGn), light -> dark
CHECKPOINT_SHADES = ("#fdb863", "#e08214", "#b35806", "#7f3b08")  # orange-browns (ColorBrewer PuOr), early -> late
CATEGORICAL = ("#CC79A7", "#555555", "#999933", "#AA4499", "#44AA99", "#DDCC77", "#000000", "#A6761D")
FAMILY = ("#555555", "#CC79A7", "#999933", "#44AA99", "#A6761D", "#000000")  # benchmark families (case lines)
TARGET_RED, CONTRAST_BLUE = "#d62728", "#1f77b4"  # engine.present.render RED / BLUE: never a model colour


def _hex(rgb: Sequence[float]) -> str:
    return "#" + "".join(f"{round(c):02x}" for c in rgb)


def _rgb(hex_: str) -> tuple[int, int, int]:
    return tuple(int(hex_[i:i + 2], 16) for i in (1, 3, 5))


def shades(ramp: Sequence[str], n: int) -> list[str]:
    """n colours evenly along the piecewise-linear ramp (n = 1: its middle)."""
    if n <= 0:
        return []
    if n == 1:
        return [shades(ramp, 3)[1]]
    out = []
    for k in range(n):
        x = k / (n - 1) * (len(ramp) - 1)
        i = min(int(x), len(ramp) - 2)
        a, b, t = _rgb(ramp[i]), _rgb(ramp[i + 1]), x - i
        out.append(_hex([ca + (cb - ca) * t for ca, cb in zip(a, b)]))
    return out


def _zoo(name: str) -> str:
    return name[4:] if name.startswith("zoo:") else name


def _series_colour(name: str) -> str | None:
    """The shade of a zoo size or zoo checkpoint, None for anything else."""
    from engine import zoo

    z = _zoo(name)
    sizes = zoo.zoo_sizes()
    if z in sizes:
        return shades(SIZE_SHADES, len(sizes))[sizes.index(z)]
    for points in zoo.checkpoint_series().values():
        if z in points:
            return shades(CHECKPOINT_SHADES, len(points))[points.index(z)]
    return None


def colours(names: Sequence[str]) -> dict[str, str]:
    """name -> colour for the models on one chart (module docstring); order and repeats do not matter."""
    out: dict[str, str] = {}
    for n in dict.fromkeys(names):
        c = _series_colour(n)
        if c is not None:
            out[n] = c
    taken = set()
    for n in sorted(n for n in dict.fromkeys(names) if n not in out):
        i = zlib.crc32(n.encode("utf-8")) % len(CATEGORICAL)
        for step in range(len(CATEGORICAL)):  # next free colour; wraps round when there are more names than colours
            c = CATEGORICAL[(i + step) % len(CATEGORICAL)]
            if c not in taken or step == len(CATEGORICAL) - 1:
                break
        taken.add(c)
        out[n] = c
    return {n: out[n] for n in dict.fromkeys(names)}


def colour(name: str) -> str:
    return colours([name])[name]


def ordered(labels: Sequence[str]) -> dict[str, str]:
    """Shades for one series in the given (training) order; zoo checkpoints keep their own fixed shades."""
    fixed = colours(labels)
    ramp = shades(CHECKPOINT_SHADES, len(labels))
    return {lab: fixed[lab] if _series_colour(lab) else ramp[i] for i, lab in enumerate(labels)}


def scale(names: Sequence[str], series: bool = False):
    """An altair colour scale holding exactly these names' colours (series=True: `ordered`)."""
    import altair as alt

    names = list(dict.fromkeys(names))
    mapping = ordered(names) if series else colours(names)
    return alt.Scale(domain=names, range=[mapping[n] for n in names])


def family_scale(families: Sequence[str]):
    """An altair colour scale for benchmark families (case lines on Evolution): no red, no blue either."""
    import altair as alt

    names = sorted(dict.fromkeys(families))
    return alt.Scale(domain=names, range=[FAMILY[i % len(FAMILY)] for i in range(len(names))])
