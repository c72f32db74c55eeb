"""The two models of the hybrid (ALS, the content forest) and similar movies."""
