import numpy as np
import pytest

from movierec.models.similar import nearest_neighbours


def test_nearest_by_cosine_excluding_itself():
    ids = np.array([10, 20, 30])
    factors = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    table = nearest_neighbours(ids, factors, 2)
    got = {(r.movie_id, r.rank): (r.similar_movie_id, r.score) for r in table.itertuples()}
    # cos(10,20) = 0.9/√0.82 = 0.99388, cos(20,30) = 0.1/√0.82 = 0.11043, cos(10,30) = 0
    assert got[(10, 1)] == (20, pytest.approx(0.993884, abs=1e-6))
    assert got[(10, 2)] == (30, pytest.approx(0.0))
    assert got[(30, 1)] == (20, pytest.approx(0.110432, abs=1e-6))
    assert got[(20, 1)][0] == 10 and got[(20, 2)][0] == 30


def test_only_eligible_movies_are_neighbours():
    ids = np.array([1, 2, 3])
    factors = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    table = nearest_neighbours(ids, factors, 1, eligible=np.array([False, False, True]))
    assert dict(zip(table.movie_id, table.similar_movie_id)) == {1: 3, 2: 3}  # 3 has no eligible other
