"""The Ray runner against a real local Ray and a real two-node cluster on loopback."""

import socket
import sys
import time

import pytest
import ray
import ray.cloudpickle
from conftest import wait_for

from repoforge.runner import DOCKER_SLOT, SLOT, RunnerError, run_items, start_ray
from repoforge.sandbox.docker import engine_answers

# Ray workers cannot import this test module (tests/ is not a package), so ship its functions by value.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


def square_or_fail(n: int) -> int:
    if n == 3:
        raise ValueError("three is bad")
    return n * n


def nap(n: int) -> dict:
    start = time.time()
    time.sleep(1)
    return {"start": start, "end": time.time(), "node": ray.get_runtime_context().get_node_id()}


def overlaps(spans: list[dict]) -> bool:
    spans = sorted(spans, key=lambda s: s["start"])
    return any(b["start"] < a["end"] for a, b in zip(spans, spans[1:], strict=False))


@pytest.fixture(scope="module")
def local_ray():
    ray.shutdown()
    start_ray(workers=2)
    yield
    ray.shutdown()


def test_results_keyed_and_one_failure_does_not_stop_others(local_ray):
    seen = {}
    results = run_items(
        square_or_fail,
        [1, 2, 3, 4],
        key=str,
        label="square",
        on_done=lambda item, outcome: seen.setdefault(item, outcome),
    )
    assert set(results) == {"1", "2", "3", "4"}
    assert [results[k] for k in ("1", "2", "4")] == [1, 4, 16]
    assert isinstance(results["3"], ValueError) and "three is bad" in str(results["3"])
    assert set(seen) == {1, 2, 3, 4} and seen[2] == 4


def test_workers_one_is_serial_and_two_overlap(local_ray):
    serial = run_items(nap, [1, 2, 3], key=str, workers=1)
    assert not overlaps(list(serial.values()))
    parallel = run_items(nap, [1, 2, 3, 4], key=str, workers=2)
    assert overlaps(list(parallel.values()))


def test_docker_items_need_a_node_with_a_docker_engine():
    ray.shutdown()
    ray.init(num_cpus=1, resources={SLOT: 1}, include_dashboard=False)  # a node that declares no engine
    try:
        with pytest.raises(RunnerError, match=f"no node of the Ray cluster offers {DOCKER_SLOT}"):
            run_items(nap, [1], key=str, docker=True)
        assert run_items(nap, [1], key=str)["1"]["end"] > 0
    finally:
        ray.shutdown()


def test_unreachable_address_fails_fast():
    ray.shutdown()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nobody listens here once the socket closes
    with pytest.raises(RunnerError, match="no Ray cluster answers"):
        start_ray(f"127.0.0.1:{port}")


def test_two_node_cluster_spreads_items(two_node_cluster):
    start_ray(two_node_cluster)
    wait_for(lambda: ray.cluster_resources().get(SLOT) == 2, "second node")
    # `repoforge node start` declared each node's Docker engine, as many container slots as slots
    assert ray.cluster_resources().get(DOCKER_SLOT) == (2 if engine_answers() else None)
    results = run_items(
        nap, [1, 2, 3, 4], key=str, workers=2, ray_address=two_node_cluster, label="cluster", docker=engine_answers()
    )
    assert len({r["node"] for r in results.values()}) == 2
    assert overlaps(list(results.values()))
