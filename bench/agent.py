"""The agent's cost outside the model: seconds of sandbox work per step on each backend, and rollouts per minute
with a replaying model (a recorded fix, served over the OpenAI API on loopback) at 1 and at 2 workers, in one run.

    .venv/bin/python bench/agent.py [--rollouts 12] [--backends process,docker] [--store DIR]

The workload: the bundled example forged, then its add() fix replayed (look around, read, edit, run the test,
finish: 6 steps) as `repoforge agent run` does it, every rollout a Ray task; ungraded, so that only the agent runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "examples"), str(ROOT / "tests")]

import calcpkg  # noqa: E402
from openai_double import call, double_model, openai_double, replaying  # noqa: E402

from repoforge.agent.config import load_config  # noqa: E402
from repoforge.agent.run import AgentRunOptions, run_agent  # noqa: E402
from repoforge.forge import ForgeOptions, default_store, forge  # noqa: E402
from repoforge.harness.dataset import load_dataset  # noqa: E402
from repoforge.harness.evaluate import EvalOptions, environment  # noqa: E402
from repoforge.sandbox import get_backend  # noqa: E402

CALC = "src/calcpkg/calc.py"
SCRIPT = [
    call("execute_bash", command="ls && git status --short"),
    call("execute_bash", command="grep -rn 'def add' src"),
    call("str_replace_editor", command="view", path=CALC),
    call("str_replace_editor", command="str_replace", path=CALC, old_str="return a - b", new_str="return a + b"),
    call("execute_bash", command="python -c 'from calcpkg.calc import add; print(add(2, 3))'"),
    call("finish"),
]


def rollouts(row, backend: str, samples: int, workers: int, store: Path, mirror: Path, url: str, out: Path):
    """`samples` rollouts of the script on `row`; (wall seconds, their trajectories)."""
    opts = AgentRunOptions(
        out=out,
        model=double_model(url),
        config=load_config(),
        eval=EvalOptions(run_id="bench", store=store, repo_mirror=mirror, sandbox=backend),
        samples=samples,
        evaluate=False,
    )
    started = time.monotonic()
    run_agent([row], opts, workers, None)
    seconds = time.monotonic() - started
    found = [json.loads(p.read_text()) for p in sorted((out / "trajectories").glob("*/*.json"))]
    assert len(found) == samples and all(t["exit_reason"] == "submitted" for t in found), "a rollout went wrong"
    return seconds, found


def bare_exec_seconds(row, backend: str, store: Path, mirror: Path) -> float:
    """The floor of one tool call: the median of `true` run in the instance's sandbox, 10 times."""
    opts = EvalOptions(run_id="bench", store=store, repo_mirror=mirror, sandbox=backend)
    sandboxes = get_backend(backend)
    repo, _, env_ref = environment(row, opts, sandboxes, [])
    sandbox = sandboxes.instance_sandbox(repo, row.base_commit, env_ref, row.instance_id, store / "work")
    try:
        return statistics.median(sandbox.exec("true", timeout=60).seconds for _ in range(10))
    finally:
        sandbox.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rollouts", type=int, default=12, help="rollouts per run")
    parser.add_argument("--backends", default="process,docker")
    parser.add_argument("--store", type=Path, default=None, help="environments (built on first use)")
    args = parser.parse_args()
    store = (args.store or default_store()).resolve()
    tmp = Path(tempfile.mkdtemp(prefix="bench-agent-"))
    repo = calcpkg.build(tmp / "mirror" / "example__calcpkg")
    forge([str(repo.path)], ForgeOptions(out=tmp / "forged", store=store, timeout=30, sandbox="process"))
    rows, _ = load_dataset(tmp / "forged" / "instances.jsonl")
    row = next(r for r in rows if "difference" in r.problem_statement)
    results = {}
    with openai_double(replaying(SCRIPT)) as (url, _):
        for backend in args.backends.split(","):
            # Builds what it needs, and starts both Ray workers: neither is timed.
            rollouts(row, backend, 2, 2, store, tmp / "mirror", url, tmp / f"warm-{backend}")
            floor = round(bare_exec_seconds(row, backend, store, tmp / "mirror"), 3)
            for workers in (1, 2):
                out = tmp / f"{backend}-{workers}"
                seconds, found = rollouts(row, backend, args.rollouts, workers, store, tmp / "mirror", url, out)
                steps = [step["sandbox_seconds"] for t in found for step in t["steps"]]
                results[f"{backend}, {workers} worker{'s' if workers > 1 else ''}"] = {
                    "rollouts per minute": round(60 * args.rollouts / seconds, 1),
                    "sandbox s per step (median)": round(statistics.median(steps), 3),
                    "sandbox s per step (mean)": round(statistics.mean(steps), 3),
                    "sandbox start s (median)": round(statistics.median(t["seconds"]["setup"] for t in found), 2),
                    "bare exec s (median)": floor,
                    "steps": len(steps),
                }
    print(json.dumps(results, indent=2))
    (tmp / "bench-agent.json").write_text(json.dumps(results, indent=2))
    print(f"results: {tmp / 'bench-agent.json'}")


if __name__ == "__main__":
    main()
