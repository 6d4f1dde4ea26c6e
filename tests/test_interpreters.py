"""Where the docker backend's interpreters come from (real uv, the host's real interpreters), and what of
an installation goes into its image. No engine needed: test_docker.py builds the images."""

from __future__ import annotations

import os
import shutil
import tarfile
import time
from pathlib import Path

import pytest

from repoforge.env.python import available_pythons, inspect_interpreter
from repoforge.sandbox import interpreters
from repoforge.sandbox.interpreters import PythonSource, dropped_by, pack, python_source, stripping

HOST_38 = inspect_interpreter(available_pythons()["3.8"]) if "3.8" in available_pythons() else None
needs_host_38 = pytest.mark.skipif(
    HOST_38 is None or HOST_38.prefix == "/usr", reason="no self-contained Python 3.8 installation on this host"
)


@pytest.fixture
def uv_installs(tmp_path, monkeypatch):
    """uv's managed installations live in an empty folder; its download host refuses connections."""
    folder = tmp_path / "uv-pythons"
    folder.mkdir()
    monkeypatch.setenv("UV_PYTHON_INSTALL_DIR", str(folder))
    monkeypatch.setenv("UV_PYTHON_INSTALL_MIRROR", "http://127.0.0.1:9")
    for cached in (interpreters.uv_source, interpreters.python_source):
        cached.cache_clear()
    yield folder
    for cached in (interpreters.uv_source, interpreters.python_source):
        cached.cache_clear()


@needs_host_38
def test_unreachable_downloads_fall_through_to_the_hosts_installation_at_once(uv_installs):
    start = time.monotonic()
    source = python_source("3.8")
    assert time.monotonic() - start < 10
    assert source == PythonSource(
        version="3.8", kind="host", origin=HOST_38.prefix, prefix=HOST_38.prefix, build=HOST_38.build
    )
    assert source.label == f"host:{HOST_38.prefix}" == HOST_38.origin  # as the process backend records it
    assert not list(uv_installs.glob("cpython-*"))


@needs_host_38
def test_a_uv_managed_build_is_preferred_and_moves_to_opt_python(uv_installs):
    # A managed installation as uv lays it out; its interpreter runs the host's standard library.
    managed = uv_installs / "cpython-3.8.18-linux-x86_64-gnu"
    (managed / "bin").mkdir(parents=True)
    (managed / "lib").mkdir()
    shutil.copy2(Path(HOST_38.prefix, "bin", "python3.8"), managed / "bin" / "python3.8")
    (managed / "lib" / "python3.8").symlink_to(Path(HOST_38.prefix, "lib", "python3.8"))
    source = python_source("3.8")
    assert (source.kind, source.origin, source.prefix) == ("uv", str(managed), "/opt/python/" + managed.name)
    assert (source.label, source.interpreter) == (f"uv:{managed.name}", f"/opt/python/{managed.name}/bin/python3.8")


def test_debian_is_the_last_resort_and_only_for_its_suites_versions():
    assert interpreters.debian_source("3.9").label == "debian:bullseye"
    assert interpreters.debian_source("3.9").interpreter == "/usr/bin/python3.9"
    assert interpreters.debian_source("3.8") is None


def test_a_copy_leaves_out_what_no_environment_uses(tmp_path):
    kept = [
        "bin/python3.8",
        "bin/python3.8-config",
        "include/python3.8/Python.h",
        "lib/libpython3.8.so.1.0",
        "lib/python3.8/os.py",
        "lib/python3.8/unittest/case.py",
        "lib/python3.8/lib-dynload/_ssl.so",
        "lib/python3.8/config-3.8-x86_64-linux-gnu/Makefile",
        "lib/python3.8/__pycache__/os.cpython-38.pyc",
    ]
    dropped = {
        "lib/python3.8/test/test_os.py": "test suites",
        "lib/python3.8/unittest/test/t.py": "test suites",
        "lib/python3.8/idlelib/idle.py": "IDLE, Tk and turtle",
        "lib/python3.8/lib-dynload/_tkinter.cpython-38-x86_64-linux-gnu.so": "IDLE, Tk and turtle",
        "lib/tcl8.6/init.tcl": "IDLE, Tk and turtle",
        "lib/libtk8.6.so": "IDLE, Tk and turtle",
        "lib/python3.8/config-3.8-x86_64-linux-gnu/libpython3.8.a": "static libraries",
        "lib/python3.8/site-packages/pip/__init__.py": "installed packages and their scripts",
        "bin/pip3": "installed packages and their scripts",
        "share/man/man1/python3.8.1": "manual pages",
        "lib/python3.8/__pycache__/os.cpython-38.opt-1.pyc": "bytecode for -O and -OO (tests run without them)",
    }
    assert [path for path in kept if dropped_by(path)] == []
    assert {path: dropped_by(path) for path in dropped} == dropped

    installation = tmp_path / "py"
    for path in [*kept, *dropped]:
        (installation / path).parent.mkdir(parents=True, exist_ok=True)
        (installation / path).write_text(path)
    source = PythonSource(version="3.8", kind="host", origin=str(installation), prefix="/opt/py", build="b")
    pack(source, tmp_path / "py.tar")
    with tarfile.open(tmp_path / "py.tar") as tar:
        members = {member.name: member for member in tar.getmembers()}
    files = sorted(name for name, member in members.items() if not member.isdir())
    assert files == sorted([f"opt/py/{path}" for path in kept] + ["usr/local/bin/python3.8"])
    assert "opt/py/lib/python3.8/site-packages" in members  # emptied, not gone
    assert members["usr/local/bin/python3.8"].linkname == "/opt/py/bin/python3.8"


@pytest.mark.skipif(not stripping(), reason="no strip (binutils) on this host")
def test_a_copy_strips_shared_libraries_of_their_debug_sections(tmp_path):
    """A copied interpreter's libpython and extension modules lose their debug sections and nothing else; other
    files, a hard link among them, go in as they are."""
    found = [inspect_interpreter(path) for path in available_pythons().values()]
    prefixes = [Path(f.prefix) for f in found if f and f.prefix not in interpreters.SYSTEM_PREFIXES]
    library = next((lib for prefix in prefixes for lib in prefix.glob("lib/libpython3*.so.1.0")), None)
    if library is None or b".debug_info" not in library.read_bytes():
        pytest.skip("no host libpython with debug sections to copy")
    installation = tmp_path / "py"
    (installation / "lib").mkdir(parents=True)
    (installation / "bin").mkdir()
    shutil.copy(library, installation / "lib" / library.name)
    (installation / "bin" / "python3.8").write_text("interpreter")
    os.link(installation / "bin" / "python3.8", installation / "bin" / "python3.8m")
    source = PythonSource(version="3.8", kind="host", origin=str(installation), prefix="/opt/py", build="b")
    pack(source, tmp_path / "py.tar")
    with tarfile.open(tmp_path / "py.tar") as tar:
        copied = tar.extractfile(f"opt/py/lib/{library.name}").read()
        tar.extractall(tmp_path / "out", filter="tar")
    assert copied[:4] == b"\x7fELF" and b".debug_info" not in copied and b".dynsym" in copied
    assert len(copied) < library.stat().st_size / 2
    assert (tmp_path / "out/opt/py/bin/python3.8m").read_text() == "interpreter"
