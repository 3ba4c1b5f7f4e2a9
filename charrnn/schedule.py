"""The learning-rate schedule: the factor on training.lr for each update, a function of the
step alone (so a resumed run continues it exactly); and the plan a time budget makes: the
steps and schedule that fit the budget at the step rate measured on this machine."""

from __future__ import annotations

import math
from dataclasses import dataclass

from charrnn.config import TrainingConfig
from charrnn.errors import CharRNNError

SCHEDULE_KEYS = ("lr", "lr_schedule", "steps", "warmup", "lr_floor", "lr_decay", "lr_decay_every",
                 "eval_every")


def lr_scale(training: TrainingConfig, step: int) -> float:
    """The schedule's factor on lr for the update after `step` steps.

    step: lr_decay once every lr_decay_every steps (eval_every when unset).
    cosine and linear: after `warmup` steps of a linear rise ((step + 1) / warmup), a decay over
    the remaining steps from 1 to lr_floor at step `steps`, after the last update; cosine is
    (1 + cos(pi * done)) / 2 (with no warm-up and no floor, PyTorch's CosineAnnealingLR with
    T_max = steps, stepped after each update), linear is 1 - done. A function of the step
    alone, so resume is exact."""
    if training.lr_schedule == "step":
        every = training.lr_decay_every or training.eval_every
        return training.lr_decay ** (step // every)
    warmup = training.warmup
    if step < warmup:
        return (step + 1) / warmup
    done = min(step - warmup, training.steps - warmup) / max(training.steps - warmup, 1)
    if training.lr_schedule == "cosine":
        decayed = 0.5 * (1.0 + math.cos(math.pi * done))
    else:
        decayed = 1.0 - done
    floor = training.lr_floor
    return decayed if floor == 0.0 else floor + (1.0 - floor) * decayed


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


# --- the time budget: a plan of steps and schedule, fixed at the start of a run -------------

UNITS = {"s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
PLAN_SHARE = 0.92  # of the budget left after measuring; the rest absorbs jitter and the last save
# Cosine against linear decay, same model and budget (benchmarks/budget.py --shapes, 60 s, 2
# shared cores): names-us-2018 GRU 1x128 1.974 cosine, 1.978 linear; plays-tragedies GRU 1x256
# 1.852 cosine (640 steps), 1.762 linear (830 steps): the step counts differed with the load,
# and a rerun at equal planned steps was cut by the hard cap, so neither shape has won yet;
# cosine stays, as the shipped shakespeare-lstm config and the PyTorch yardstick use it.
PLAN_SHAPE = "cosine"
WARMUP_SHARE, MAX_WARMUP = 0.02, 200  # warm-up: 2% of the steps, at most 200
PLANNED_EVALS = 10  # evaluations in a run whose eval_every the plan chooses
BEHIND, HARD_CAP = 1.2, 1.25  # warn at 20% behind the plan; stop at 1.25 x the budget


def parse_duration(text: str) -> float:
    """'90s', '10m', '1.5h' (or a bare number of seconds) -> seconds."""
    import re

    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(text))
    if not match:
        raise CharRNNError(f"--time {text!r}: expected a duration such as 90s, 10m or 1.5h")
    number, unit = float(match.group(1)), match.group(2).lower()
    if unit and unit not in UNITS:
        raise CharRNNError(f"--time {text!r}: unknown unit {unit!r}; use s, m or h (90s, 10m, "
                           f"1.5h)")
    seconds = number * UNITS.get(unit, 1.0)
    if seconds <= 0:
        raise CharRNNError(f"--time {text!r}: the budget must be more than 0 seconds")
    return seconds


@dataclass(frozen=True)
class Rates:
    """What the plan is made from, measured on this machine with the run's threads."""

    step_seconds: float  # one training step, the periodic checkpoint saves shared out
    eval_seconds: float  # one evaluation and the best checkpoint's save after it
    spent: float = 0.0  # seconds of the budget already used (measuring them)
    eval_chars_per_second: float = 0.0


def plan(training: TrainingConfig, budget: float, rates: Rates,
         choose_eval_every: bool = False) -> dict:
    """The training keys a time budget fixes: steps, eval_every (when choose_eval_every), and
    a warm-up then a decay that ends exactly at the last step (the config's cosine or linear,
    else PLAN_SHAPE). A function of its
    arguments alone: the same budget and rates give the same plan.

    steps is the most that fits PLAN_SHARE of the budget left after `spent`, counting a
    training step at step_seconds and an evaluation (every eval_every steps and one at the end)
    at eval_seconds; rounded down to a multiple of 10 from 100 on."""
    usable = PLAN_SHARE * budget - rates.spent
    step, evaluation = rates.step_seconds, rates.eval_seconds
    if choose_eval_every:
        steps = int((usable - (PLANNED_EVALS + 1) * evaluation) / step)
        eval_every = max(1, -(-steps // PLANNED_EVALS))
    else:
        eval_every = training.eval_every
        steps = int((usable - evaluation) / (step + evaluation / eval_every))
    if steps >= 100:
        steps -= steps % 10
    if steps < eval_every or steps < 1:
        need = evaluation * 2 + step * eval_every + rates.spent
        raise CharRNNError(
            f"a budget of {budget:g} s is too small to train one evaluation interval: "
            f"{eval_every} steps at {step:.3g} s a step and an evaluation at {evaluation:.3g} s "
            f"need about {need / PLAN_SHARE:.0f} s; give a longer --time, or a smaller model or "
            f"training.eval_every")
    warmup = min(MAX_WARMUP, int(WARMUP_SHARE * steps))
    shape = training.lr_schedule if training.lr_schedule != "step" else PLAN_SHAPE
    return {"steps": steps, "eval_every": eval_every, "lr_schedule": shape,
            "warmup": warmup, "lr_floor": 0.0, "lr_decay": 1.0, "lr_decay_every": None,
            "time_budget": float(budget), "step_seconds": float(step),
            "eval_seconds": float(evaluation)}


def planned_seconds(training: TrainingConfig, steps_done: int, evals_done: int) -> float:
    """Where the plan expected the run to be after these steps and evaluations."""
    return steps_done * training.step_seconds + evals_done * training.eval_seconds


def time_cap(training: TrainingConfig, step: int) -> float:
    """Seconds this invocation may run before the hard cap stops it (0: no cap): the time
    limit, and for a planned run HARD_CAP x the plan's time for the steps still to go (a fresh
    run: the whole budget)."""
    caps = [training.time_limit] if training.time_limit > 0 else []
    if training.time_budget > 0 and training.step_seconds > 0:
        left = max(training.steps - step, 0) / max(training.steps, 1)
        caps.append(HARD_CAP * training.time_budget * (1.0 if step == 0 else left))
    return min(caps) if caps else 0.0


def describe_plan(training: TrainingConfig) -> str:
    """The plan, for the start line."""
    schedule = (f"{training.lr_schedule} from lr {training.lr:g} after {training.warmup} "
                f"warm-up steps, ending at step {training.steps}")
    return (f"plan for {training.time_budget:g} s: {training.steps:,} steps ({schedule}), "
            f"evaluating every {training.eval_every}; measured {training.step_seconds * 1e3:.1f} "
            f"ms a step, {training.eval_seconds:.2f} s an evaluation")
