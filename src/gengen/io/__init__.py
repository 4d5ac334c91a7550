"""Readers and writers, one module per kind of thing (expression tables, sequences, motifs)."""
