"""What a search returns: ``SearchResult`` (both engines, Optuna and KerasTuner, make one)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from nas_mnist.searching.settings import SearchSettings

NOTHING_TRAINED_ADVICE = ("use a larger search space, raise or drop --max-params or --max-mflops, "
                          "or check the space file (--space); the note column says why each "
                          "trial ended")
"""What to do when no trial of a search trained (``SearchResult.nothing_trained``)."""

TIME_REASONS = ("time_budget",)
"""Trial reasons that a time limit explains: the trials ran out of time, not of space."""

HTML_ROWS = 10
"""Leaderboard rows in ``SearchResult``'s Jupyter view (all of them: ``result.leaderboard``)."""


@dataclass(repr=False)
class SearchResult:
    """What a search left behind.

    Its ``repr`` is one short line (study, finished trials, best trial, final champion), not the
    fields; ``summary()`` gives the same as a few lines, and says so when no trial trained.

    Attributes:
        study: the ``optuna.Study`` (``None`` for the KerasTuner engine, which keeps its own state
            in ``tuner_dir``).
        leaderboard: a ``pandas.DataFrame`` with one row per trial that ran (complete, pruned or
            failed; queued trials are left out), best val_accuracy first, with the columns of
            ``nas_mnist.study.leaderboard.COLUMNS`` (accuracies rounded to 4 decimals, seconds
            to 1; a missing number is ``<NA>``, missing text ``""``).
        best_trial: the complete trial with the highest val_accuracy (an
            ``optuna.trial.FrozenTrial``), or ``None`` before any trial completed (always ``None``
            for the KerasTuner engine).
        parent_run_id: the study's MLflow parent run.
        experiment_id: the study's MLflow experiment.
        tracking_uri: the MLflow tracking store.
        settings: the settings the search ran with.
        queued: trials still waiting in the study (baselines or retries for a later run).
        stopped_for_failures: the search stopped because too many trials failed in a row.
        tracking_unavailable: why the search stopped early because the tracking server stopped
            answering (the interrupted trial is queued for one retry), else None.
        final: the final stage's ``RetrainResult`` (the champion and the final models), or
            None when the search had no final stage (``final_top_k`` 0, or trials missing).
    """

    study: Any
    leaderboard: Any
    best_trial: Any
    parent_run_id: str | None
    experiment_id: str | None
    tracking_uri: str
    settings: SearchSettings
    queued: int = 0
    stopped_for_failures: bool = False
    tracking_unavailable: str | None = None
    final: Any = None

    @property
    def trained(self) -> bool:
        """Whether at least one trial completed its training (the leaderboard has a complete
        row)."""
        frame = self.leaderboard
        return frame is not None and bool(frame["state"].eq("complete").any())

    def nothing_trained(self) -> str | None:
        """One line saying that no trial trained, how the trials ended and what to do; None
        when a trial completed. ``best_trial`` is then None; the CLI prints this line and exits
        with status 1."""
        if self.trained:
            return None
        frame = self.leaderboard
        if frame is None or frame.empty:
            advice = self._time_advice() or NOTHING_TRAINED_ADVICE
            return f"no trial trained: no trial ran; {advice}"
        states = Counter(str(s) for s in frame["state"])
        notes = frame["reason"].fillna("") if "reason" in frame else frame["state"]
        reasons = Counter(str(r).split(":", 1)[0].strip() or "no reason" for r in notes)
        how = ", ".join(f"{n} {state}" for state, n in states.most_common())
        why = ", ".join(f"{reason} x{n}" for reason, n in reasons.most_common(3))
        advice = self._time_advice() if set(reasons) <= set(TIME_REASONS) else None
        return (f"no trial trained: {len(frame)} trial(s) ran and none completed ({how}; "
                f"{why}); {advice or NOTHING_TRAINED_ADVICE}")

    def _time_advice(self) -> str | None:
        """What to do when the search's time limit, not the space, left no trial trained: the
        limit said as given; None without ``timeout`` or ``time_budget``."""
        budget, timeout = self.settings.time_budget, self.settings.timeout
        if budget is not None:
            return (f"--time-budget {budget} ran out before a trial could finish in it (each "
                    "trial starts only if its projected time fits); raise --time-budget")
        if timeout is not None:
            return (f"--timeout {timeout:g} s ran out before a trial started (the start-up, "
                    "loading data and starting workers, counts towards it); raise --timeout")
        return None

    def _finished(self) -> int:
        """Trials that count towards ``--trials`` (``trial_counts.count_finished``)."""
        if self.study is not None:
            from nas_mnist.study.trial_counts import count_finished

            return count_finished(self.study)
        return int(self.leaderboard["state"].isin(("complete", "pruned")).sum())

    def _best_text(self) -> str | None:
        """"best trial 7: val_accuracy 0.9901 (baseline s002_m1)", or None."""
        if self.best_trial is None:
            return None
        from nas_mnist.study.opening import val_accuracy_of

        value = val_accuracy_of(self.best_trial)
        baseline = self.best_trial.user_attrs.get("baseline")
        return (f"best trial {self.best_trial.number}: val_accuracy "
                + ("-" if value is None else f"{value:.4f}")
                + (f" (baseline {baseline})" if baseline else ""))

    def _champion_text(self) -> str | None:
        """"final champion trial:7/seed:0: val_accuracy 0.9912", or None."""
        champion = None if self.final is None else self.final.champion
        if champion is None:
            return None
        value = champion.values[0] if champion.values else None
        return (f"final champion {self.final.champion_key or champion.number}: val_accuracy "
                + ("-" if value is None else f"{value:.4f}"))

    def _stopped_text(self) -> str | None:
        if self.tracking_unavailable is not None:
            return f"stopped: {self.tracking_unavailable}"
        if self.stopped_for_failures:
            return "stopped: too many trials failed in a row"
        return None

    def summary(self) -> str:
        """A few lines: the study and its finished trials, the best trial (or the
        ``nothing_trained`` line), the final champion, why the search stopped early."""
        queued = f", {self.queued} queued" if self.queued else ""
        lines = [f"study {self.settings.study_name!r}: {self._finished()} finished trial(s)"
                 f"{queued}"]
        best = self._best_text()
        lines.append(best if best is not None else (self.nothing_trained()
                                                     or "best trial: none (no val_accuracy)"))
        lines += [t for t in (self._champion_text(), self._stopped_text()) if t]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        """Jupyter's view: the ``summary`` lines, then the leaderboard's first
        ``HTML_ROWS`` rows (rounded as in ``leaderboard``; one marker, "-", for a missing number or
        text)."""
        import html

        lines = "<br>".join(html.escape(line) for line in self.summary().splitlines())
        frame = self.leaderboard
        if frame is None or frame.empty:
            return f"<p>{lines}</p>"
        head = frame.head(HTML_ROWS).astype(object)
        shown = head.where(head.notna() & head.ne(""), "-")
        more = (f"<p>{len(frame) - HTML_ROWS} more row(s) in <code>.leaderboard</code></p>"
                if len(frame) > HTML_ROWS else "")
        return f"<p>{lines}</p>" + shown.to_html(index=False, border=0) + more

    def __repr__(self) -> str:
        best = self._best_text() or ("no trial trained" if not self.trained else "no best trial")
        parts = [f"study {self.settings.study_name!r}", f"{self._finished()} finished trials",
                 best, self._champion_text(), self._stopped_text()]
        return "SearchResult(" + "; ".join(p for p in parts if p) + ")"
