"""The checkout under a model's patch: applied in the sandbox, judged from the tree, put back where the patch
touched the test machinery.

Every command here runs inside the sandbox with neutral git (sandbox/base.py), batched into two sandbox commands:
one applies the patch and lists what changed, one puts back what must be, applies the test_patch and prepares the
run. What changed is read from the tree (tracked, untracked and ignored files alike), never from the patch's
text: a plain ---/+++ section, or a file written through a symlink, changes the tree all the same.
"""

from __future__ import annotations

import base64
import dataclasses
import posixpath
import secrets
import shlex
import tomllib
from collections.abc import Callable
from typing import NamedTuple

from repoforge.harness.patchtext import COMPILED, PatchRefused, check
from repoforge.mine import is_test_path
from repoforge.sandbox.base import (
    PATCH_FILE,
    RESTORE_GENERATED,
    ExecResult,
    Sandbox,
    Step,
    Then,
    exec_then_read,
    read_steps,
    run_steps,
    steps_script,
)
from repoforge.testrun.command import RUNNER_MODULES

MODEL_PATCH = ".git/repoforge-model.patch"  # in the repository, outside its working tree
# SWE-bench's fallback chain, the tree reset before each retry. patch is the last: it alone could write where git
# refuses to, so nothing runs after it but the checks below (and no git at all if .git changed).
APPLY_CHAIN = [
    f"git apply --verbose {MODEL_PATCH}",
    f"git apply --verbose --3way {MODEL_PATCH}",
    f"git apply --verbose --reject {MODEL_PATCH}",
    f"patch --batch --forward --fuzz=5 -p1 -i {MODEL_PATCH}",
]
RESET = "git reset -q --hard HEAD && git clean -qfd"
_APPLY = " || ".join(
    f"{{ {RESET + '; ' if i else ''}echo '$ {command}'; {command}; }}" for i, command in enumerate(APPLY_CHAIN)
)
# .git as far as it decides what git does (configuration, hooks, attributes, refs, HEAD): listed with modes and
# hashed, before and after the patch. The object store, index and logs change as git works; they decide nothing.
_GIT_STATE = (
    r"find .git \( -path .git/objects -o -path .git/logs -o -path .git/index -o -path .git/ORIG_HEAD "
    r"-o -path '.git/repoforge*' \) -prune -o -printf '%y %m %p %l\n' -type f -exec sha1sum {} + | sort"
)
# Every path that differs from the base commit: tracked ones changed or deleted, untracked and ignored ones.
_STATUS = "GIT_OPTIONAL_LOCKS=0 git status --porcelain=v1 -z --untracked-files=all --ignored=traditional --no-renames"

# What the test run loads besides the tests: its configuration, code Python runs at start-up, plugin entry points,
# bytecode, git's attributes (how the restore step itself checks files out).
RUNNER_CONFIGS = {"pytest.ini", ".pytest.ini", "pytest.toml", ".pytest.toml"}
SHARED_CONFIGS = {"setup.cfg", "tox.ini", "pyproject.toml"}  # put back when their pytest part changed
STARTUP = {"sitecustomize.py", "usercustomize.py"}

# Each changed path as S and git status's entry (XY <path>), then L<path> <target> for a symlink (F<path> if it
# leads to a folder) and C<path> <text now> <base text> for a shared configuration file.
_CHANGES = (
    _STATUS
    + r""" | while IFS= read -r -d '' entry; do
  path=${entry:3}; printf 'S%s\0' "$entry"
  if [ -L "$path" ]; then
    printf 'L%s\0%s\0' "$path" "$(readlink -- "$path")"; [ -d "$path" ] && printf 'F%s\0' "$path"
  fi
  case ${path##*/} in SHARED_CONFIGS)
    printf 'C%s\0%s\0%s\0' "$path" "$(base64 -w0 -- "$path" 2>/dev/null)" \
      "$(git show "HEAD:$path" 2>/dev/null | base64 -w0)";;
  esac
done""".replace("SHARED_CONFIGS", "|".join(sorted(SHARED_CONFIGS)))
)


