"""AppTests of ui.layout.table: missing values show as a dash with a line saying what it means (never "None" or
"NaN"), on screen and in presentation mode, where the cells are Markdown and text must stay text."""
from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from ui.safe import plain


def _page(present: bool) -> AppTest:
    def script(present):
        import math

        import pandas as pd

        from ui import layout, state

        state.put(state.PRESENT, present)
        layout.table(pd.DataFrame({"case_id": ["c1", "c2"], "top1": ["**x** [a](http://e.x)", None],
                                   "delta": [1.5, math.nan]}), "t", key="t")

    return AppTest.from_function(script, args=(present,), default_timeout=60).run()


@pytest.mark.parametrize("present", [False, True])
def test_missing_values_show_as_a_dash_with_a_legend(present):
    at = _page(present)
    assert not at.exception, [e.value for e in at.exception]
    assert any(c.value.startswith("— no value") for c in at.caption), [c.value for c in at.caption]
    if present:
        cells = at.table[0].value
        assert list(cells.iloc[1]) == ["c2", "—", "—"]
        assert cells.iloc[0, 1] == plain("**x** [a](http://e.x)") != "**x** [a](http://e.x)"  # shows the text
    else:
        assert at.dataframe[0].proto.placeholder == "—"
