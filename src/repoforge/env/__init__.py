"""Reading a project and building its environment without per-repository knowledge."""