def test_machinery(path: str) -> bool:
    """Whether a path belongs to how the tests run rather than to the code under test."""
    *folders, name = path.split("/")
    return (
        is_test_path(path)
        or name in RUNNER_CONFIGS | STARTUP | {".gitattributes", "entry_points.txt"}
        or name.endswith((".pth", *COMPILED))
        or any(f == "__pycache__" or f.endswith((".dist-info", ".egg-info")) for f in folders)
    )


class Changes(NamedTuple):
    paths: set[str]  # every file the patch created, changed or deleted
    tracked: set[str]  # those of them the base commit has
    configs: dict[str, tuple[str | None, str | None]]  # shared configuration file -> (base text, text now)


def apply_model_patch(sandbox: Sandbox, patch: str, log: list[str]) -> Changes | None:
    """Apply a model's patch as SWE-bench does, refusing (PatchRefused) what no fix needs; None: it does not apply."""
    named = check(patch)
    steps = run_steps(
        sandbox,
        {
            "git_before": f"state=$({_GIT_STATE}); printf '%s' \"$state\"",
            "untracked": _STATUS,
            "apply": _APPLY,
            "git_after": f'after=$({_GIT_STATE}); printf \'%s\' "$after"; [ "$after" = "$state" ]',
            "changes": f'if [ "$after" = "$state" ]; then {_CHANGES}; fi',
        },
        timeout=300,
        upload=(f"{sandbox.root}/{MODEL_PATCH}", patch),
    )
    log.append(steps["apply"].output.rstrip())
    if steps["apply"].exit_code != 0:
        return None
    if steps["git_after"].exit_code != 0:
        raise PatchRefused("it changed the repository's own files under .git")
    return _changes(steps, named)


def _changes(steps: dict[str, Step], named: set[str]) -> Changes:
    before = {entry[3:] for entry in steps["untracked"].output.split("\0") if _new(entry[:2])}
    tracked, untracked, symlinks, folders, configs = set(), set(), {}, set(), {}
    fields = iter(steps["changes"].output.split("\0"))
    for field in fields:
        kind, path = field[:1], field[1:]
        if kind == "S":
            (untracked if _new(path[:2]) else tracked).add(path[3:])
        elif kind == "L":
            symlinks[path] = next(fields)
        elif kind == "F":
            folders.add(path)
        elif kind == "C":
            now, base = (base64.b64decode(next(fields)).decode(errors="replace") or None for _ in range(2))
            configs[path] = (base, now)
    paths = tracked | (untracked - before) | (untracked & named)
    unnamed = sorted(p for p in paths if p not in named and p.removesuffix(".orig") not in named)
    if unnamed:
        raise PatchRefused(f"it changed {unnamed[0]}, which it does not name (a write through a symlink)")
    for path in sorted(paths & symlinks.keys()):
        _check_symlink(path, symlinks[path], path in folders)
    return Changes(paths, tracked, {p: configs[p] for p in paths if p in configs})


def _new(status: str) -> bool:
    """Whether a git status code (XY) is of a path the base commit lacks: untracked, ignored, or added by --3way."""
    return status in ("??", "!!") or status.startswith("A")


def _check_symlink(path: str, target: str, to_folder: bool) -> None:
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
    if target.startswith("/") or resolved == ".." or resolved.startswith("../"):
        raise PatchRefused(f"it makes {path} a symlink out of the tree ({target})")
    if any(part.lower() == ".git" for part in resolved.split("/")):
        raise PatchRefused(f"it makes {path} a symlink into .git")
    if to_folder:
        raise PatchRefused(f"it makes {path} a symlink to a folder, a second path to every file in it")
    if test_machinery(path) or test_machinery(resolved):
        raise PatchRefused(f"it makes {path} a symlink into the test machinery ({target})")


class Restore(NamedTuple):
    checkout: list[str]  # put back as the base commit has them
    remove: list[str]  # the base commit has none of them


def restore_plan(changes: Changes, test_patch_paths: list[str]) -> Restore:
    """Every change of the patch to the test machinery, and to the files the test_patch will change."""
    back = sorted(
        p
        for p in changes.paths
        if p in test_patch_paths
        or test_machinery(p)
        or _pytest_part_changed(p, changes.configs)
        or (p not in changes.tracked and _runner_module(p))
    )
    return Restore([p for p in back if p in changes.tracked], [p for p in back if p not in changes.tracked])


