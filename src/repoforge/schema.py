"""The data every stage reads and writes: SWE-bench rows plus RepoForge's additions."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field, field_validator

from repoforge.names import check_folder_name

# Work runs in other processes (Ray workers) with other working folders: paths travel absolute.
AbsolutePath = Annotated[Path, AfterValidator(lambda path: path.expanduser().resolve())]
# An instance id names its log folder (SWE-bench's layout), so it must be able to name one, and nothing else.
InstanceId = Annotated[str, AfterValidator(check_folder_name)]


def check_utf8_text(text: str) -> str:
    try:
        text.encode()
    except UnicodeEncodeError as exc:
        raise ValueError(f"not UTF-8 text: a lone surrogate at character {exc.start}") from None
    return text


# What is written to files and sandboxes as it is (patches): a lone surrogate (from a \ud800 escape, or bytes of a
# file that were not UTF-8) cannot be.
Text = Annotated[str, AfterValidator(check_utf8_text)]


class TestStatus(str, Enum):
    """Per-test outcome, spelled as SWE-bench's log parsers spell it."""

    PASSED = "PASSED"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"
    ERROR = "ERROR"
    XFAIL = "XFAIL"


class Candidate(BaseModel):
    """A mined change: the fix, the tests that prove it, and the text that asks for it."""

    repo: str  # owner/name
    instance_id: str
    base_commit: str
    commit: str  # the change itself (its first parent is base_commit)
    patch: str
    test_patch: str
    problem_statement: str
    hints_text: str = ""
    created_at: str  # ISO 8601 commit date
    test_files: list[str] = Field(default_factory=list)  # test modules the test_patch touches


class InstallStep(BaseModel):
    """One command of an environment recipe, run with the venv active."""

    name: str
    argv: list[str]


class BuildAttempt(BaseModel):
    strategy: str
    ok: bool
    seconds: float
    error: str = ""  # tail of the failing command's output


class EnvSpec(BaseModel):
    """How to build and use an environment; instances with equal fingerprints share one."""

    python: str  # major.minor
    # Where the interpreter came from (uv:NAME, host:PREFIX, debian:SUITE). Not in the fingerprint: any
    # build of one version serves an environment, so the two backends share one recipe.
    python_source: str = ""
    exclude_newer: str  # ISO date the package index is read as of
    # name -> its own cutoff: later for floors and repairs, earlier for a plugin dated like its runner
    package_floors: dict[str, str] = Field(default_factory=dict)
    dropped: list[str] = Field(default_factory=list)  # test requirements left out: they cannot be installed
    # Environment variables for every install: the last release tag's version, told to setuptools-scm
    # for this project only, since a checkout's git may not reach its tags.
    install_env: dict[str, str] = Field(default_factory=dict)
    install_steps: list[InstallStep] = Field(default_factory=list)
    strategy: str = ""
    test_runner: str = "pytest"  # pytest | unittest
    test_command: str = ""
    # The runner the environment was validated with: pytest's version, and its plugins (pytest11 entry-point
    # name -> module) installed in the venv, the only ones a test run loads. None: an environment built before
    # they were recorded, read from its venv at run time.
    runner_version: str = ""
    runner_plugins: dict[str, str] | None = None
    runner_summary: bool | None = None  # whether its console summary names each outcome (no plugin replaced it)
    parser: str = "junit"  # junit | unittest
    fingerprint: str = Field(default="", pattern=r"^[0-9a-f]*$")  # a folder's and an image's name: hex only
    attempts: list[BuildAttempt] = Field(default_factory=list)


class Vote(BaseModel):
    """One of a label's samples: the model's score and why, or None when no attempt gave one."""

    score: int | None = None
    explanation: str = ""
    attempts: int = 0  # requests this sample took: malformed, empty and out-of-range answers are asked again
    extracted: bool = False  # the score was read out of an answer that was not the JSON asked for
    prompt_tokens: int = 0
    completion_tokens: int = 0


class Label(BaseModel):
    """A label by SPICE's consensus: the score given at least twice, else the median of the votes."""

    value: int | None = None
    controversial: bool = False  # votes on both sides of the 0-1 / 2-3 line
    votes: list[Vote] = Field(default_factory=list)


class DifficultyEstimate(BaseModel):
    """The no-model baseline: minutes an engineer new to the code would need, from the size of the change."""

    value: int
    minutes: float
    lines: int
    files: int
    hunks: int
    tests: int


class InstanceLabels(BaseModel):
    """SPICE's labels of one instance (0 best, 3 worst), with what asking for them took."""

    clarity: Label | None = None
    test_validity: Label | None = None
    difficulty: Label | None = None
    difficulty_estimate: DifficultyEstimate | None = None
    model: str = ""
    prompt_version: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0  # US dollars at the configured prices
    seconds: float = 0.0
    error: str = ""  # the model could not be asked (an unreachable endpoint): the labels are missing


