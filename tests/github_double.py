"""A loopback HTTP server speaking the part of GitHub's REST API that describe reads: pull requests, a commit, the
pull requests of a commit, issues. GitHub itself cannot be reached from here."""

from __future__ import annotations

from contextlib import contextmanager

from http_double import Request, json_service


@contextmanager
def github_double(resources: dict[str, object]):
    """Yields (base_url, requests): `resources` maps a path (/repos/o/r/pulls/7) to its JSON, every other path is
    GitHub's 404; every request is appended to `requests` as it comes."""
    requests: list[Request] = []

    def answer(request: Request) -> tuple[int, object]:
        requests.append(request)
        if request.path in resources:
            return 200, resources[request.path]
        return 404, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}

    with json_service(answer) as url:
        yield url, requests
