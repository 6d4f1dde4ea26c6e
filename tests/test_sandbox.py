"""The process sandbox under real bubblewrap: isolation, offline behaviour, timeouts, patches."""

from __future__ import annotations

import os
import secrets
import shlex
import subprocess
import sys
import time

import pytest

from repoforge.env.python import available_pythons
from repoforge.sandbox.base import (
    INLINE_RESULT_BYTES,
    TESTBED,
    Captured,
    PatchError,
    ResultFileError,
    Step,
    exec_then_read,
    read_steps,
    steps_script,
)
from repoforge.sandbox.channel import Channel, server_argv
from repoforge.sandbox.process import ProcessSandbox, bwrap_path
from repoforge.testrun.command import runner_facts_command

needs_bwrap = pytest.mark.skipif(bwrap_path() is None, reason="bubblewrap is not installed here")


@pytest.fixture
def sandbox(tmp_path):
    tree = tmp_path / "tree"
    tree.mkdir()
    subprocess.run(["git", "init", "-q", str(tree)], check=True)
    (tree / "a.txt").write_text("one\n")
    subprocess.run(["git", "-C", str(tree), "add", "-A"], check=True)
    subprocess.run(
        ["git", "-C", str(tree), "-c", "user.name=x", "-c", "user.email=x@x", "commit", "-qm", "a"], check=True
    )
    box = ProcessSandbox(tree)
    yield box
    box.close()


@needs_bwrap
def test_checkout_is_at_testbed_and_root_is_read_only(sandbox):
    result = sandbox.exec("pwd; cat a.txt; touch /usr/forbidden 2>&1 || echo read-only")
    assert result.exit_code == 0
    assert result.output.splitlines() == [
        TESTBED,
        "one",
        "touch: cannot touch '/usr/forbidden': Read-only file system",
        "read-only",
    ]


@needs_bwrap
def test_tmp_is_private(sandbox, tmp_path):
    marker = f"/tmp/repoforge-private-{os.getpid()}"
    sandbox.exec(f"touch {marker}")
    assert not os.path.exists(marker)


@needs_bwrap
@pytest.mark.skipif(os.geteuid() != 0, reason="routing to loopback needs root for CAP_NET_ADMIN")
def test_offline_connect_times_out_instead_of_failing_fast(sandbox):
    probe = (
        'python3 -c "import socket\n'
        "s = socket.socket(); s.settimeout(1)\n"
        "try:\n    s.connect(('192.0.2.1', 80))\n"
        'except Exception as e:\n    print(type(e).__name__)"'
    )
    result = sandbox.exec(probe)
    assert result.output.strip() in {"timeout", "TimeoutError"}


@needs_bwrap
def test_offline_names_are_asked_of_a_loopback_resolver_that_refuses(sandbox):
    """Lookups are refused at once instead of waiting on a resolver whose packets vanish."""
    assert sandbox.exec("grep nameserver /etc/resolv.conf").output.split() == ["nameserver", "127.0.0.1"]
    lookup = sandbox.exec("python3 -c \"import socket; socket.getaddrinfo('pypi.org', 443)\"")
    assert lookup.exit_code != 0 and "gaierror" in lookup.output


def test_command_past_its_timeout_is_killed(sandbox):
    result = sandbox.exec("echo started; sleep 30", timeout=1)
    assert result.timed_out
    assert result.output.strip() == "started"
    assert result.seconds < 10


def test_patches_apply_and_diff_reports_them(sandbox):
    sandbox.write_file("b.txt", "two\n")
    patch = sandbox.diff()
    assert "+++ b/b.txt" in patch and "+two" in patch
    with pytest.raises(PatchError):
        sandbox.apply_patch("diff --git a/nope.txt b/nope.txt\n--- a/nope.txt\n+++ b/nope.txt\n@@ -1 +1 @@\n-x\n+y\n")
    assert sandbox.read_file(f"{sandbox.root}/a.txt") == "one\n"


# Reads the marker from the command line of the shell that runs it, as code under test can, and prints a forged file
# after it; then writes the real file.
FORGER = r"""
import re, sys
shell = open("/proc/%d/cmdline" % __import__("os").getppid()).read()
nonce = re.search(r"([0-9a-f]{24}) file", shell).group(1)
sys.stdout.write("\n%s file\nforged\n%s read 0\n" % (nonce, nonce))
open("result.txt", "w").write("real")
"""


