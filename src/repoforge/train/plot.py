"""`repoforge plot`: the curves of training runs (RUN_DIR/metrics.jsonl, a JSON object per step), one PNG per family
of metrics present; several runs are overlaid, each labelled by its folder's name (a benchmark's --sync against async).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from rich.console import Console

console = Console(stderr=True, soft_wrap=True)

# A figure's panels, side by side: a panel's title and the metrics drawn in it (one line per run and metric).
FIGURES = {
    "loss": [("loss", ["loss"])],
    "reward": [("reward", ["reward"]), ("resolved rate", ["resolved_rate"])],
    "trainer": [
        ("trainer seconds per step", ["trainer_busy_seconds", "trainer_idle_seconds"]),
        ("trainer idle fraction", ["idle_fraction"]),
    ],
    "throughput": [("rollouts per minute", ["rollouts_per_minute"])],
    "tokens": [("tokens per step", ["tokens"])],
}
DROPPED = ("groups dropped as stale", ["dropped_stale"])  # drawn beside the staleness histogram
STYLES = ["-", "--", ":"]  # a panel's metrics, told apart in one run's colour


class PlotError(ValueError):
    pass


def read_metrics(run_dir: Path) -> list[dict]:
    """The rows of run_dir/metrics.jsonl; malformed lines are skipped (and counted), but some row must be good."""
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        raise PlotError(f"{run_dir}: no metrics.jsonl, not a training run's folder")
    rows, bad = [], []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        row = _row(line)
        if row:
            rows.append(row)
        else:
            bad.append(number)
    if bad:
        skipped = f"{len(bad)} malformed lines (the first: line {bad[0]})"
        if not rows:
            raise PlotError(f"{path}: no usable row, {skipped}")
        console.print(f"[yellow]{path}: skipped {skipped}[/yellow]")
    if not rows:
        raise PlotError(f"{path}: empty, it holds no rows")
    return rows


def _row(line: str) -> dict | None:
    try:
        row = json.loads(line)
    except ValueError:
        return None
    return row if isinstance(row, dict) and _number(row.get("step")) else None


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def plot_runs(run_dirs: list[Path], out: Path) -> list[Path]:
    """Write out/<family>.png for every family of metrics some run has; return the files written."""
    runs = {_label(run_dir, run_dirs): read_metrics(run_dir) for run_dir in run_dirs}
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PlotError(f"{out}: not a folder the plots can go in ({exc.strerror})") from None
    written = []
    for name, panels in FIGURES.items():
        if present := _present(runs, panels):
            written.append(_save(_lines(runs, present), out / f"{name}.png"))
    if any(_staleness(rows) for rows in runs.values()):
        written.append(_save(_staleness_figure(runs), out / "staleness.png"))
    if not written:
        raise PlotError(f"{', '.join(map(str, run_dirs))}: no metric to plot (rows have only a step)")
    return written


def _label(run_dir: Path, run_dirs: list[Path]) -> str:
    # A folder's name, unless two runs share it.
    names = [path.name for path in run_dirs]
    return run_dir.name if names.count(run_dir.name) == 1 else str(run_dir)


def _points(rows: list[dict], key: str) -> tuple[list, list]:
    """(steps, values) of the rows that have a number for key."""
    pairs = [(row["step"], row[key]) for row in rows if _number(row.get(key))]
    return [step for step, _ in pairs], [value for _, value in pairs]


def _figure(panels: int):
    # A Figure of its own, not pyplot's: no global state, and PNGs are drawn by Agg whatever the backend.
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6 * panels, 4), layout="constrained")
    return figure, figure.subplots(1, panels, squeeze=False)[0]


def _present(runs: dict[str, list[dict]], panels: list[tuple[str, list[str]]]) -> list[tuple[str, list[str]]]:
    """The panels some run has a value of."""
    return [
        (title, keys) for title, keys in panels if any(_points(rows, key)[0] for rows in runs.values() for key in keys)
    ]


def _lines(runs: dict[str, list[dict]], panels: list[tuple[str, list[str]]]):
    figure, axes = _figure(len(panels))
    for ax, (title, keys) in zip(axes, panels, strict=True):
        _line_panel(ax, runs, title, keys)
    return figure


def _line_panel(ax, runs: dict[str, list[dict]], title: str, keys: list[str]) -> None:
    for colour, (label, rows) in enumerate(runs.items()):
        for style, key in zip(STYLES, keys, strict=False):
            steps, values = _points(rows, key)
            if steps:
                name = label if len(keys) == 1 else f"{label}: {key.replace('_', ' ')}"
                ax.plot(steps, values, style, color=f"C{colour}", label=name)
    _decorate(ax, title, "step")


def _staleness(rows: list[dict]) -> Counter:
    """How many samples were trained on at each policy-version lag, over all steps."""
    total = Counter()
    for row in rows:
        counts = row.get("staleness")
        if isinstance(counts, dict):
            total.update({int(lag): n for lag, n in counts.items() if lag.isdigit() and _number(n)})
    return total


def _staleness_figure(runs: dict[str, list[dict]]):
    """The histogram of lags, and beside it the samples dropped as too stale per step (where a run counts them)."""
    dropped = _present(runs, [DROPPED])
    figure, (ax, *rest) = _figure(1 + len(dropped))
    for panel, (title, keys) in zip(rest, dropped, strict=True):
        _line_panel(panel, runs, title, keys)
    width = 0.8 / len(runs)
    for colour, (label, rows) in enumerate(runs.items()):
        counts = _staleness(rows)
        offset = (colour - (len(runs) - 1) / 2) * width  # the runs' bars side by side around each lag
        if counts:
            ax.bar([lag + offset for lag in counts], list(counts.values()), width, color=f"C{colour}", label=label)
    _decorate(ax, "staleness of the samples trained on", "policy versions behind")
    return figure


def _decorate(ax, title: str, xlabel: str) -> None:
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.xaxis.get_major_locator().set_params(integer=True)  # steps and lags are whole numbers
    ax.grid(alpha=0.3)
    ax.legend()


def _save(figure, path: Path) -> Path:
    figure.savefig(path, dpi=100)
    return path
