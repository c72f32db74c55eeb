"""The HTML report of a run's evaluation."""
