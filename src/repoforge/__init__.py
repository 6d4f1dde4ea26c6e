"""RepoForge: executable SWE task instances from real git history."""

__version__ = "0.1.0"
