"""What a model's patch says, read before anything applies it: the files it names, what it may not do, and where
its non-test code reaches into the test machinery.

The patch is applied by git and, failing that, by GNU patch (SWE-bench's chain). patch reads more than git does
(plain ---/+++ sections, context diffs, Index: lines, ed scripts) and follows symlinks inside the tree, so every
name that any header of any of these forms gives is checked here, before either tool runs; the tree is checked
again after them (harness/tree.py).
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from repoforge.mine import is_test_path

MAX_FILES = 1000  # far more than a fix touches; keeps the restore step's command within the kernel's limits
COMPILED = (".pyc", ".pyo", ".pyd", ".so", ".dll", ".dylib")  # code the interpreter loads without its source

# Every header that names a file, in the forms git and GNU patch read.
_NAMING = re.compile(r"^(diff --git|---|\+\+\+|\*\*\*|Index:|rename from|rename to|copy from|copy to) (.+)$")
_STRIPPED = {"---", "+++", "***", "Index:"}  # names patch -p1 strips a first folder from
_ED_COMMAND = re.compile(r"^\d+(,\d+)?[acd](\d+(,\d+)?)?$")  # a line of an ed script or a normal diff
_SYMLINK_MODE = re.compile(r"^(new file mode|new mode|index \S+) 120000$")
_C_ESCAPES = {"a": 7, "b": 8, "t": 9, "n": 10, "v": 11, "f": 12, "r": 13, '"': 34, "\\": 92}

# Non-test code that reaches into the test run: the runner's internals and hooks, teardown and hard exits, the
# interpreter's module table, builtins and frames, the results file, and code built at run time (which hides the
# rest from this reading). Read in Python and, for the base commit's code, by `git grep -P` in the sandbox: the
# patterns are valid in both.
REACHES = {
    "pytest's internals": r"\b_pytest\b|\bpluggy\b|\bimport\s+[\w.,\s]*\bpytest\b|\bfrom\s+pytest\b",
    "pytest's hooks": r"\bpytest_\w+|\bhookimpl\b|\bhookwrapper\b",
    "unittest's runner": r"\bunittest\.(?:result|runner|main|case|loader|suite|signals|Test\w+|TextTest\w+)\b"
    r"|\bfrom\s+unittest(?!\.mock\b)(?:\.\w+)?\s+import\s+(?!mock\b)",
    "atexit": r"\batexit\b",
    "a hard exit": r"\b_exit\s*\(|\bos\.abort\b|\bos\.kill(?:pg)?\b",
    "the module table": r"\bsys\.modules\b|\bimport\s+__main__\b|\bfrom\s+__main__\s+import\b",
    "builtins": r"\bbuiltins\b|\b__builtins__\b",
    "the callers' frames": r"\b_getframe\b|\b_current_frames\b|\bf_back\b|\bf_globals\b|\bf_locals\b|\btb_frame\b"
    r"|\binspect\.(?:stack|trace|currentframe|getouterframes)\b|\bsettrace\b|\bsetprofile\b"
    r"|\baddaudithook\b|\bsys\.monitoring\b|\bimport\s+gc\b|\bgc\.",
    "the results file": r"junit|repoforge",
    # What the rest is hidden behind: code made of strings, found by walking objects, or loaded from a data file.
    "code built at run time": r"(?<![.\w])(?:exec|eval|compile)\s*\(|\b__import__\b|\bimport_module\b|\breload\s*\("
    r"|\b(?:spec_from_file_location|module_from_spec|SourceFileLoader|load_source|runpy)\b"
    r"|\b(?:marshal|ctypes|CodeType|FunctionType)\b|__subclasses__|__globals__|__code__",
}
_REACH_PATTERNS = {what: re.compile(pattern, re.IGNORECASE | re.MULTILINE) for what, pattern in REACHES.items()}


class PatchRefused(Exception):
    """The patch does what no fix needs and the harness does not allow; the message says what."""


def check(patch: str) -> set[str]:
    """The tree paths the patch names, once it is known to name no path it may not (else PatchRefused)."""
    named, symlinks, section = set(), set(), None
    for line in _lines(patch):
        if _ED_COMMAND.match(line):
            raise PatchRefused(
                f"it holds an ed script or a normal diff ({line!r}): only unified and context diffs are applied"
            )
        if _SYMLINK_MODE.match(line) and section:
            symlinks.add(section)
        for raw, path in _names(line):
            _check_path(raw, path)
            named.add(path)
            if line.startswith("diff --git "):
                section = path
    for path in sorted(named):
        through = [str(parent) for parent in PurePosixPath(path).parents if str(parent) in symlinks]
        if through:
            raise PatchRefused(f"it writes {path} through {through[0]}, a symlink it creates")
    if len(named) > MAX_FILES:
        raise PatchRefused(f"it names {len(named)} files (at most {MAX_FILES})")
    return named


def _lines(patch: str) -> list[str]:
    """The patch's lines as git and patch split them: at newlines only (a carriage return ends no line)."""
    return [line.removesuffix("\r") for line in patch.split("\n")]