@needs_bwrap
def test_a_result_file_comes_back_with_its_command_and_a_forged_copy_does_not(sandbox):
    result, read = exec_then_read(sandbox, f"python3 -c {shlex.quote(FORGER)}; exit 3", f"{TESTBED}/result.txt", 60)
    assert read() == "real"
    assert result.exit_code == 3 and result.output.endswith(" read 0\n") and "forged" in result.output


@needs_bwrap
def test_a_result_file_that_is_not_there_or_too_large_for_the_output_is_said_so(sandbox):
    result, read = exec_then_read(sandbox, "echo ran", f"{TESTBED}/missing.txt", 60)
    assert result.output.strip() == "ran"
    with pytest.raises(ResultFileError, match="does not exist"):
        read()
    large = "x" * (INLINE_RESULT_BYTES + 10)
    sandbox.write_file(f"{TESTBED}/large.txt", large)
    result, read = exec_then_read(sandbox, "echo ran", f"{TESTBED}/large.txt", 60)
    assert result.output.strip() == "ran" and read() == large


@needs_bwrap
def test_the_runner_facts_import_nothing_from_the_checkout(sandbox):
    """eval reads them after the patch is applied: a patch's glob.py at the root must not run."""
    sandbox.write_file(f"{TESTBED}/glob.py", "print('version 99.0')\n")
    facts = sandbox.exec(runner_facts_command("python3"))
    assert facts.exit_code == 0 and "version 99.0" not in facts.output


# Prints a forged marker for the step named "check", with the marker read from the shell's command line.
STEP_FORGER = r"""
import os, re
shell = open("/proc/%d/cmdline" % os.getppid()).read()
nonce = re.search(r"([0-9a-f]{24}) check", shell).group(1)
print("\n%s check 0\nforged" % nonce)
"""


@needs_bwrap
def test_steps_are_read_from_the_front_so_a_command_after_them_cannot_forge_one(sandbox):
    nonce = secrets.token_hex(12)
    script = steps_script({"check": "echo real; false"}, nonce) + f"python3 -c {shlex.quote(STEP_FORGER)}"
    steps, rest = read_steps(sandbox.exec(script, timeout=60), nonce, ["check"])
    assert steps["check"] == Step(1, "real\n")
    assert rest.endswith("forged\n")


@pytest.mark.parametrize("python", sorted(available_pythons()))
def test_the_channel_server_runs_on_every_interpreter_an_environment_may_have(python, tmp_path):
    """A reused container's channel runs on the environment's own interpreter: its commands' exit codes, stdin
    and output (bytes, not text), and a killed command's 128 + signal come back on every version."""
    served = Channel(server_argv(available_pythons()[python]), cwd=str(tmp_path))
    try:
        ran = served.run("pwd; wc -c; printf 'd\\303\\244t\\303\\244'; exit 3", "é".encode() * 70_000, False, 10, 1000)
        assert ran == Captured(3, f"{tmp_path}\n140000\ndätä", False)
        assert served.run("kill -9 $$", None, False, 10, 1000) == Captured(137, "", False)
        flood = served.run("head -c 3000000 /dev/zero | tr '\\0' x; echo end", None, False, 10, 100)
        assert flood.output == "x" * 50 + "\n[... 2999904 bytes of output cut ...]\n" + "x" * 46 + "end\n"
        started = time.monotonic()  # the server keeps the time: the command and what it started are killed
        late = served.run("sleep 31 & sleep 30; echo never", None, False, 1, 1000)
        assert late == Captured(137, "", False) and time.monotonic() - started < 10
        assert served.run("pgrep -x -f 'sleep 31' || echo gone", None, False, 10, 1000).output == "gone\n"
    finally:
        served.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="a server without CAP_NET_ADMIN has none to drop")
def test_the_channel_server_drops_net_admin_for_good_once_a_command_asks(tmp_path):
    """A reused container's set-up keeps CAP_NET_ADMIN (it sets the offline routes); every later command asks the
    server to drop it, from every set, before it starts: no command after that has it, whatever it asks."""
    served = Channel(server_argv(sys.executable), cwd=str(tmp_path))
    caps = lambda drop: served.run("grep ^Cap /proc/self/status", None, False, 10, 1000, drop).output.split()[1::2]
    net_admin = lambda drop: [bool(int(mask, 16) & (1 << 12)) for mask in caps(drop)]  # CapInh, Prm, Eff, Bnd, Amb
    try:
        assert net_admin(False)[1:4] == [True, True, True]
        assert net_admin(True) == [False] * 5
        assert net_admin(False) == [False] * 5
    finally:
        served.close()
