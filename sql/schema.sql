-- movierec store: the same DDL runs on SQLite and PostgreSQL.
-- Times are ISO-8601 UTC text; parameters and metrics are JSON text.
-- A run's rows are all written before active_run points at it (see jobs/store.py).

CREATE TABLE IF NOT EXISTS runs (
    run_id        VARCHAR(200) PRIMARY KEY,
    status        VARCHAR(20)  NOT NULL,   -- loading | published | rejected | failed
    started_at    VARCHAR(40),
    finished_at   VARCHAR(40),
    published_at  VARCHAR(40),
    params        TEXT,                    -- JSON: the settings the run used
    metrics       TEXT,                    -- JSON: evaluation metrics
    message       TEXT                     -- why a run was rejected or failed
);

-- the catalogue, shared by all runs (movies are only ever added or corrected)
CREATE TABLE IF NOT EXISTS movies (
    movie_id  INTEGER      PRIMARY KEY,
    title     TEXT         NOT NULL,
    year      INTEGER,
    genres    TEXT         NOT NULL        -- MovieLens style: Adventure|Comedy, '' for none
);

CREATE TABLE IF NOT EXISTS recommendations (
    run_id    VARCHAR(200)     NOT NULL,
    user_id   INTEGER          NOT NULL,
    rank      INTEGER          NOT NULL,   -- 1 = best
    movie_id  INTEGER          NOT NULL,
    score     DOUBLE PRECISION NOT NULL,   -- cf_weight * cf_score + cb_weight * cb_score
    cf_score  DOUBLE PRECISION NOT NULL,   -- collaborative component, on the 0..1 scale
    cb_score  DOUBLE PRECISION NOT NULL,   -- content component, on the 0..1 scale
    PRIMARY KEY (run_id, user_id, rank)
);

-- users the run was trained on: a user here without recommendations is scored live,
-- a user not here is a cold start
CREATE TABLE IF NOT EXISTS run_users (
    run_id         VARCHAR(200) NOT NULL,
    user_id        INTEGER      NOT NULL,
    ratings_count  INTEGER      NOT NULL,
    PRIMARY KEY (run_id, user_id)
);

-- most popular movies of the run, for cold starts
CREATE TABLE IF NOT EXISTS popular_movies (
    run_id    VARCHAR(200)     NOT NULL,
    rank      INTEGER          NOT NULL,
    movie_id  INTEGER          NOT NULL,
    score     DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (run_id, rank)
);

-- nearest movies by ALS item factors (cosine), precomputed per run
CREATE TABLE IF NOT EXISTS similar_movies (
    run_id            VARCHAR(200)     NOT NULL,
    movie_id          INTEGER          NOT NULL,
    rank              INTEGER          NOT NULL,
    similar_movie_id  INTEGER          NOT NULL,
    score             DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (run_id, movie_id, rank)
);

-- one row: the run that serves
CREATE TABLE IF NOT EXISTS active_run (
    id            INTEGER      PRIMARY KEY CHECK (id = 1),
    run_id        VARCHAR(200) NOT NULL,
    activated_at  VARCHAR(40)  NOT NULL
);
