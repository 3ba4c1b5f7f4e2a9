"""The learning-rate schedule: the factor on training.lr for each update, a function of the
step alone (so a resumed run continues it exactly)."""

from __future__ import annotations

import math

from charrnn.config import TrainingConfig

SCHEDULE_KEYS = ("lr", "lr_schedule", "steps", "lr_decay", "lr_decay_every", "eval_every")


def lr_scale(training: TrainingConfig, step: int) -> float:
    """The schedule's factor on lr for the update after `step` steps. step: lr_decay once every
    lr_decay_every steps (eval_every when unset). cosine: (1 + cos(pi * step / steps)) / 2, from
    1 for the first update to 0 at step `steps`, after the last one (PyTorch's
    CosineAnnealingLR with T_max = steps, eta_min = 0, stepped after each update), so a run with
    a known budget anneals all the way. A function of the step alone, so resume is exact."""
    if training.lr_schedule == "cosine":
        done = min(step, training.steps) / max(training.steps, 1)
        return 0.5 * (1.0 + math.cos(math.pi * done))
    every = training.lr_decay_every or training.eval_every
    return training.lr_decay ** (step // every)


def schedule_jump(before: TrainingConfig, now: TrainingConfig, step: int) -> str | None:
    """What a resumed run's changed schedule does to lr at the step it resumes from, if
    anything (a cosine schedule moves with `steps`; any schedule with lr and its own keys)."""
    was, will = lr_scale(before, step) * before.lr, lr_scale(now, step) * now.lr
    if step >= now.steps or math.isclose(was, will, rel_tol=1e-9, abs_tol=1e-15):
        return None
    changed = ", ".join(f"{key} {getattr(before, key)} -> {getattr(now, key)}"
                        for key in SCHEDULE_KEYS if getattr(before, key) != getattr(now, key))
    return (f"the learning-rate schedule differs from the checkpoint's ({changed}): lr jumps "
            f"from {was:.3g} to {will:.3g} at step {step}")
