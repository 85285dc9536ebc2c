"""Run `python -m engine sweep ...` with every case slowed by a fixed pause (child process of the kill tests).

A sweep of a tiny model finishes 14 cases in under a second, faster than a test can observe the store and send
SIGKILL at a chosen row. This launcher wraps `engine.runs.sweep.analyse_case` with a sleep before each case, in this
process only, so that the external kill lands while the wanted row count is on disk. Results are unchanged: the
pause happens before the case is computed.
"""
from __future__ import annotations

import sys
import time

import engine.runs.sweep as sweep
from engine.__main__ import main

PAUSE_S = 0.25


def _paced(original):
    def analyse_case(*args, **kwargs):
        time.sleep(PAUSE_S)
        return original(*args, **kwargs)
    return analyse_case


if __name__ == "__main__":
    sweep.analyse_case = _paced(sweep.analyse_case)
    sys.exit(main(sys.argv[1:]))
