"""engine.hooks.scoped_hooks: every handle added in the block is gone after it, also when the block raises."""
import pytest
import torch

from engine.hooks import scoped_hooks


def test_hooks_live_only_inside_the_block_even_on_error():
    layer = torch.nn.Linear(2, 2)
    seen = []
    with scoped_hooks() as hooks:
        hooks.add(layer.register_forward_hook(lambda m, a, out: seen.append("post")))
        hooks.add(layer.register_forward_pre_hook(lambda m, a: seen.append("pre")))
        layer(torch.zeros(1, 2))
    layer(torch.zeros(1, 2))
    assert seen == ["pre", "post"]
    with pytest.raises(RuntimeError, match="boom"):
        with scoped_hooks() as hooks:
            hooks.add(layer.register_forward_hook(lambda m, a, out: seen.append("again")))
            raise RuntimeError("boom")
    layer(torch.zeros(1, 2))
    assert seen == ["pre", "post"] and not layer._forward_hooks and not layer._forward_pre_hooks
