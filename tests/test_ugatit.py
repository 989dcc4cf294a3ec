"""U-GAT-IT (variants/ugatit.py) on CPU: one step, determinism, its ablations, ρ's clipping,
checkpoints, and the image sizes it refuses."""

import copy
import math

import pytest
import torch

from bench.datasets import DataSpec
from bench.errors import UsageError
from bench.seeding import seed_everything
from variants.ugatit import UGATIT

CPU = torch.device("cpu")
SPEC = DataSpec((1, 28, 28), 10, (1, 28, 28))
TINY = {"ngf": 4, "ndf": 4, "n_blocks": 1}  # narrow networks: a step takes well under a second
NETWORKS = {"G_A2B", "G_B2A", "D_GA", "D_LA", "D_GB", "D_LB"}


def build(seed=0, **overrides):
    seed_everything(seed, CPU)
    return UGATIT(UGATIT.Config.model_validate({**TINY, **overrides}), SPEC, CPU)


def pairs(seed=0, n=4):
    g = torch.Generator().manual_seed(seed)

    def next_real():
        return (torch.rand((n, *SPEC.shape), generator=g) * 2 - 1,
                torch.rand((n, *SPEC.shape), generator=g) * 2 - 1)  # fmt: skip

    return next_real


def weights(variant):
    return {f"{net}.{k}": t.clone() for net, state in variant.networks().items()
            for k, t in state.items()}  # fmt: skip


def same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_one_step_trains_every_network_translates_both_ways_and_repeats_exactly():
    model = build()
    before = {net: [p.clone() for p in getattr(model, net).parameters()] for net in NETWORKS}
    losses = model.train_step(pairs())
    assert set(losses) == {"loss/generator", "loss/cycle", "loss/identity", "loss/cam",
                           "loss/critic_A", "loss/critic_B"}  # fmt: skip
    assert all(math.isfinite(v) for v in losses.values())
    for net in NETWORKS:  # every G and all four Ds took a step (their weights, not only buffers)
        moved = zip(before[net], getattr(model, net).parameters(), strict=True)
        assert any(not torch.equal(a, b) for a, b in moved), net

    # G's CAM loss, from G as it was: its classifier says 1 for the other domain's images (a
    # translation is needed) and 0 for its own (the identity pass).
    fresh, (real_a, real_b) = build(), pairs()()
    with torch.no_grad():
        bce = torch.nn.functional.binary_cross_entropy_with_logits
        logit = {(G, x): getattr(fresh, G)(real)[1] for G in ("G_A2B", "G_B2A")
                 for x, real in (("a", real_a), ("b", real_b))}  # fmt: skip
        cam = sum(bce(logit[G, x], torch.full_like(logit[G, x], float(target)))
                  for (G, x), target in zip(logit, (1, 0, 0, 1), strict=True))  # fmt: skip
    assert losses["loss/cam"] == pytest.approx(cam.item(), rel=1e-6)

    again = build()
    assert again.train_step(pairs()) == losses and same(weights(again), weights(model))

    x = pairs(seed=1)()[0]
    a2b, b2a = model.translate(x, "A2B"), model.translate(x, "B2A")
    for y in (a2b, b2a):
        assert y.shape == x.shape and y.min() >= -1 and y.max() <= 1
    assert not torch.equal(a2b, b2a)  # two generators
    # judge: the global D of the domain, one score per image on 28² with 3 stride-2 layers. In
    # eval mode, as the harness judges, so that spectral norm's power iteration stands still.
    model.D_GB.eval()
    assert torch.equal(model.judge(x, "B"), model.D_GB(x)[0])
    assert model.judge(x, "A").shape == (4, 1, 1, 1)
    # The authors' D loss has no ½: perfect scores cost 0, inverted ones 1 + 1.
    ones, zeros = torch.ones(3), torch.zeros(3)
    assert model.critic_loss(ones, zeros) == 0 and model.critic_loss(zeros, ones) == 2


