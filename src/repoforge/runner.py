"""Run independent per-instance items as Ray tasks, locally or on a Ray cluster.

Each item needs one SLOT, a custom resource every node declares for the number of items it may run at
once; an item whose sandboxes are containers also needs a DOCKER_SLOT, which only nodes with a Docker
engine declare (`repoforge node start` declares both). CPU is requested only nominally so it never
bounds the work, which is mostly waiting on subprocesses and containers.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from itertools import islice
from typing import Any

import ray
from ray.exceptions import RayTaskError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

SLOT = "repoforge_slot"
DOCKER_SLOT = "repoforge_docker_slot"

console = Console(stderr=True, soft_wrap=True)


class RunnerError(RuntimeError):
    pass


def _check_reachable(address: str) -> None:
    """ray.init waits a very long time on an address nobody listens on; fail fast instead."""
    if address == "auto" or address.startswith("ray://"):
        return
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=5).close()
    except (OSError, ValueError) as exc:
        raise RunnerError(f"no Ray cluster answers at {address}: {exc}") from exc


def node_resources(slots: int) -> dict[str, float]:
    """What this node offers: `slots` items at once, as many of them in containers if a Docker engine answers."""
    from repoforge.sandbox.docker import engine_answers

    return {SLOT: slots, **({DOCKER_SLOT: slots} if engine_answers() else {})}


def start_ray(address: str | None = None, workers: int = 2) -> None:
    """Start a local Ray with `workers` slots, or connect to the cluster at `address`; no-op if Ray is up."""
    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a loopback/private cluster; no token prompt
    quiet = dict(log_to_driver=False, logging_level=logging.WARNING)
    try:
        if address is None:
            ray.init(
                num_cpus=max(workers, os.cpu_count() or 1),
                resources=node_resources(workers),
                include_dashboard=False,
                **quiet,
            )
        else:
            _check_reachable(address)
            ray.init(address=address, **quiet)
    except RunnerError:
        raise
    except Exception as exc:
        raise RunnerError(f"cannot start Ray ({address or 'local'}): {type(exc).__name__}: {exc}") from exc


@ray.remote
def _call(fn: Callable[[Any], Any], item: Any) -> Any:
    return fn(item)


def _outcome(ref: ray.ObjectRef) -> Any:
    """The task's result, or the exception it raised (unwrapped from Ray's wrapper when possible)."""
    try:
        return ray.get(ref)
    except RayTaskError as exc:
        return exc.cause if isinstance(exc.cause, BaseException) else exc
    except Exception as exc:  # the worker or node died: report it as this item's outcome
        return exc


def run_items(
    fn: Callable[[Any], Any],
    items: list,
    *,
    key: Callable[[Any], str],
    workers: int = 2,
    ray_address: str | None = None,
    label: str = "",
    docker: bool = False,
    on_done: Callable[[Any, Any], None] | None = None,
    status: Callable[[], str] | None = None,
) -> dict[str, object]:
    """Run fn(item) for every item; return {key(item): result or the exception it raised}.

    At most `workers` items are in flight (so workers=1 is strictly serial even on a Ray started with
    more slots, and a driver crash loses at most `workers` items); on a cluster pass the total number of
    slots. `docker` items run only on nodes with a Docker engine. Items are submitted in the given order.
    on_done runs in the driver as each item finishes; status(), when given, then describes the run on the bar.
    """
    start_ray(ray_address, workers)
    needs = {SLOT: 1, **({DOCKER_SLOT: 1} if docker else {})}
    if missing := [name for name in needs if not ray.cluster_resources().get(name)]:
        raise RunnerError(
            f"no node of the Ray cluster offers {', '.join(missing)}; start nodes with "
            "`repoforge node start` (on a machine with a Docker engine for Docker sandboxes)"
        )
    task = _call.options(num_cpus=0.01, resources=needs)
    pending = iter(items)
    in_flight: dict[ray.ObjectRef, Any] = {}
    results: dict[str, object] = {}
    columns = [
        TextColumn(f"[bold]{label}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
    ]
    with Progress(*columns, console=console) as progress:
        bar = progress.add_task("", total=len(items))
        while True:
            for item in islice(pending, workers - len(in_flight)):
                in_flight[task.remote(fn, item)] = item
            if not in_flight:
                return results
            [ref], _ = ray.wait(list(in_flight), num_returns=1)
            item = in_flight.pop(ref)
            outcome = results[key(item)] = _outcome(ref)
            if on_done:
                on_done(item, outcome)
            progress.update(bar, advance=1, description=status() if status else key(item))


def run_each(
    fn: Callable[[Any], Any],
    items: list,
    failed: Callable[[Any, BaseException], Any],
    *,
    key: Callable[[Any], str],
    **options,
) -> list:
    """fn(item) for every item, in their order (see run_items for the options); an item whose task raised, or was
    lost with its worker, gives failed(item, exception). No items: Ray is not started for nothing."""
    if not items:
        return []
    outcomes = run_items(fn, items, key=key, **options)
    return [
        failed(item, outcome) if isinstance(outcome, BaseException) else outcome
        for item, outcome in ((item, outcomes[key(item)]) for item in items)
    ]
