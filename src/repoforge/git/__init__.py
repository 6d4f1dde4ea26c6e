"""Git access: open or clone, walk history, split diffs."""
