"""The store: its tables and the lifecycle of a published run."""
