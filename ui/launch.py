"""`python -m ui.launch [streamlit options]`: `streamlit run app.py` with the heavy imports warmed in the background.

Streamlit runs app.py only when the first browser session connects, so that session used to pay for importing
torch and transformers (about 5 s on a 2-core machine) before it could draw anything. Here a daemon thread
imports torch and transformers (and the Qwen3 model code the zoo uses) while the server starts and the browser
loads the page; the session's own imports then find them ready, or wait on Python's per-module import locks for
the rest, never importing anything twice. Only these third-party libraries are warmed, not `engine` or `ui`:
they never import the app's modules, so the two threads cannot wait on each other's import locks.
"""
from __future__ import annotations

import sys
import threading
from pathlib import Path

APP = Path(__file__).resolve().parents[1] / "app.py"


def _import_libraries() -> None:
    import torch  # noqa: F401
    import transformers.masking_utils  # noqa: F401  pulls in most of transformers (and torch._dynamo)
    import transformers.modeling_utils  # noqa: F401
    import transformers.models.qwen3.modeling_qwen3  # noqa: F401  the zoo's model code (lazy in transformers)


def warm_imports() -> threading.Thread:
    """Start importing torch and transformers in a daemon thread; returns the thread."""
    thread = threading.Thread(target=_import_libraries, name="failure-lens-warm-imports", daemon=True)
    thread.start()
    return thread


def main(argv: list[str]) -> int:
    warm_imports()
    from streamlit.web import cli

    sys.argv = ["streamlit", "run", str(APP), *argv]
    return cli.main()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
