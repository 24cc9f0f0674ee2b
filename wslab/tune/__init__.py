"""The tuning loop: sweeps, recommendation, export and reports."""