class Description(BaseModel):
    """How `repoforge describe` wrote the row's problem statement, and the text it replaced."""

    source: str = ""  # github | model; empty when the row kept its statement (see error)
    original_problem_statement: str = ""
    original_hints_text: str = ""
    urls: list[str] = Field(default_factory=list)  # github: the pull request or the issues whose text was taken
    github_error: str = ""  # why GitHub's text was not taken (unreachable, not found, nothing it closes...)
    model: str = ""  # the model's fields: empty when it was not asked
    prompt_version: str = ""
    attempts: int = 0  # requests: answers that are empty, malformed or give away the fix are asked again
    rejected: list[str] = Field(default_factory=list)  # why each answer not taken was not
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0  # US dollars at the configured prices
    seconds: float = 0.0
    error: str = ""  # why the row keeps its original statement


class TaskInstance(BaseModel):
    """A SWE-bench row (FAIL_TO_PASS / PASS_TO_PASS as lists) plus the environment."""

    repo: str
    instance_id: InstanceId
    base_commit: str
    patch: Text
    test_patch: Text
    problem_statement: str
    hints_text: str = ""
    created_at: str
    version: str = ""
    FAIL_TO_PASS: list[str]
    PASS_TO_PASS: list[str]
    environment_setup_commit: str
    env: EnvSpec | None = None
    # FAIL_TO_PASS test id -> how it failed at the base commit with the test patch (message and traceback, cut):
    # what forge saw, for describe to say what a user would see. Not in SWE-bench's rows, nor in older ones of ours.
    base_failures: dict[str, str] = Field(default_factory=dict)
    labels: InstanceLabels | None = None  # repoforge label's (older rows: {})
    description: Description | None = None  # repoforge describe's
    # Newer SWE-bench rows: the parser that made the test ids (graded by name, see testrun/logparsers.py),
    # and how SWE-bench runs them. Kept as they come; eval_script and image are never executed or pulled.
    log_parser: str | None = None
    eval_type: str | None = None
    eval_script: str | None = None
    image: str | None = None

    @field_validator("FAIL_TO_PASS", "PASS_TO_PASS", mode="before")
    @classmethod
    def _decode_json_list(cls, value):
        # SWE-bench's published rows carry these as JSON-encoded strings.
        if not isinstance(value, str):
            return value
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            raise ValueError("text that is not JSON, where a list of test ids is expected") from None


class Rejection(BaseModel):
    """Why a candidate (or a commit) did not become an instance."""

    stage: str  # mine | build | validate
    reason: str  # short, countable
    detail: str = ""
    instance_id: str = ""
    commit: str = ""


class ValidationResult(BaseModel):
    instance: TaskInstance | None = None
    rejection: Rejection | None = None
    flaky: list[str] = Field(default_factory=list)
    seconds: dict[str, float] = Field(default_factory=dict)  # stage -> seconds


class Prediction(BaseModel):
    """An agent's answer for one instance, in SWE-bench's prediction format."""

    instance_id: InstanceId
    model_name_or_path: str = Field(min_length=1)
    # Not checked here: a patch that is not UTF-8 text is that instance's malformed prediction, graded not applied.
    model_patch: str | None = None


class GoldRun(BaseModel):
    """What the gold patch's own run of a row did to its required tests, in one environment and sandbox: the evidence
    a candidate's XFAIL and network failures are judged by (see harness/grade.py)."""

    failed: list[str] = Field(default_factory=list)
    needs_network: list[str] = Field(default_factory=list)  # of those, the ones whose failure says it was offline
    xfail: list[str] = Field(default_factory=list)


class TestsStatus(BaseModel):
    success: list[str] = Field(default_factory=list)
    failure: list[str] = Field(default_factory=list)


class InstanceReport(BaseModel):
    """One instance's grade: the body of SWE-bench's report.json, plus why it erred, if it did."""

    patch_is_None: bool = False
    patch_exists: bool = True
    patch_successfully_applied: bool = False
    resolved: bool = False
    tests_status: dict[str, TestsStatus] = Field(
        default_factory=lambda: {
            key: TestsStatus() for key in ("FAIL_TO_PASS", "PASS_TO_PASS", "FAIL_TO_FAIL", "PASS_TO_FAIL")
        }
    )
    error: str = ""  # an infrastructure failure (environment, sandbox, harness), apart from the model's
    # Why the run's results cannot be trusted (the patch reaches into the test machinery, or the JUnit file and
    # the console summary disagree): such an instance is not resolved.
    tampering: list[str] = Field(default_factory=list)
    # "junit" or a swebench log parser -> the FAIL_TO_PASS and PASS_TO_PASS tests whose status it gave
    decided_by: dict[str, list[str]] = Field(default_factory=dict)
    seconds: dict[str, float] = Field(default_factory=dict)  # phase -> seconds (env, tests, total)
