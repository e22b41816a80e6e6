"""What the book's pages show, read from result records; never trains anything."""

from lib.report.pages import *  # noqa: F401,F403  (temporary while the split lands)
