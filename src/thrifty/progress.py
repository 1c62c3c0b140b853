"""The live terminal view of a running study (rich), refreshed from storage twice a second."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from thrifty.trial import TrialState

if TYPE_CHECKING:  # pragma: no cover
    from thrifty.study import Study


def format_params(params: Any, width: int = 70) -> str:
    text = ", ".join(f"{k}={_short(v)}" for k, v in dict(params).items())
    return text if len(text) <= width else text[: width - 1] + "…"


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


class ProgressView:
    """Shows trials done / target, running and failed counts, spend and the best so far."""

    def __init__(self, study: Study, n_trials: int | None, run_tag: str | None = None) -> None:
        self.study = study
        self.target = n_trials if n_trials is not None else study.budget.trials
        self.started = time.monotonic()
        self._live: Any = None
        self._cache: tuple[float, Any] | None = None
        self._initial_done = sum(n for s, n in study.counts().items() if s.is_finished)

    def start(self) -> None:
        from rich.live import Live

        self._live = Live(get_renderable=self._render, refresh_per_second=2, transient=False)
        self._live.start()

    def stop(self) -> None:
        if self._live is not None:
            self._cache = None
            self._live.refresh()
            self._live.stop()
            self._live = None

    def __rich__(self) -> Any:
        """The view as of now, read afresh from storage: a view is a rich renderable
        (``rich.console.Console().print(view)``), as ``optimize(progress=True)`` shows it."""
        return self._build()

    def _render(self) -> Any:
        now = time.monotonic()
        if self._cache is not None and now - self._cache[0] < 0.5:
            return self._cache[1]
        renderable = self._build()
        self._cache = (now, renderable)
        return renderable

    def _build(self) -> Any:
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table

        s = self.study
        try:
            counts = s.counts()
            spent = s.cost_usd
        except Exception as exc:  # noqa: BLE001 - the view must never kill the run
            return f"[red]progress unavailable: {exc}[/]"
        done = sum(n for st, n in counts.items() if st.is_finished) - self._initial_done
        running = counts.get(TrialState.RUNNING, 0)
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold cyan")
        grid.add_column()
        elapsed = time.monotonic() - self.started
        target = f"/{self.target}" if self.target else ""
        grid.add_row("study", f"{s.name}  [dim]({s.strategy.name}, {s.storage_url})[/]")
        grid.add_row(
            "trials",
            f"{done}{target} done this run · {running} running · "
            f"{counts.get(TrialState.COMPLETED, 0)} completed · {counts.get(TrialState.STOPPED, 0)} stopped · "
            + (f"{counts[TrialState.PAUSED]} paused · " if counts.get(TrialState.PAUSED) else "")
            + f"{counts.get(TrialState.FAILED, 0)} failed",
        )
        budget_text = ""
        try:
            usd = s.budget.usd
        except Exception:  # noqa: BLE001 - the view must never kill the run
            usd = None
        if usd is not None:
            budget_text = f" of ${usd:,.2f} · [bold]${max(usd - spent, 0.0):,.4f} left[/]"
        grid.add_row("spent", f"${spent:,.4f}{budget_text}  [dim]in {elapsed:,.0f} s[/]")
        if not s.is_multi_objective:
            try:
                best = s.best
                grid.add_row("best", f"[green]{best.value:.6g}[/] (trial {best.number}) {format_params(best.params)}")
            except Exception:  # noqa: BLE001 - no completed trial yet
                grid.add_row("best", "[dim]none yet[/]")
        parts: list[Any] = [grid]
        if running:
            parts.append(self._running_table())
        if self.target:
            parts.insert(0, ProgressBar(total=self.target, completed=min(done, self.target), width=60))
        return Group(*parts)

    def _running_table(self, limit: int = 8) -> Any:
        """The running trials: number, step, last metrics, dollars so far, params (at most ``limit``)."""
        from rich.table import Table

        table = Table(box=None, padding=(0, 2), header_style="dim")
        for col in ("trial", "step", "last report", "$ so far", "params"):
            table.add_column(col)
        try:
            trials = self.study.get_trials([TrialState.RUNNING])
        except Exception as exc:  # noqa: BLE001 - the view must never kill the run
            return f"[red]running trials unavailable: {exc}[/]"
        for t in trials[:limit]:
            last = next((m for m in reversed(t.measurements) if m.metrics), None)
            metrics = ", ".join(f"{k}={_short(v)}" for k, v in last.metrics.items()) if last else "-"
            step = _short(t.last_step) if t.last_step is not None else "-"
            table.add_row(str(t.number), step, metrics, f"{t.cost_usd:,.4f}", format_params(t.params, 50))
        if len(trials) > limit:
            table.add_row("…", "", f"{len(trials) - limit} more running", "", "")
        return table


class LineProgress:
    """One line per trial as it finishes, for output that is not a terminal (pipes, CI logs):
    ``trial 12 completed: accuracy=0.9712, $0.0031, 4.2 s`` (stopped: the reason; failed: the
    error's gist). Polls the storage every ``interval_s`` for trials finished since the last poll
    (``finished_after``: finished trials never change), in a daemon thread; :meth:`stop` prints
    what finished since the last poll."""

    def __init__(self, study: Study, stream: Any = None, interval_s: float = 0.5) -> None:
        import sys

        self.study = study
        self.stream = stream if stream is not None else sys.stdout
        self.interval_s = interval_s
        self._seen = 0
        self._thread: Any = None
        self._stop: Any = None

    def start(self) -> None:
        import threading

        done = self.study.storage.get_trials(self.study.id, with_measurements=False)
        self._seen = max((t.finish_order or 0 for t in done), default=0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="thrifty-lines", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=10)
            self._thread = None
        self._safe_poll()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._safe_poll()

    def _safe_poll(self) -> None:
        """A poll that never stops the run: a failed read is said once on standard error (the
        next poll catches up; the run's summary follows anyway)."""
        import sys

        try:
            self._poll()
        except Exception as exc:  # noqa: BLE001 - a progress line must never end a run
            if not getattr(self, "_said", False):
                self._said = True
                print(f"thrifty: progress lines could not read the study ({exc}); trials go on", file=sys.stderr)

    def _poll(self) -> None:
        from thrifty.analysis.report import error_gist

        new = [t for t in self.study.storage.get_trials(self.study.id, with_measurements=False,
                                                        finished_after=self._seen)
               if t.state.is_finished and t.finish_order is not None and t.finish_order > self._seen]
        for t in sorted(new, key=lambda t: t.finish_order or 0):
            metrics = ", ".join(f"{k}={_short(v)}" for k, v in t.metrics.items() if k in self.study.objectives)
            line = f"trial {t.number} {t.state.value}"
            if t.state is TrialState.STOPPED:
                line += f" ({t.reason or 'no reason recorded'})"
            if metrics:
                line += f": {metrics}"
            line += f", ${t.cost_usd:,.4f}, {t.elapsed_s:.1f} s"
            if t.state in (TrialState.FAILED, TrialState.INFEASIBLE) and t.error:
                line += f": {error_gist(t.error)}"
            print(line, file=self.stream, flush=True)
            self._seen = max(self._seen, t.finish_order or 0)