@pytest.mark.parametrize(
    "overrides", [{"cam": False}, {"norm": "in"}, {"norm": "ln"}, {"light": True}]
)
def test_each_ablation_trains_a_step(overrides):
    model = build(**overrides)
    losses = model.train_step(pairs())
    assert all(math.isfinite(v) for v in losses.values())
    assert ("loss/cam" in losses) == overrides.get("cam", True)
    G = model.G_A2B
    if "cam" in overrides:  # no attention, and no CAM logits, in any network
        assert all(getattr(model, net).cam is None for net in NETWORKS)
        assert G(pairs()()[0])[1] is None and model.D_LB(pairs()()[0])[1] is None
    rho = [name for name, _ in G.named_parameters() if name.endswith("rho")]
    # AdaLIN's ρ only in the residual blocks with norm = "adalin"; LIN's in the upsampling.
    assert any(n.startswith("blocks.") for n in rho) == (
        overrides.get("norm", "adalin") == "adalin"
    )
    assert any(n.startswith("decoder.") for n in rho)
    width = TINY["ngf"] * 4  # after two downsamplings, a 7×7 map
    assert G.mlp[0].in_features == (width if "light" in overrides else width * 7 * 7)


def test_rho_is_clipped_to_the_unit_interval_after_each_step():
    model = build()
    rhos = {name: p for G in (model.G_A2B, model.G_B2A) for name, p in G.named_parameters()
            if name.endswith("rho")}  # fmt: skip
    adalin = [p for n, p in rhos.items() if n.startswith("blocks.")]
    lin = [p for n, p in rhos.items() if n.startswith("decoder.")]
    assert adalin and lin
    with torch.no_grad():
        for p in adalin:
            p.fill_(1.5)
        for p in lin:
            p.fill_(-0.5)
    model.train_step(pairs())
    # Adam moves each by about lr = 1e-4, far from the interval: only the clip brings them back.
    assert all(torch.equal(p, torch.ones_like(p)) for p in adalin)
    assert all(torch.equal(p, torch.zeros_like(p)) for p in lin)


def test_a_checkpoint_restores_networks_optimisers_and_schedules():
    original = build()
    original.set_budget(2)  # decay from step 1: the third step runs at half the rate
    next_real = pairs()
    for _ in range(2):
        original.train_step(next_real)
    state = copy.deepcopy(original.state_dict())
    assert set(state) == NETWORKS | {"opt_G", "opt_D", "sched_G", "sched_D"}

    def third_step(model):
        batch = next_real()
        for m in (original, model):
            torch.manual_seed(7)
            m.train_step(lambda: batch)  # noqa: B023

    restored = build(seed=1)
    restored.set_budget(2)
    restored.load_state_dict(state)
    for opt in ("opt_G", "opt_D"):  # both rates are halfway down, in both
        assert getattr(restored, opt).param_groups[0]["lr"] == 0.5e-4
        assert getattr(original, opt).param_groups[0]["lr"] == 0.5e-4
    third_step(restored)
    assert same(weights(restored), weights(original))

    # Without its schedules the same checkpoint steps at the full rate, and ends elsewhere.
    partial = build(seed=1)
    partial.set_budget(2)
    partial.load_state_dict({k: v for k, v in state.items() if not k.startswith("sched")})
    original.load_state_dict(state)
    third_step(partial)
    assert not same(weights(partial), weights(original))


def test_image_sizes_the_networks_cannot_take_are_refused():
    assert UGATIT.data_problem(SPEC) is None
    assert "divisible by 4" in UGATIT.data_problem(DataSpec((1, 30, 30), 10, (1, 30, 30)))
    # 16 // 2**3 = 2 pixels left after the global D's three stride-2 layers: too few.
    assert "discriminators" in UGATIT.data_problem(DataSpec((1, 16, 16), 10, (1, 16, 16)))
    assert "one shape" in UGATIT.data_problem(DataSpec((3, 28, 28), 10, (1, 28, 28)))
    # The harness asks with the defaults; the configured depth is checked when built.
    with pytest.raises(UsageError, match="divisible by 8"):
        build(n_downsampling=3)
