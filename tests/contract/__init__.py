"""One contract suite for every registered payment provider (issue 4, acceptance points 6-8)."""
