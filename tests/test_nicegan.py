"""NICE-GAN (variants/nicegan.py): a step translates both ways and repeats exactly; the encoder
shared with D moves only on D's steps (decoupled training), while the separate-encoder ablation's
encoders move on G's; LIN's ρ; a checkpoint round trip; the image sizes it refuses."""

import io
import math

import pytest
import torch

from bench.datasets import DataSpec
from bench.errors import UsageError
from bench.seeding import seed_everything
from variants.nicegan import LIN, NiceGAN

CPU = torch.device("cpu")
GREY = DataSpec((1, 28, 28), 10, (1, 28, 28))


def build_nicegan(seed=0, data=GREY, **overrides):
    seed_everything(seed, CPU)
    cfg = NiceGAN.Config.model_validate({"ngf": 4, "ndf": 4, "n_blocks": 1, **overrides})
    return NiceGAN(cfg, data, CPU)


def pairs(seed=0, n=4, side=28, ch_b=1):
    g = torch.Generator().manual_seed(seed)

    def next_real():
        return (torch.rand((n, 1, side, side), generator=g) * 2 - 1,
                torch.rand((n, ch_b, side, side), generator=g) * 2 - 1)  # fmt: skip

    return next_real


def snapshot(module):
    """Copies of the learnt parameters (spectral norm's power-iteration buffers are not learnt)."""
    return [p.detach().clone() for p in module.parameters()]


def moved(before, nets):
    """The names of `nets` whose parameters differ from their `before` snapshots."""
    changed = set()
    for name, net in nets.items():
        if any(not torch.equal(a, b) for a, b in zip(before[name], snapshot(net), strict=True)):
            changed.add(name)
    return changed


def ids(params):
    return {id(p) for p in params}


def test_nicegan_steps_translate_both_ways_and_repeat_exactly():
    model, again = build_nicegan(), build_nicegan()
    losses = model.train_step(pairs())
    assert losses == again.train_step(pairs()) and all(math.isfinite(v) for v in losses.values())
    assert set(losses) == {"loss/generator", "loss/cycle", "loss/reconstruction",
                           "loss/critic_A", "loss/critic_B"}  # fmt: skip
    for (name, weights), (_, copy) in zip(
        model.networks().items(), again.networks().items(), strict=True
    ):
        assert all(torch.equal(weights[k], copy[k]) for k in weights), name
    x = pairs(seed=5)()[0]
    for direction in ("A2B", "B2A"):
        y = model.translate(x, direction)
        assert y.shape == x.shape and y.min() >= -1 and y.max() <= 1
        assert not torch.equal(y[0], y[1])  # the output depends on the input
    # Grey A, RGB B: each decoder writes its own domain's channels, from either domain's encoding.
    rgb = build_nicegan(data=DataSpec((3, 28, 28), 10, (1, 28, 28)))
    assert all(math.isfinite(v) for v in rgb.train_step(pairs(ch_b=3)).values())
    assert rgb.translate(x, "A2B").shape == (4, 3, 28, 28)
    assert rgb.translate(rgb.translate(x, "A2B"), "B2A").shape == x.shape


def test_gradient_penalty_is_off_by_default_and_trains_when_on():
    assert NiceGAN.Config().gp_weight == 0  # the authors' code declares a weight but never uses it
    losses = build_nicegan(gp_weight=10.0).train_step(pairs())
    assert losses["loss/gradient_penalty"] > 0 and math.isfinite(losses["loss/critic_A"])


def test_the_critic_loss_of_judged_images_is_the_loss_d_trains_on():
    model = build_nicegan()
    model.D_B.eval()  # no power iteration, so every call sees the same weights
    real, fake = pairs()()
    with torch.no_grad():
        real_out, fake_out = model.D_B(real)[0], model.D_B(fake)[0]
        trained = sum(
            ((r - 1) ** 2).mean() + (f**2).mean() for r, f in zip(real_out, fake_out, strict=True)
        )
        judged = model.critic_loss(model.judge(real, "B"), model.judge(fake, "B"))
    # At 28²: the CAM logit, 5×5 local patches, one global score.
    assert [tuple(o.shape[1:]) for o in real_out] == [(1,), (1, 5, 5), (1, 1, 1)]
    assert judged.item() == pytest.approx(trained.item(), rel=1e-6)


