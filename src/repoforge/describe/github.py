"""An instance's problem statement from GitHub's REST API: the issues its pull request closes (title and body, as
SWE-bench takes them), or the pull request's own text when it closes none."""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request

from pydantic import BaseModel

from repoforge.schema import TaskInstance

# GitHub's closing keywords, each before `#N`, `owner/name#N` or an issue's URL.
CLOSING = re.compile(
    r"\b(?:close[sd]?|fix(?:e[sd])?|resolve[sd]?):?\s+"
    r"(?:(?P<repo>[\w.-]+/[\w.-]+)?#|https?://github\.com/(?P<url_repo>[\w.-]+/[\w.-]+)/issues/)(?P<number>\d+)\b",
    re.IGNORECASE,
)
SHA_PREFIX = re.compile(r"[0-9a-f]{7,40}")


class GitHubConfig(BaseModel):
    api_url: str = "https://api.github.com"  # or a GitHub Enterprise server's, https://HOST/api/v3
    token_env: str = "GITHUB_TOKEN"  # read where the request is made; without one, GitHub's anonymous rate limit
    timeout: float = 20.0


class GitHubError(RuntimeError):
    """Why GitHub gave no text for an instance: the model writes its statement instead."""


class GitHub:
    def __init__(self, config: GitHubConfig):
        self.api_url = config.api_url.rstrip("/")
        self.timeout = config.timeout
        self.headers = {"Accept": "application/vnd.github+json", "User-Agent": "repoforge"}
        if token := os.environ.get(config.token_env):
            self.headers["Authorization"] = f"Bearer {token}"

    def get(self, path: str, kind: type = dict):
        """The JSON at `path` (a `kind`), or None where GitHub has nothing (404); GitHubError for anything else."""
        request = urllib.request.Request(self.api_url + urllib.parse.quote(path), headers=self.headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                value = json.load(response)
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            limited = " (rate limited, or the token lacks access)" if exc.code in (401, 403, 429) else ""
            raise GitHubError(f"GitHub's API answered {exc.code} for {path}{limited}") from None
        except (urllib.error.URLError, OSError) as exc:  # refused, unresolvable, timed out
            raise GitHubError(
                f"GitHub's API at {self.api_url} cannot be reached: {getattr(exc, 'reason', exc)}"
            ) from None
        except ValueError:
            raise GitHubError(f"GitHub's API answered {path} with something that is not JSON") from None
        if not isinstance(value, kind):
            raise GitHubError(f"GitHub's API answered {path} with a {type(value).__name__}, not a {kind.__name__}")
        return value


def find_pull(api: GitHub, row: TaskInstance) -> dict:
    """The pull request of the row's change: the number its instance_id ends in (SWE-bench's ids, and forge's when
    the commit named its pull request), else the one GitHub lists for the commit whose abbreviation ends a forged
    id, if that commit's parent is the row's base commit."""
    suffix = row.instance_id.removeprefix(row.repo.replace("/", "__") + "-")
    if suffix.isdigit() and (pull := api.get(f"/repos/{row.repo}/pulls/{suffix}")):
        return pull
    if not SHA_PREFIX.fullmatch(suffix):
        raise GitHubError(
            f"{row.repo} has no pull request {suffix} on GitHub"
            if suffix.isdigit()
            else f"{row.instance_id} names no pull request or commit"
        )
    commit = api.get(f"/repos/{row.repo}/commits/{suffix}")
    if commit is None:
        raise GitHubError(f"{row.repo} has no commit {suffix} on GitHub")
    parents = [parent.get("sha") for parent in commit.get("parents") or [] if isinstance(parent, dict)]
    if parents[:1] != [row.base_commit]:
        raise GitHubError(f"{row.repo}'s commit {suffix} on GitHub does not follow the base commit")
    pulls = api.get(f"/repos/{row.repo}/commits/{commit.get('sha')}/pulls", list) or []
    merged = [pull for pull in pulls if isinstance(pull, dict) and pull.get("merged_at")]
    if not merged:
        raise GitHubError(f"no merged pull request holds {row.repo}'s commit {suffix}")
    return merged[0]


def closed_issues(text: str, repo: str) -> list[tuple[str, int]]:
    """(owner/name, number) of each issue `text` closes with one of GitHub's keywords, in order, once each."""
    found = []
    for match in CLOSING.finditer(text):
        issue = (match["repo"] or match["url_repo"] or repo, int(match["number"]))
        if issue not in found:
            found.append(issue)
    return found


def github_statement(row: TaskInstance, config: GitHubConfig) -> tuple[str, list[str]]:
    """(statement, the URLs of the issues or pull request it is the text of)."""
    api = GitHub(config)
    pull = find_pull(api, row)
    issues = []
    for repo, number in closed_issues(text(pull), row.repo):
        issue = api.get(f"/repos/{repo}/issues/{number}")
        if issue and "pull_request" not in issue:  # to this API a pull request is an issue too; only issues count
            issues.append(issue)
    sources = issues or [pull]
    statement = "\n".join(text(source) for source in sources)
    if not statement.strip():
        raise GitHubError(f"{pull.get('html_url') or 'the pull request'} and the issues it closes have no text")
    return statement, [str(source.get("html_url") or "") for source in sources]


def text(issue: dict) -> str:
    """An issue's or pull request's title and body, as SWE-bench's problem statements are laid out."""
    return f"{issue.get('title') or ''}\n{issue.get('body') or ''}\n"