def _check_path(raw: str, path: str) -> None:
    parts = PurePosixPath(raw).parts
    if raw.startswith("/"):
        raise PatchRefused(f"it names an absolute path, {raw}")
    if ".." in parts:
        raise PatchRefused(f"it names a path out of the tree, {raw}")
    if any(part.lower() == ".git" for part in parts):
        raise PatchRefused(f"it names {raw}, inside the repository's .git")
    if path.endswith(COMPILED):
        raise PatchRefused(f"it names {path}, a compiled file (only sources are graded)")


def _names(line: str) -> list[tuple[str, str]]:
    """(name as written, path in the tree) for each file a header line names; none for other lines."""
    match = _NAMING.match(line)
    if not match:
        return []
    kind, rest = match.groups()
    if kind == "diff --git":
        return [(name, _strip(name)) for name in _git_names(rest)]
    name = _unquote(rest) if rest.startswith('"') else rest.split("\t")[0].rstrip()
    if name == "/dev/null" or not name:
        return []
    return [(name, _strip(name) if kind in _STRIPPED else name)]


def _git_names(rest: str) -> list[str]:
    """The two names of `diff --git a/X b/Y`, quoted or not (unquoted, split where a/NAME b/NAME match)."""
    if rest.startswith('"'):
        first, _, second = rest[1:].partition('" ')
        return [_unquote(f'"{first}"'), _unquote(second) if second.startswith('"') else second]
    if ' "' in rest:
        first, _, second = rest.partition(' "')
        return [first, _unquote(f'"{second}')]
    half = (len(rest) - 1) // 2
    if rest[half] == " " and rest[:half].partition("/")[2] == rest[half + 1 :].partition("/")[2]:
        return [rest[:half], rest[half + 1 :]]
    first, _, second = rest.rpartition(" b/")
    return [first, f"b/{second}"] if first else [rest]


def _strip(name: str) -> str:
    """The path patch -p1 (and git) makes of a name: its first folder dropped."""
    return name.partition("/")[2] or name


def _unquote(quoted: str) -> str:
    """A C-quoted name as git writes one ("a/caf\\303\\251.py"), decoded to the path it names."""
    body, out, i = quoted.strip().strip('"'), bytearray(), 0
    while i < len(body):
        if body[i] == "\\" and i + 1 < len(body):
            if body[i + 1] in "01234567" and re.match(r"[0-7]{3}", body[i + 1 : i + 4]):
                out.append(int(body[i + 1 : i + 4], 8) & 0xFF)
                i += 4
                continue
            out.append(_C_ESCAPES.get(body[i + 1], ord(body[i + 1])))
            i += 2
            continue
        out += body[i].encode()
        i += 1
    return out.decode(errors="surrogateescape")


def added_code(patch: str) -> dict[str, list[str]]:
    """The lines the patch adds to each Python file that is not a test (tests are graded as the dataset has them)."""
    files: dict[str, list[str]] = {}
    current, previous = None, ""
    for line in _lines(patch):
        if line.startswith("+++ ") and previous.startswith("--- "):
            names = _names(line)
            current = names[0][1] if names else None
        elif line.startswith("diff --git "):
            current = None
        elif line.startswith("+") and current:
            files.setdefault(current, []).append(line[1:])
        previous = line
    return {path: lines for path, lines in files.items() if path.endswith(".py") and not is_test_path(path)}


def reaches(patch: str) -> dict[str, list[str]]:
    """What in the test machinery the patch's non-test code reaches (see REACHES) -> the files it does it in."""
    found: dict[str, list[str]] = {}
    for path, lines in added_code(patch).items():
        text = "\n".join(lines)
        for what, pattern in _REACH_PATTERNS.items():
            if pattern.search(text):
                found.setdefault(what, []).append(path)
    return found
