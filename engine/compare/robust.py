"""Outliers of a comparison table, so one case cannot flatten a chart: Tukey's fences on the finite values.

A value is an outlier when it lies beyond Q1 − k·IQR or Q3 + k·IQR (k = 3: "far out"). Charts drawn with
y = "clip" show the fences' range (plus 0) and list the outliers beside; y = "symlog" keeps every point.
"""
from __future__ import annotations

import math
from typing import Iterable, Optional, Sequence

import numpy as np
import pandas as pd

Y_SCALES = {"linear": "linear", "symlog": "symmetric log (keeps every point)", "clip": "clip outliers (listed below)"}


def fences(values: Iterable[Optional[float]], k: float = 3.0) -> tuple[float, float]:
    """(lo, hi) = (Q1 − k·IQR, Q3 + k·IQR) of the finite values, widened to the non-outliers' own range;
    (nan, nan) without finite values."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=float)
    if not len(v):
        return math.nan, math.nan
    q1, q3 = np.percentile(v, [25, 75])
    lo, hi = q1 - k * (q3 - q1), q3 + k * (q3 - q1)
    inside = v[(v >= lo) & (v <= hi)]
    return float(inside.min()), float(inside.max())


def outliers(df: pd.DataFrame, column: str, bounds: tuple[float, float], keep: Sequence[str] = ()) -> pd.DataFrame:
    """Rows of `df` whose `column` lies outside `bounds` (missing values are not outliers), `keep` columns first."""
    lo, hi = bounds
    if math.isnan(lo):
        return df.iloc[:0]
    mask = (df[column] < lo) | (df[column] > hi)
    cols = list(keep) + [column] if keep else list(df.columns)
    return df.loc[mask, list(dict.fromkeys(cols))].reset_index(drop=True)
