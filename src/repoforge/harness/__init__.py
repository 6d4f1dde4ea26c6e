"""Evaluate patches on task instances, graded and reported as SWE-bench does."""
