"""Tooling around the book that is not library code: the PDF build and the reliability record."""
