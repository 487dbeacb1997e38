"""Cohort work: ingest, batch, levels, evaluation, survival and review."""
