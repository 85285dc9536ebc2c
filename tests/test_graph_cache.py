import threading

import numpy as np
from graph_fixtures import edge_set, make_graph, small_graph

from engine.graph.cache import GraphCache, graph_key, nbytes
from engine.graph.types import Stage


def key(fp="model-a|fp16", ids=(1, 2, 3), objective="logit_diff:5:7", rule="attn_lrp", stages=(0, 1, 2), split=False):
    return graph_key(fp, list(ids), objective, rule, stages, split)


def sized(n_tokens):
    """A graph of 12 * n_tokens bytes: 2 x n_tokens float32 relevance plus an empty transition's absorbed."""
    return make_graph([[0.0] * n_tokens] * 2, [edge_set(0, 1, [], n_tokens)])


def test_nbytes_by_hand():
    # relevance 3x4 float32 = 48; t0: 7 edges * (4 src + 4 dst + 4 w) + 16 absorbed = 100;
    # t1: 5 * 12 + 16 = 76; t2: 2 * 12 + 16 = 40
    assert nbytes(small_graph()) == 48 + 100 + 76 + 40
    g = make_graph([[0.0] * 4] * 2, [edge_set(0, 1, [(0, 0, 1.0)], 4, heads=[[1, 0, 0]], paths=[[1, 0, 0]])])
    assert nbytes(g) == 32 + (12 + 16 + 12 + 12)
    assert nbytes(sized(10)) == 80 + 40


def test_key_is_stable_and_names_every_input():
    assert key() == key(ids=np.array([1, 2, 3])) and len(key()) == 64
    others = [key(fp="model-b|fp16"), key(ids=(1, 2, 4)), key(ids=(1, 2)), key(objective="max_logit:5"),
              key(rule="cp_lrp"), key(stages=(0, 2)), key(split=True)]
    assert len(set(others) | {key()}) == len(others) + 1
    assert key(stages=(Stage("emb", -1, "emb"),)) != key(stages=(Stage("L0", 0, "post"),))


def test_hit_returns_the_same_object_and_other_prompts_or_models_miss():
    cache, g = GraphCache(10_000), small_graph()
    assert cache.put(key(), g)
    assert cache.get(key()) is g
    assert cache.get(key(ids=(1, 2, 4))) is None
    assert cache.get(key(fp="model-b|fp16")) is None


def test_eviction_by_bytes_is_lru():
    cache = GraphCache(3 * 120)
    a, b, c, d = (sized(10) for _ in range(4))  # 120 bytes each
    cache.put("a", a), cache.put("b", b), cache.put("c", c)
    assert len(cache) == 3 and cache.total_bytes == 360
    assert cache.get("a") is a  # a is now the most recent; b the least
    cache.put("d", d)
    assert "b" not in cache and all(k in cache for k in "acd") and cache.total_bytes == 360
    assert cache.put("big", sized(100)) is False and "big" not in cache and len(cache) == 3  # never fits
    cache.put("a", sized(20))  # replacing a key re-counts its bytes: 240 + 120 + 120 > 360 evicts c
    assert "c" not in cache and "d" in cache and cache.total_bytes == 360


def test_thread_safe_accounting():
    cache = GraphCache(5 * 120)
    graphs = [sized(10) for _ in range(20)]

    def work(offset):
        for i in range(200):
            k = str((i + offset) % 20)
            cache.put(k, graphs[int(k)])
            cache.get(str((i * 7) % 20))

    threads = [threading.Thread(target=work, args=(o,)) for o in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(cache) == 5 and cache.total_bytes == 600
