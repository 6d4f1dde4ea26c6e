"""Sandboxes: one protocol, several backends."""

from __future__ import annotations

import functools

from repoforge.sandbox.base import Backend


class SandboxError(RuntimeError):
    """A backend could not start or keep a sandbox; the message says what the engine said."""


@functools.cache
def get_backend(name: str = "auto") -> Backend:
    """process, docker, or auto: docker when an engine answers and base images can be built, else process."""
    from repoforge.sandbox.docker import DockerBackend, can_build_bases, engine_answers
    from repoforge.sandbox.process import ProcessBackend

    if name == "docker" or (name == "auto" and engine_answers() and can_build_bases()):
        return DockerBackend()
    if name in ("auto", "process"):
        return ProcessBackend()
    raise ValueError(f"unknown sandbox backend {name!r} (choose auto, process or docker)")