def test_the_shared_encoder_moves_only_on_discriminator_steps():
    model = build_nicegan()
    encoders = (model.D_A.encoder, model.D_B.encoder)
    assert model.encoders() == encoders  # translation decodes D's own encodings
    encoder_params = ids(p for e in encoders for p in e.parameters())
    g_params = ids(p for group in model.opt_G.param_groups for p in group["params"])
    d_params = ids(p for group in model.opt_D.param_groups for p in group["params"])
    assert encoder_params and not encoder_params & g_params and encoder_params <= d_params
    assert g_params == ids([*model.G_A2B.parameters(), *model.G_B2A.parameters()])
    nets = {"encoder_A": encoders[0], "encoder_B": encoders[1], "D_A": model.D_A,
            "D_B": model.D_B, "G_A2B": model.G_A2B, "G_B2A": model.G_B2A}  # fmt: skip
    real_a, real_b = pairs()()
    # G's update moves the decoders only; D's update moves D, both encoders included, only.
    before = {name: snapshot(net) for name, net in nets.items()}
    model._generator_step(real_a, real_b)
    assert moved(before, nets) == {"G_A2B", "G_B2A"}
    before = {name: snapshot(net) for name, net in nets.items()}
    model._discriminator_step(real_a, real_b)
    assert moved(before, nets) == {"encoder_A", "encoder_B", "D_A", "D_B"}


def test_without_a_shared_encoder_the_translators_encoders_are_their_own_and_move_with_g():
    model = build_nicegan(shared_encoder=False)
    assert model.encoders() == (model.E_A, model.E_B)
    assert model.E_A is not model.D_A.encoder and model.E_B is not model.D_B.encoder
    own = ids([*model.E_A.parameters(), *model.E_B.parameters()])
    d_encoders = ids([*model.D_A.encoder.parameters(), *model.D_B.encoder.parameters()])
    g_params = ids(p for group in model.opt_G.param_groups for p in group["params"])
    d_params = ids(p for group in model.opt_D.param_groups for p in group["params"])
    assert not own & d_encoders and own <= g_params and not own & d_params
    assert {"E_A", "E_B"} <= set(model.state_dict())
    nets = {"E_A": model.E_A, "E_B": model.E_B, "encoder_A": model.D_A.encoder,
            "encoder_B": model.D_B.encoder, "D_A": model.D_A, "D_B": model.D_B,
            "G_A2B": model.G_A2B, "G_B2A": model.G_B2A}  # fmt: skip
    real_a, real_b = pairs()()
    before = {name: snapshot(net) for name, net in nets.items()}
    model._generator_step(real_a, real_b)
    assert moved(before, nets) == {"E_A", "E_B", "G_A2B", "G_B2A"}
    before = {name: snapshot(net) for name, net in nets.items()}
    model._discriminator_step(real_a, real_b)
    assert moved(before, nets) == {"encoder_A", "encoder_B", "D_A", "D_B"}

    # Translation decodes the translator's encoder, not D's.
    for net in model.networks():
        getattr(model, net).eval()
    x = real_a
    with torch.no_grad():
        assert torch.equal(model.translate(x, "A2B"), model.G_A2B(model.E_A(x)[0]))
        assert not torch.equal(model.translate(x, "A2B"), model.G_A2B(model.D_A.encoder(x)[0]))


