"""From models to ranked lists: candidates, the calibrated blend, live scoring of a few pairs."""