def _runner_module(path: str) -> bool:
    """Whether a path is a module or package pytest imports as its own (pytest.py, _pytest/__init__.py): created
    in a folder on sys.path, it would stand in for the runner. A project that is pytest has them at its base."""
    *_, parent, name = ["", *path.split("/")]
    module = parent if name == "__init__.py" else name.removesuffix(".py") if name.endswith(".py") else None
    return module in RUNNER_MODULES


def _pytest_part_changed(path: str, configs: dict[str, tuple[str | None, str | None]]) -> bool:
    if path not in configs:
        return False
    base, now = configs[path]
    name = posixpath.basename(path)
    return pytest_part(name, base) != pytest_part(name, now)


def pytest_part(name: str, text: str | None):
    """What pytest reads of a shared configuration file: pyproject.toml's tool.pytest table; the lines of a
    setup.cfg's or tox.ini's sections whose header names pytest (and any before the first section). None: none."""
    if text is None:
        return None
    if name == "pyproject.toml":
        try:
            tool = tomllib.loads(text).get("tool")
        except tomllib.TOMLDecodeError:
            return text  # pytest cannot read it either: any change to it counts
        return tool.get("pytest") if isinstance(tool, dict) else None
    lines, kept = [], True
    for line in text.splitlines():
        if line.startswith("["):
            kept = "pytest" in line.lower()
        if kept and line.strip() and not line.lstrip().startswith(("#", ";")):
            lines.append(line)
    return lines or None


PREPARE_SECONDS = 300  # for putting the tree back and applying the test_patch


def prepare_run(
    sandbox: Sandbox, plan: Restore, test_patch: str, checks: dict[str, str], log: list[str], then: Then | None = None
) -> tuple[dict[str, Step], tuple[ExecResult, Callable[[], str]] | None]:
    """Put back what `plan` says, apply the test_patch, and run `checks` (more harness commands, in the same
    sandbox command): their results by name. PatchRefused when the tree cannot be put back; the test_patch's
    step says whether it applied. `then` runs next in the same command if both succeeded: its output after the
    steps' and the function reading its result file (exec_then_read), None without it."""
    steps = {
        "put_back": _put_back(plan),
        "generated": RESTORE_GENERATED,
        "test_patch": f"git apply --whitespace=nowarn {PATCH_FILE}",
        **checks,
    }
    nonce, upload = secrets.token_hex(12), f"{sandbox.root}/{PATCH_FILE}"
    script = steps_script(steps, nonce, upload)
    if then is None:
        result, read = sandbox.exec(script, timeout=PREPARE_SECONDS, input=test_patch), None
    else:
        script += f'if [ "$step_put_back" = 0 ] && [ "$step_test_patch" = 0 ]; then {then.command}\nfi'
        timeout = PREPARE_SECONDS + then.timeout
        result, read = exec_then_read(sandbox, script, then.result_file, timeout, input=test_patch)
    found, rest = read_steps(result, nonce, list(steps))
    if plan.checkout or plan.remove:
        log.append(
            f"put back as the base commit has them: {', '.join(plan.checkout) or 'none'}; "
            f"removed: {', '.join(plan.remove) or 'none'}"
        )
    if found["put_back"].exit_code != 0:
        raise PatchRefused(f"its changes cannot be put back: {found['put_back'].output.strip()[-300:]}")
    return found, (dataclasses.replace(result, output=rest), read) if read else None


def _put_back(plan: Restore) -> str:
    """The command that carries out `plan`, then fails, printing them, if any of its paths still differ."""
    if not plan.checkout and not plan.remove:
        return "true"
    checkout, remove = " ".join(map(shlex.quote, plan.checkout)), " ".join(map(shlex.quote, plan.remove))
    folders = " ".join(sorted({shlex.quote(posixpath.dirname(p)) for p in plan.remove if "/" in p}))
    commands, left = [], []
    if remove:
        commands.append(f"rm -f -- {remove}")
        commands += [f"rmdir -p --ignore-fail-on-non-empty -- {folders} 2>/dev/null"] if folders else []
        left.append(f"ls -d -- {remove} 2>/dev/null")
    if checkout:
        commands.append(f"git checkout -q HEAD -- {checkout}")
        left.append(f"git diff --name-only HEAD -- {checkout}")
    return "; ".join(commands) + "; ! { " + "; ".join(left) + "; } | grep ."
