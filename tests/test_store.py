"""The image store against a real engine: a tiny base -> python -> env -> instance tree built from nothing."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import tarfile
import uuid

import pytest

from repoforge.store import StoreError, disk_usage, format_usage, prune, remove_stale_containers, stale_containers


def _engine_answers() -> bool:
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return False


pytestmark = pytest.mark.skipif(not _engine_answers(), reason="no Docker engine answers `docker info` here")

MB = 1_000_000


def sh(*args: str, input: bytes | None = None) -> str:
    proc = subprocess.run(["docker", *args], input=input, capture_output=True)
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout.decode().strip()


def size(ref: str) -> int:
    return int(sh("image", "inspect", "--format", "{{.Size}}", ref))


def one_file_tar(name: str, nbytes: int) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = nbytes
        tar.addfile(info, io.BytesIO(os.urandom(nbytes)))
    return buffer.getvalue()


class Tree:
    """Images and containers of one test, all removed at the end."""

    def __init__(self):
        self.run = uuid.uuid4().hex[:12]
        self.marker = {"repoforge.test": self.run}  # inherited by every image committed on the base
        self.images: list[str] = []
        self.containers: list[str] = []

    def ref(self, name: str) -> str:
        return f"rf-store-test-{self.run}-{name}:t"

    def imported(self, name: str, nbytes: int, labels: list[str]) -> str:
        ref = self.ref(name)
        changes = [arg for label in labels for arg in ("--change", f"LABEL {label}")]
        sh("import", *changes, "-", ref, input=one_file_tar("payload", nbytes))
        self.images.append(ref)
        return ref

    def create(self, image: str, labels: dict[str, str] | None = None) -> str:
        flags = [arg for key, value in (labels or {}).items() for arg in ("--label", f"{key}={value}")]
        cid = sh("create", *flags, image, "x")
        self.containers.append(cid)
        return cid

    def layer(self, parent: str, name: str, nbytes: int, labels: list[str]) -> str:
        ref = self.ref(name)
        cid = self.create(parent)
        sh("cp", "-", f"{cid}:/", input=one_file_tar(f"{name}.bin", nbytes))
        sh("commit", *[arg for label in labels for arg in ("--change", f"LABEL {label}")], cid, ref)
        self.images.append(ref)
        sh("rm", cid)  # a stopped container still holds its image against `docker rmi`
        return ref

    def cleanup(self) -> None:
        for cid in self.containers:
            subprocess.run(["docker", "rm", "-f", cid], capture_output=True)
        for ref in reversed(self.images):
            subprocess.run(["docker", "rmi", "-f", ref], capture_output=True)


@pytest.fixture
def tree():
    made = Tree()
    try:
        yield made
    finally:
        made.cleanup()


FILES = {"py": 200_000, "py-idle": 50_000, "env-a": 300_000, "env-b": 700_000, "i1": 10_000, "i2": 20_000, "i3": 30_000}
PARENTS = {"py": "base", "py-idle": "base", "env-a": "py", "env-b": "py", "i1": "env-a", "i2": "env-a", "i3": "env-b"}


def labels_of(tree: Tree, name: str, parent: str) -> list[str]:
    kind = {"p": "python", "e": "env", "i": "instance"}[name[0]]
    own = {
        "python": [f"repoforge.python_source=host:/opt/{name}"],
        "env": [f"repoforge.fingerprint=f{name[-1]}"],
        "instance": [f"repoforge.instance_id={tree.run}-{name}"],
    }[kind]
    return [f"repoforge.kind={kind}", f"repoforge.parent={parent}", *own]


@pytest.fixture
def store(tree):
    """base (1 MB) -> py (200 kB) -> env-a (300 kB) -> i1, i2; py -> env-b (700 kB) -> i3; base -> py-idle."""
    refs = {"base": tree.imported("base", MB, ["repoforge.kind=base", f"repoforge.test={tree.run}"])}
    for name, parent in PARENTS.items():
        refs[name] = tree.layer(refs[parent], name, FILES[name], labels_of(tree, name, refs[parent]))
    return refs


def test_disk_usage_counts_shared_layers_once(tree, store):
    sizes = {name: size(ref) for name, ref in store.items()}
    own = {"base": sizes["base"], **{name: sizes[name] - sizes[parent] for name, parent in PARENTS.items()}}
    # overlay2 counts file bytes, so each layer adds exactly the file written into it
    assert sizes["base"] == MB
    assert {name: own[name] for name in FILES} == FILES

    usage = disk_usage(labels=tree.marker)
    by_ref = {image.ref: image for image in usage.images}
    assert set(by_ref) == set(store.values())
    for name, ref in store.items():
        assert (by_ref[ref].apparent_bytes, by_ref[ref].own_bytes) == (sizes[name], own[name]), name
    assert [by_ref[store[name]].kind for name in ("base", "py", "env-a", "i1")] == ["base", "python", "env", "instance"]
    assert by_ref[store["base"]].parent is None
    assert by_ref[store["py"]].parent == store["base"]
    assert by_ref[store["py"]].python_source == "host:/opt/py"
    assert by_ref[store["env-a"]].parent == store["py"]
    assert by_ref[store["i3"]].parent == store["env-b"]
    assert by_ref[store["i3"]].instance_id == f"{tree.run}-i3"
    assert by_ref[store["env-a"]].fingerprint == "fa"
    assert [image.kind for image in usage.images] == [
        "base",
        "python",
        "python",
        "env",
        "env",
        "instance",
        "instance",
        "instance",
    ]

    instances = ["i1", "i2", "i3"]
    assert usage.instances == 3
    assert usage.apparent_bytes == sum(sizes.values())
    assert usage.unique_bytes == MB + sum(FILES.values()) == sum(own.values())
    assert usage.full_image_per_instance_bytes == sum(sizes[name] for name in instances)
    assert usage.full_image_per_instance_bytes == 3 * (MB + 200_000) + 2 * 300_000 + 700_000 + 60_000
    assert usage.unique_bytes_per_instance == pytest.approx((MB + sum(FILES.values())) / 3)
    assert usage.by_kind == {"base": MB, "python": 250_000, "env": 1_000_000, "instance": 60_000}
    assert usage.apparent_bytes_per_instance == pytest.approx(sum(sizes[name] for name in instances) / 3)

    text = _render(format_usage(usage))
    assert store["i3"] in text and store["py"] in text and "unique bytes on disk" in text and "2.3 MB" in text


def test_missing_parent_counts_everything_as_own(tree, store):
    sh("rmi", store["i3"])  # so env-b's tag can go without -f
    sh("rmi", store["env-b"])
    tree.layer(store["base"], "orphan", 5_000, ["repoforge.kind=env", f"repoforge.parent={tree.ref('gone')}"])
    usage = disk_usage(labels=tree.marker)
    orphan = next(image for image in usage.images if image.ref == tree.ref("orphan"))
    assert orphan.own_bytes == orphan.apparent_bytes == MB + 5_000


def test_prune_after_lineage_keeps_what_kept_instances_stand_on(tree, store):
    """env-c is a layer over env-b (lineage): pruning env-b's own instance keeps env-b, and i4 still runs; once
    i4 goes too, the chain goes in one prune."""
    env_c = tree.layer(store["env-b"], "env-c", 40_000, labels_of(tree, "env-c", store["env-b"]))
    i4 = tree.layer(env_c, "i4", 4_000, labels_of(tree, "i4", env_c))

    result = prune(keep_instances={f"{tree.run}-i4"}, labels=tree.marker)

    assert sorted(result.images) == sorted([store["i1"], store["i2"], store["i3"], store["env-a"], store["py-idle"]])
    exported = subprocess.run(["docker", "export", tree.create(i4)], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(exported)) as files:  # its whole file system, every layer under it
        assert {"env-b.bin", "env-c.bin", "i4.bin", "py.bin", "payload"} <= set(files.getnames())
    sh("rm", tree.containers.pop())
    again = prune(keep_instances=set(), labels=tree.marker)
    assert again.images == [i4, env_c, store["env-b"], store["py"], store["base"]]


def test_prune_drops_one_envs_instances_then_the_env(tree, store):
    outsider = tree.imported("unlabeled", 1_000, [f"repoforge.test={tree.run}"])  # ours by marker, not by kind
    i1_user = tree.create(
        store["i1"],
        {"repoforge.kind": "sandbox", "repoforge.pid": str(dead_pid()), "repoforge.host": socket.gethostname()},
    )
    gone = ("i1", "i2", "env-a", "py-idle")
    expected_freed = sum(size(store[name]) - size(store[PARENTS[name]]) for name in gone)

    result = prune(keep_instances={f"{tree.run}-i3"}, labels=tree.marker)

    assert i1_user in result.containers  # its stale container would have kept i1 in use
    # py stays while env-b stands on it; py-idle has no environment on it
    assert sorted(result.images) == sorted(store[name] for name in gone)
    assert result.freed_bytes == expected_freed == 30_000 + 300_000 + 50_000
    left = {image.ref for image in disk_usage(labels=tree.marker).images}
    assert left == {store["base"], store["py"], store["env-b"], store["i3"]}
    assert size(outsider) == 1_000

    # With i3 gone too, env-b, then its Python, then the base have nothing on them.
    again = prune(keep_instances=set(), labels=tree.marker)
    assert again.images == [store["i3"], store["env-b"], store["py"], store["base"]]
    assert size(outsider) == 1_000


def test_prune_keeps_images_a_live_container_uses(tree, store):
    tree.create(
        store["i2"],
        {"repoforge.kind": "sandbox", "repoforge.pid": str(os.getpid()), "repoforge.host": socket.gethostname()},
    )
    result = prune(keep_instances=set(), labels=tree.marker)
    # i2 holds env-a, py and the base
    assert sorted(result.images) == sorted([store["i1"], store["i3"], store["env-b"], store["py-idle"]])


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_stale_containers_are_those_whose_owner_died(tree, store):
    host = socket.gethostname()
    dead = tree.create(
        store["base"], {"repoforge.kind": "sandbox", "repoforge.pid": str(dead_pid()), "repoforge.host": host}
    )
    dead_build = tree.create(
        store["base"], {"repoforge.kind": "build", "repoforge.pid": str(dead_pid()), "repoforge.host": host}
    )
    live = tree.create(
        store["base"], {"repoforge.kind": "sandbox", "repoforge.pid": str(os.getpid()), "repoforge.host": host}
    )
    elsewhere = tree.create(
        store["base"], {"repoforge.kind": "sandbox", "repoforge.pid": str(dead_pid()), "repoforge.host": f"not-{host}"}
    )
    other_kind = tree.create(
        store["base"], {"repoforge.kind": "instance", "repoforge.pid": str(dead_pid()), "repoforge.host": host}
    )

    stale = stale_containers()
    assert dead in stale and dead_build in stale
    assert not {live, elsewhere, other_kind} & set(stale)

    removed = remove_stale_containers()
    assert dead in removed and dead_build in removed
    remaining = set(sh("ps", "-a", "--no-trunc", "--format", "{{.ID}}").split())
    assert dead not in remaining and dead_build not in remaining
    assert {live, elsewhere, other_kind} <= remaining


def test_missing_docker_is_a_clear_error(tmp_path):
    with pytest.raises(StoreError, match="not installed"):
        disk_usage(docker=str(tmp_path / "no-docker"))
    fake = tmp_path / "docker"
    fake.write_text("#!/bin/sh\necho 'Cannot connect to the Docker daemon' >&2\nexit 1\n")
    fake.chmod(0o755)
    with pytest.raises(StoreError, match="no Docker engine answers.*Cannot connect"):
        stale_containers(docker=str(fake))
    with pytest.raises(StoreError, match="no Docker engine answers"):
        prune(docker=str(fake))


def _render(table) -> str:
    from rich.console import Console

    console = Console(width=200, record=True, file=io.StringIO())
    console.print(table)
    return console.export_text()
