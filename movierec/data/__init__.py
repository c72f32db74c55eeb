"""Input data: schemas, row validation, hold-out splits, the MovieLens download, the generator."""
