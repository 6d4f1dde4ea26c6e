"""Rows find their repositories with no flag: the store's clone, forge's sources.json, or a clear error."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import calcpkg
import pytest

from repoforge.git.locate import RepoPlaces, find_repository
from repoforge.git.repo import GitError

REPOFORGE = str(Path(sys.executable).parent / "repoforge")


def test_forged_rows_evaluate_from_another_folder_with_no_mirror(tmp_path, store):
    source = calcpkg.build(tmp_path / "work" / "calcpkg").path
    env = {**os.environ, "REPOFORGE_HOME": str(store)}
    forged = tmp_path / "forged"
    subprocess.run(
        [REPOFORGE, "forge", str(source), "-o", str(forged), "--timeout", "30", "--sandbox", "process"],
        env=env,
        check=True,
        capture_output=True,
    )
    shutil.rmtree(tmp_path / "work")  # the store's clone is what remains of the source
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = subprocess.run(
        [
            REPOFORGE,
            "eval",
            "--dataset",
            str(forged / "instances.jsonl"),
            "--predictions",
            "gold",
            "--run-id",
            "t",
            "--sandbox",
            "process",
        ],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((elsewhere / "gold.t.json").read_text())
    assert report["resolved_instances"] == report["total_instances"] == 3
    assert report["error_ids"] == []


def test_sources_json_beside_the_dataset_is_a_place(tmp_path):
    repo = calcpkg.build(tmp_path / "somewhere" / "calc")
    head = repo._git("rev-parse", "HEAD")
    sources = tmp_path / "forged" / "sources.json"
    sources.parent.mkdir()
    sources.write_text(json.dumps({"example/calcpkg": str(repo.path)}))
    places = RepoPlaces(store=tmp_path / "empty-store", sources_file=sources)
    assert find_repository("example/calcpkg", head, places) == repo.path


def test_an_unfound_repository_names_every_place_tried(tmp_path):
    mirror = tmp_path / "mirror"
    calcpkg.build(mirror / "example__calcpkg")
    places = RepoPlaces(store=tmp_path / "store", mirror=mirror, sources_file=tmp_path / "sources.json")
    with pytest.raises(GitError) as error:
        find_repository("example/calcpkg", "0" * 40, places)
    message = str(error.value)
    assert f"--repo-mirror {mirror / 'example__calcpkg'}: lacks the commit" in message
    assert f"the store's clone {tmp_path / 'store' / 'repos' / 'example__calcpkg'}: no such repository" in message
    assert "https://github.com/example/calcpkg.git" in message
