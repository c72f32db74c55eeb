"""The Spark side of a run: the session, where a run's files live, reading and writing them."""
