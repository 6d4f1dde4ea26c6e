"""Write real git repositories commit by commit, with fixed authors and dates (for demos and tests)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


class RepoBuilder:
    def __init__(self, path: Path, remote: str | None = None):
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self._git("init", "-q", "-b", "main")
        if remote:
            self._git("remote", "add", "origin", remote)

    def _git(self, *args: str, date: str | None = None) -> str:
        env = {
            **os.environ,
            "GIT_AUTHOR_NAME": "Dev",
            "GIT_AUTHOR_EMAIL": "dev@example.com",
            "GIT_COMMITTER_NAME": "Dev",
            "GIT_COMMITTER_EMAIL": "dev@example.com",
        }
        if date:
            env["GIT_AUTHOR_DATE"] = env["GIT_COMMITTER_DATE"] = date
        return subprocess.run(
            ["git", "-C", str(self.path), *args], check=True, capture_output=True, text=True, env=env
        ).stdout.strip()

    def commit(self, message: str, date: str, files: dict[str, str | bytes | None]) -> str:
        """Write (str/bytes) or delete (None) files, commit them all, return the sha."""
        for name, content in files.items():
            target = self.path / name
            if content is None:
                target.unlink()
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content)
        self._git("add", "-A")
        self._git("commit", "-q", "-m", message, date=date)
        return self._git("rev-parse", "HEAD")
