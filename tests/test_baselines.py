"""Untrained baselines built by name: their activations keep a trained net's scale, so their int8 files
quantise (issue 20: MobileNetV2's int8 TFLite file failed with an int32 bias overflow)."""

from __future__ import annotations

import torch

from ssc_deploy.runtime_bench.baselines import untrained_baseline
from ssc_deploy.runtime_bench.model_under_test import Model


def test_an_untrained_mobilenetv2_keeps_its_activation_scale():
    like = Model(name="c", family="c", role="candidate", trained=False, input_shape=[3, 32, 32])
    base = untrained_baseline("mobilenetv2", like)
    net = base.module
    assert not net.training
    seen: dict[str, float] = {}
    classifier = [n for n, m in net.named_modules() if isinstance(m, torch.nn.Linear)][-1]
    net.get_submodule(classifier).register_forward_hook(lambda m, i, o: seen.update(inp=float(i[0].abs().max())))
    x = torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = net(x)
    assert seen["inp"] > 0.1  # random init with default BatchNorm statistics: about 1e-7
    assert out.std(0).mean() > 1e-3  # the logits depend on the image
    with torch.no_grad():
        assert torch.equal(net(x), out)  # eval mode: the statistics stay fixed
        again = untrained_baseline("mobilenetv2", like).module
        assert torch.equal(again(x), out)  # the same weights every run
