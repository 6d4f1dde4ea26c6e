"""Names derived from what users name: valid where they go (Docker tags, owner/name, instance ids) and stable."""

from __future__ import annotations

import hashlib
import re

from gitrepo import RepoBuilder

from repoforge.git.repo import open_source, repo_name_from_url
from repoforge.mine import mine
from repoforge.names import docker_tag, safe_name

TAG = re.compile(r"[a-z0-9_][a-z0-9_.-]{0,127}")


def test_valid_ids_keep_their_form():
    for name in ("astropy__astropy-12907", "example__calcpkg-3ff5a1f", "local__a-b-300273da-5"):
        assert docker_tag(name) == name


def test_refused_characters_give_valid_distinct_stable_tags():
    names = [
        "local__a+b-1",
        "local__a b-1",
        "local__A+B-1",
        "local__a-b-1",
        "Local__a-b-1",
        ".hidden",
        "-x",
        "+++",
        "x" * 200,
        "x" * 199 + "y",
    ]
    tags = [docker_tag(name) for name in names]
    assert all(TAG.fullmatch(tag) for tag in tags), tags
    assert len(set(tags)) == len(names)
    assert tags == [docker_tag(name) for name in names]
    assert tags[0] == "local__a-b-1-" + hashlib.sha256(b"local__a+b-1").hexdigest()[:8]  # the valid form, a hash
    assert tags[3] == "local__a-b-1"  # valid already
    assert len(tags[8]) == 128 and tags[8][:119] == "x" * 119


def test_repository_names_from_folders_and_urls_are_githubs_characters(tmp_path):
    for folder, expected in (
        ("a+b", f"local/{safe_name('a+b')}"),
        ("My Project", f"local/{safe_name('My Project')}"),
        ("plain-name", "local/plain-name"),
    ):
        repo = RepoBuilder(tmp_path / folder)
        repo.commit("first", "2024-01-01T00:00:00+00:00", {"x.py": "x = 1\n"})
        assert open_source(str(repo.path), tmp_path / "cache")[1] == expected
    assert safe_name("a+b").startswith("a-b-") and safe_name("My Project").startswith("My-Project-")
    assert repo_name_from_url("https://github.com/psf/requests.git") == "psf/requests"
    assert repo_name_from_url("/srv/git/team+x/tool kit") == f"{safe_name('team+x')}/{safe_name('tool kit')}"


def test_instance_ids_from_a_folder_named_a_plus_b_are_swebench_shaped(tmp_path):
    repo = RepoBuilder(tmp_path / "a+b")
    repo.commit("first", "2024-01-01T00:00:00+00:00", {"pkg.py": "x = 1\n", "tests/test_pkg.py": "pass\n"})
    repo.commit("Fix x (#7)", "2024-01-02T00:00:00+00:00", {"pkg.py": "x = 2\n", "tests/test_pkg.py": "x = 2\n"})
    path, name = open_source(str(repo.path), tmp_path / "cache")
    candidates, _ = mine(path, name)
    assert [c.instance_id for c in candidates] == [f"local__{safe_name('a+b')}-7"]
    assert docker_tag(candidates[0].instance_id) == candidates[0].instance_id
