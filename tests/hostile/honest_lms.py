"""Honest work downloaded from a learning platform: the file name carries the student's id."""
