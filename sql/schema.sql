-- movierec store: generated from movierec/store/tables.py by `movierec schema` (do not edit).
-- The same tables run on SQLite and PostgreSQL (the code creates them from the same metadata).

CREATE TABLE IF NOT EXISTS active_run (
	id INTEGER NOT NULL CONSTRAINT one_row CHECK (id = 1),
	run_id VARCHAR(200) NOT NULL,
	activated_at VARCHAR(40) NOT NULL,
	PRIMARY KEY (id)
);

--   rating: 0.5..5.0 in half stars
--   timestamp: unix seconds, as in ratings.csv
--   received_at: when the API stored it (ingest's cut-off reads this)
CREATE TABLE IF NOT EXISTS feedback (
	user_id INTEGER NOT NULL,
	movie_id INTEGER NOT NULL,
	rating DOUBLE PRECISION NOT NULL,
	timestamp BIGINT NOT NULL,
	received_at VARCHAR(40) NOT NULL,
	PRIMARY KEY (user_id, movie_id, timestamp)
);

CREATE INDEX IF NOT EXISTS feedback_received_at ON feedback (received_at);

--   genres: MovieLens style: Adventure|Comedy, '' for none
CREATE TABLE IF NOT EXISTS movies (
	movie_id INTEGER NOT NULL,
	title TEXT NOT NULL,
	year INTEGER,
	genres TEXT NOT NULL,
	PRIMARY KEY (movie_id)
);

CREATE TABLE IF NOT EXISTS popular_movies (
	run_id VARCHAR(200) NOT NULL,
	rank INTEGER NOT NULL,
	movie_id INTEGER NOT NULL,
	score DOUBLE PRECISION NOT NULL,
	PRIMARY KEY (run_id, rank)
);

--   rank: 1 = best
--   score: cf_weight * cf_score + cb_weight * cb_score
--   cf_score: collaborative component, 0..1
--   cb_score: content component, 0..1
CREATE TABLE IF NOT EXISTS recommendations (
	run_id VARCHAR(200) NOT NULL,
	user_id INTEGER NOT NULL,
	rank INTEGER NOT NULL,
	movie_id INTEGER NOT NULL,
	score DOUBLE PRECISION NOT NULL,
	cf_score DOUBLE PRECISION NOT NULL,
	cb_score DOUBLE PRECISION NOT NULL,
	PRIMARY KEY (run_id, user_id, rank)
);

--   received_until: feedback.received_at up to this is in the run
--   feedback_rows: feedback rows ingest read
CREATE TABLE IF NOT EXISTS run_feedback (
	run_id VARCHAR(200) NOT NULL,
	received_until VARCHAR(40) NOT NULL,
	feedback_rows INTEGER NOT NULL,
	PRIMARY KEY (run_id)
);

CREATE TABLE IF NOT EXISTS run_users (
	run_id VARCHAR(200) NOT NULL,
	user_id INTEGER NOT NULL,
	ratings_count INTEGER NOT NULL,
	PRIMARY KEY (run_id, user_id)
);

--   status: loading | published | rejected | failed
--   params: JSON: the settings that define the run's model and data
--   metrics: JSON: evaluation metrics
--   message: why a run was rejected or failed
CREATE TABLE IF NOT EXISTS runs (
	run_id VARCHAR(200) NOT NULL,
	status VARCHAR(20) NOT NULL,
	started_at VARCHAR(40),
	finished_at VARCHAR(40),
	published_at VARCHAR(40),
	params TEXT,
	metrics TEXT,
	message TEXT,
	PRIMARY KEY (run_id)
);

CREATE TABLE IF NOT EXISTS similar_movies (
	run_id VARCHAR(200) NOT NULL,
	movie_id INTEGER NOT NULL,
	rank INTEGER NOT NULL,
	similar_movie_id INTEGER NOT NULL,
	score DOUBLE PRECISION NOT NULL,
	PRIMARY KEY (run_id, movie_id, rank)
);
