"""Grading a run's statuses against a row's required tests, as run here."""

from __future__ import annotations

from repoforge.harness.grade import disagreements, grade
from repoforge.schema import InstanceReport
from repoforge.schema import TestStatus as Status  # a Test* name would be collected

HERE = "p/t.py::test_f[/testbed/p/x.dcm]"
ROW = "p/t.py::test_f[/n/fs/tmpq/p__p__1.2/p/x.dcm]"  # made on another machine's checkout


def test_a_row_id_made_on_another_machine_is_graded_and_cross_checked_as_run_here():
    report = InstanceReport()
    grade(report, {HERE: Status.PASSED}, [ROW], [], ["p/t.py"])
    assert report.resolved and report.decided_by == {"junit": [ROW]}
    assert disagreements(report, {HERE: Status.PASSED}, {HERE: Status.PASSED}, True) == []
    assert disagreements(report, {HERE: Status.PASSED}, {HERE: Status.FAILED}, True) == [
        f"{ROW}: the JUnit file says PASSED, the console summary FAILED"
    ]
