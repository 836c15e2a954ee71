"""Honest control: the solution's answers in the release, handed in unchanged."""
