"""Learning-rate schedules over a suite's budget (told to a variant by `Variant.set_budget`)."""

from __future__ import annotations

import torch


def linear_decay(
    optimizer: torch.optim.Optimizer, gen_steps: int, decay_from: float
) -> torch.optim.lr_scheduler.LambdaLR:
    """Constant for the first `decay_from` fraction of the budget, then linearly down to
    1/(n + 1) of the rate at the last step: the schedule of the Pix2Pix/CycleGAN authors' code
    (100 epochs constant, then 100 of decay)."""
    start = int(decay_from * gen_steps)

    def factor(step: int) -> float:
        return 1.0 - max(0, step - start) / (gen_steps - start + 1)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
