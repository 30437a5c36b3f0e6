"""rlxf's own terminal output: the one stderr console and its progress bars, shared by the top-level
CLI and the commands of tune/ and serve/ (so they need not import cli.py). Imports nothing from
rlxf."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

console = Console(stderr=True, soft_wrap=True)  # paths and errors stay on one line


def progress_factory(progress: Progress):
    """(description, total steps) -> callback(step, metrics): one bar per call."""
    def factory(description: str, total: int):
        task = progress.add_task(description, total=total, info="")

        def update(step: int, metrics: dict) -> None:
            info = "  ".join(f"{k}={v:.3f}" for k, v in metrics.items()
                             if isinstance(v, float))
            progress.update(task, completed=step, info=info)
        return update
    return factory


def progress_bars() -> Progress:
    return Progress(TextColumn("{task.description:<14}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TextColumn("{task.fields[info]}"), console=console,
                    transient=False)