def test_layer_instance_norm_mixes_in_and_ln_by_rho_within_0_1():
    torch.manual_seed(0)
    norm = LIN(3, adaptive=True)
    with torch.no_grad():
        norm.rho_logits.copy_(torch.tensor([[5.0, -5.0], [0.0, 0.0], [-5.0, 5.0]]))
    x, gamma, beta = torch.randn(2, 3, 4, 4) * 3 + 1, torch.randn(2, 3), torch.randn(2, 3)

    def standardise(dims):
        return (x - x.mean(dims, keepdim=True)) / (
            x.var(dims, unbiased=False, keepdim=True) + 1e-5
        ).sqrt()

    rho = torch.sigmoid(torch.tensor([10.0, 0.0, -10.0])).view(1, 3, 1, 1)  # softmax of 2 logits
    mixed = rho * standardise((2, 3)) + (1 - rho) * standardise((1, 2, 3))
    expected = mixed * gamma[..., None, None] + beta[..., None, None]
    assert torch.allclose(norm(x, gamma, beta), expected, atol=1e-5)
    # The authors' starting points: AdaLIN mostly IN, LIN mostly LN.
    assert torch.allclose(LIN(2, adaptive=True).rho, torch.sigmoid(torch.tensor(2.2)))
    assert torch.allclose(LIN(2).rho, torch.sigmoid(torch.tensor(-2.2)))

    # Training moves ρ, even from the very edge, and it stays in [0, 1].
    model = build_nicegan(lr=0.05)
    norms = [m for net in (model.G_A2B, model.G_B2A) for m in net.modules() if isinstance(m, LIN)]
    with torch.no_grad():
        norms[0].rho_logits[:, 0] = 40.0  # ρ = 1 to float precision
    before = [m.rho.detach().clone() for m in norms]
    next_real = pairs()
    for _ in range(3):
        model.train_step(next_real)
    after = [m.rho.detach() for m in norms]
    assert all(((r >= 0) & (r <= 1)).all() for r in after)
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))


@pytest.mark.parametrize("shared_encoder", [True, False])
def test_a_checkpoint_round_trip_trains_on_identically(shared_encoder):
    # The gradient penalty draws random numbers, so the training stream is part of the check too.
    options = {"shared_encoder": shared_encoder, "gp_weight": 1.0}
    model = build_nicegan(**options)
    model.set_budget(4)
    next_real = pairs()
    for _ in range(2):
        model.train_step(next_real)
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf, map_location="cpu", weights_only=True)
    nets = {"D_A", "D_B", "G_A2B", "G_B2A"} | (set() if shared_encoder else {"E_A", "E_B"})
    assert set(state) == nets | {"opt_G", "opt_D", "sched_G", "sched_D"}

    fresh = build_nicegan(seed=1, **options)
    fresh.set_budget(4)
    assert not torch.equal(fresh.G_A2B.gamma.weight, model.G_A2B.gamma.weight)
    fresh.load_state_dict(state)
    batch = next_real()
    torch.manual_seed(7)
    losses = model.train_step(lambda: batch)
    torch.manual_seed(7)
    assert fresh.train_step(lambda: batch) == losses
    for name, weights in model.networks().items():
        assert all(torch.equal(v, fresh.networks()[name][k]) for k, v in weights.items()), name
    # Step 3 of 4 is in the decay that starts halfway: the rate came back with the schedulers.
    assert fresh.opt_G.param_groups[0]["lr"] == model.opt_G.param_groups[0]["lr"] < 1e-4


def test_image_sizes_the_networks_cannot_take_are_refused():
    assert NiceGAN.data_problem(GREY) is None
    assert "divisible by 4" in NiceGAN.data_problem(DataSpec((1, 30, 30), 10, (1, 30, 30)))
    assert "at least 24" in NiceGAN.data_problem(DataSpec((1, 20, 20), 10, (1, 20, 20)))
    assert "one size" in NiceGAN.data_problem(DataSpec((1, 28, 28), 10, (1, 32, 32)))
    # Deeper configurations are checked when built...
    with pytest.raises(UsageError, match="at least 48"):
        build_nicegan(d_layers=[1, 1])
    # ...and the smallest side each accepts trains: the bound is the real one.
    for side, overrides in ((24, {}), (48, {"n_downsampling": 1, "d_layers": [1, 2]})):
        model = build_nicegan(data=DataSpec((1, side, side), 10, (1, side, side)), **overrides)
        losses = model.train_step(pairs(n=2, side=side))
        assert all(math.isfinite(v) for v in losses.values())
        assert model.translate(torch.zeros(1, 1, side, side), "B2A").shape == (1, 1, side, side)
