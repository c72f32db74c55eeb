"""The pipeline's stages (one module each, run by jobs/<stage>.py), the stage runner and the local pipeline."""
