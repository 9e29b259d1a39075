"""Differentially private release: exact noise, mechanisms, accounting and the privacy-budget ledger."""
