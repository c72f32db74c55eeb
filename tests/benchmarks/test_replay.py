"""benchmarks/replay.py's cut of a user's ratings and its draw of left-out users (the rest of it
is the pipeline and the API, tested on their own; the whole replay runs for its figures)."""

from __future__ import annotations

import pandas as pd

from benchmarks import replay as R


def test_each_users_ratings_are_cut_in_time_order():
    rows = pd.DataFrame(
        [(1, 10, 4.0, 300), (1, 11, 3.0, 100), (1, 12, 5.0, 200), (1, 13, 2.0, 400), (2, 20, 4.0, 50), (3, 30, 1.0, 7)],
        columns=["user_id", "movie_id", "rating", "timestamp"],
    )
    first, later = R.halves(rows)
    assert list(zip(first.user_id, first.movie_id)) == [(1, 11), (1, 12)]  # the earliest half of four
    assert list(zip(later.user_id, later.movie_id)) == [(1, 10), (1, 13), (2, 20), (3, 30)]  # one rating: judged


def test_the_left_out_users_are_a_fixed_share():
    drawn = [user for user in range(1, 5001) if R.is_new_user(user, 0.1)]
    assert 400 < len(drawn) < 600
    assert drawn == [user for user in range(1, 5001) if R.is_new_user(user, 0.1)]
    assert not any(R.is_new_user(user, 0.0) for user in range(1, 200))
