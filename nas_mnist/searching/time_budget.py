"""``--time-budget``: a wall-clock budget for a whole search job, its final stage included.

The budget counts from the call's start (loading, the projection's measurements and the
seeding included). From the projection before the first trial (``searching.projection``) it
reserves the final stage's projected time, and lets a trial start only while the projection
says it can finish before that reserve: trials start until ``start + budget - final stage -
one trial``. That deadline becomes the search's ``timeout`` (Optuna's: no trial starts after
it; a running trial finishes). A final stage that does not fit the budget left is dropped, and
the line says so. One line says up front what will run. The projection is an estimate (FLOPs
at measured or this project's CPU speed), so the job ends near the budget, not exactly at it.
"""

from __future__ import annotations

import dataclasses
import re
import time
from dataclasses import dataclass
from typing import Any

from nas_mnist.timing import format_duration

_DURATION = re.compile(r"(?:(?P<h>\d+(?:\.\d+)?)h)?(?:(?P<m>\d+(?:\.\d+)?)m(?:in)?)?"
                       r"(?:(?P<s>\d+(?:\.\d+)?)s)?")


def parse_duration(value: str | float | int) -> float:
    """Seconds of a duration: a number of seconds, or text such as "2h", "45m", "90s", "1h30m".

    Raises:
        ValueError: not a positive duration; the message gives the accepted forms.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as 2h, 45m, 90s or 1h30m, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = str(value).strip().lower().replace(" ", "")
        match = _DURATION.fullmatch(text)
        if re.fullmatch(r"\d+(?:\.\d+)?", text):
            seconds = float(text)
        elif match and text:
            seconds = sum(float(match.group(unit) or 0) * factor
                          for unit, factor in (("h", 3600), ("m", 60), ("s", 1)))
        else:
            seconds = -1.0
    if not seconds > 0 or seconds == float("inf"):
        raise ValueError(f"expected a duration such as 2h, 45m, 90s or 1h30m, got {value!r}")
    return seconds


@dataclass(frozen=True)
class TimeBudgetPlan:
    """What a budget lets the search run.

    Attributes:
        settings: the search's settings with ``timeout`` (seconds from now until the last trial
            may start) and, when the final stage does not fit, ``final_top_k=0``.
        line: the one line said up front.
    """

    settings: Any
    line: str


def _clock(epoch_seconds: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(epoch_seconds))


def plan_time_budget(settings: Any, projection: Any | None, elapsed: float,
                     wall_now: float | None = None) -> TimeBudgetPlan:
    """Fit the search into ``settings.time_budget`` seconds.

    Args:
        settings: the validated ``SearchSettings``, ``time_budget`` set.
        projection: the ``timing.SearchProjection`` before the first trial (None: none could be
            made; then only the budget itself bounds the trials).
        elapsed: seconds since the job started.
        wall_now: ``time.time()`` now (tests pass their own).

    Returns:
        The ``TimeBudgetPlan``.
    """
    wall_now = time.time() if wall_now is None else wall_now
    budget = parse_duration(settings.time_budget)
    left = budget - elapsed
    trial, final = _trial_and_final_seconds(projection)
    changes: dict[str, Any] = {}
    final_note = ""
    if final and final > left - trial:
        changes["final_top_k"] = 0
        final_note = (f"; no final stage: it projects ~{format_duration(final)}, more than the "
                      "budget leaves (run nas-mnist retrain afterwards)")
        final = 0.0
    elif final:
        final_note = f", then the final stage (~{format_duration(final)})"
    window = max(left - final - trial, 0.0)
    timeout = window if settings.timeout is None else min(window, settings.timeout)
    changes["timeout"] = max(timeout, 0.001)
    each = f" (each ~{format_duration(trial)} projected)" if trial else ""
    if window > 0:
        start = f"trials start until {_clock(wall_now + timeout)}{each}"
    else:
        start = f"no trial starts: one projects ~{format_duration(trial)}, more than is left"
    line = (f"time budget {format_duration(budget)}: {start}{final_note}; the job ends by about "
            f"{_clock(wall_now + max(left, 0.0))}")
    return TimeBudgetPlan(dataclasses.replace(settings, **changes), line)


def _trial_and_final_seconds(projection: Any | None) -> tuple[float, float]:
    """(seconds of the longest kind of trial, seconds of the final stage), both projected; on
    a CPU a trial of ``--jobs N`` shares the cores with N - 1 others, so it takes N times as
    long."""
    if projection is None:
        return 0.0, 0.0
    trial, final = 0.0, 0.0
    for stage in projection.stages:
        seconds = stage.seconds(projection.cost)
        if stage.name == "final model":
            final += seconds
        elif stage.flops:
            trial = max(trial, seconds / len(stage.flops))
    if projection.device == "CPU":
        trial *= projection.jobs
    return trial, final
