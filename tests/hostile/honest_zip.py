"""Honest work inside a zip archive of downloads, in a folder named after the student."""
