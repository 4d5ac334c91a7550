"""CLI commands of the dna pipeline."""

from __future__ import annotations
