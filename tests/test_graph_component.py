"""The live graph component's served folder, the graph data it draws, and the dashboard launcher's warm imports."""
from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from graph_fixtures import small_graph

from engine.graph.prune import prune
from engine.graph.types import PruneSettings
from engine.present import render
from ui.graph_component import build_folder

ROOT = Path(__file__).resolve().parents[1]


def test_folder_holds_the_page_and_the_library(tmp_path):
    folder = build_folder(tmp_path)
    page = (folder / "index.html").read_text(encoding="utf-8")
    assert render.TOOLTIP_CSS in page and "/*TOOLTIP_CSS*/" not in page
    assert '<script src="vis-network.min.js"></script>' in page and "streamlit:componentReady" in page
    assert (folder / "vis-network.min.js").read_bytes() == render.vis_js_path().read_bytes()
    assert build_folder(tmp_path) == folder  # content-addressed: the same folder again, not rewritten


def test_concurrent_builds_leave_one_complete_folder(tmp_path):
    with ThreadPoolExecutor(4) as pool:
        folders = set(pool.map(lambda _: build_folder(tmp_path), range(8)))
    assert len(folders) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [folders.pop().name]  # no half-written temp folders left


def test_graph_html_embeds_the_same_data_the_component_gets():
    graph = small_graph()
    pruned = prune(graph, PruneSettings(top_p=1.0))
    data = render.graph_data(graph, pruned)
    assert {n["id"] for n in data["nodes"] if not str(n["id"]).startswith("row:")} == {
        f"{s}:{t}" for s in pruned.stages for t in pruned.node_mask[s].nonzero()[0]}
    assert render.script_json(data) in render.graph_html(graph, pruned)


def test_launcher_warms_torch_and_transformers_in_a_thread():
    code = ("import sys\nfrom ui.launch import warm_imports\nt = warm_imports()\nt.join(120)\n"
            "assert not t.is_alive()\n"
            "assert {'torch', 'transformers.models.qwen3.modeling_qwen3'} <= set(sys.modules)\n"
            "assert not any(m == 'engine' or m.startswith(('engine.', 'ui.graph')) for m in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
