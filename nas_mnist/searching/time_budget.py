"""``--time-budget``: a wall-clock budget for a whole search job, its final stage included.

The budget counts from the call's start (loading, the projection's measurements and the
seeding included). From the projection before the first trial (``searching.projection``) it
reserves the final stage's projected time; the search's trials must end by ``start + budget -
final stage``. Each trial is checked at its start against its own projected seconds (its spec's
FLOPs, ``TrialDeadline``): one that cannot end in time does not train. A sampled spec is pruned
and the sampler proposes another; a queued one (a seed, a retry) waits in the study for the next
run, and the search stops (``objective.Objective``). Optuna's ``timeout`` stops starting
trials once even the cheapest projected trial cannot fit (a running trial finishes). A final
stage that does not fit the budget left is dropped, and the line says so. One line says up front
what will run. The projection is an estimate (FLOPs at measured or this project's CPU speed), so
the job ends near the budget, not exactly at it.
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
class TrialDeadline:
    """When a search's trials must have ended, and what one trial costs (``--time-budget``).

    Pickled to ``--jobs`` workers with their plan.

    Attributes:
        ends_at: ``time.time()`` by which every trial must have ended.
        stage: a ``timing.StageWork`` of the search's trials (epochs and images per trial).
        cost: the projection's ``timing.CostModel``.
        slowdown: how many times longer a trial takes than projected alone (``--jobs N`` on
            a CPU: N trials share the cores).
    """

    ends_at: float
    stage: Any
    cost: Any
    slowdown: float = 1.0

    def trial_seconds(self, flops: float) -> float:
        """Projected seconds of one trial of a spec of ``flops`` forward FLOPs."""
        return dataclasses.replace(self.stage, flops=(flops,)).seconds(self.cost) * self.slowdown

    def refusal(self, flops: float, now: float | None = None) -> str | None:
        """Why a trial of ``flops`` FLOPs must not start now (its reason, ``time_budget: ...``),
        or None when it can end by ``ends_at``."""
        now = time.time() if now is None else now
        need, left = self.trial_seconds(flops), self.ends_at - now
        if need <= left:
            return None
        return (f"time_budget: it projects ~{need:,.0f} s, and {max(left, 0.0):,.0f} s of "
                "--time-budget are left for trials")


@dataclass(frozen=True)
class TimeBudgetPlan:
    """What a budget lets the search run.

    Attributes:
        settings: the search's settings with ``timeout`` (seconds from now until the cheapest
            projected trial may start) and, when the final stage does not fit,
            ``final_top_k=0``.
        line: the one line said up front.
        deadline: each trial's check at its start (None without a projection).
    """

    settings: Any
    line: str
    deadline: TrialDeadline | None = None


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
    cheapest, longest, final = _trial_and_final_seconds(projection)
    changes: dict[str, Any] = {}
    final_note = ""
    if final and final > left - cheapest:
        changes["final_top_k"] = 0
        final_note = (f"; no final stage: it projects ~{format_duration(final)}, more than the "
                      "budget leaves (run nas-mnist retrain afterwards)")
        final = 0.0
    elif final:
        final_note = f", then the final stage (~{format_duration(final)})"
    window = max(left - final - cheapest, 0.0)
    timeout = window if settings.timeout is None else min(window, settings.timeout)
    changes["timeout"] = max(timeout, 0.001)
    each = ""
    if longest:
        spread = (f"~{format_duration(cheapest)}" if longest - cheapest < 1 else
                  f"~{format_duration(cheapest)} to ~{format_duration(longest)}")
        each = f", each only if its own projection ({spread}) ends by then"
    if window > 0:
        start = (f"trials end by {_clock(wall_now + left - final)}: they start until "
                 f"{_clock(wall_now + timeout)}{each}")
    else:
        start = f"no trial starts: one projects ~{format_duration(cheapest)}, more than is left"
    shown = format_duration(budget) if budget % 60 == 0 else f"{budget:g} s"  # as given
    line = (f"time budget {shown}: {start}{final_note}; the job ends by about "
            f"{_clock(wall_now + max(left, 0.0))}")
    return TimeBudgetPlan(dataclasses.replace(settings, **changes), line,
                          _deadline(projection, wall_now + left - final))


def _deadline(projection: Any | None, ends_at: float) -> TrialDeadline | None:
    """The check of each trial at its start, from the projection's stage of trials (None
    without one)."""
    if projection is None:
        return None
    stages = [s for s in projection.stages if s.name != "final model" and s.flops]
    if not stages:
        return None
    slowdown = float(projection.jobs) if projection.device == "CPU" else 1.0
    return TrialDeadline(ends_at, stages[-1], projection.cost, slowdown)


def _trial_and_final_seconds(projection: Any | None) -> tuple[float, float, float]:
    """(seconds of the cheapest trial, of the longest, of the final stage), all projected; on a
    CPU a trial of ``--jobs N`` shares the cores with N - 1 others, so it takes N times as
    long. A stage's trials are its specs' FLOPs (the sampled trials': their mean)."""
    if projection is None:
        return 0.0, 0.0, 0.0
    trials, final = [], 0.0
    for stage in projection.stages:
        if stage.name == "final model":
            final += stage.seconds(projection.cost)
            continue
        trials += [dataclasses.replace(stage, flops=(f,)).seconds(projection.cost)
                   for f in set(stage.flops) if f > 0]
    if not trials:
        return 0.0, 0.0, final
    slowdown = projection.jobs if projection.device == "CPU" else 1
    return min(trials) * slowdown, max(trials) * slowdown, final
