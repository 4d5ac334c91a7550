"""CLI commands of the ggan pipeline."""

from __future__ import annotations
