-- The current SQLite schema, whole: a new store is created from this file and
-- records every numbered migration as applied (store/migrations.py). A change to
-- the schema is a new numbered migration *and* the same change here;
-- tests/contract/test_migrations.py checks that both roads meet.

-- The audit log: one row per refresh run.
CREATE TABLE runs (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    source          TEXT    NOT NULL,
    trigger         TEXT    NOT NULL,
    status          TEXT    NOT NULL,
    forced          INTEGER NOT NULL DEFAULT 0,
    queued_at       TEXT    NOT NULL,
    started_at      TEXT,
    finished_at     TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    fetched         INTEGER NOT NULL DEFAULT 0,
    inserted        INTEGER NOT NULL DEFAULT 0,
    updated         INTEGER NOT NULL DEFAULT 0,
    deleted         INTEGER NOT NULL DEFAULT 0,
    invalid         INTEGER NOT NULL DEFAULT 0,
    used_backup     INTEGER NOT NULL DEFAULT 0,
    error           TEXT,
    error_type      TEXT,
    invalid_reasons TEXT,   -- JSON array of the first few reasons
    mode            TEXT    NOT NULL DEFAULT 'full',  -- full or incremental
    cursor_before   TEXT,
    cursor_after    TEXT,
    not_modified    INTEGER NOT NULL DEFAULT 0        -- a 304 or an identical body
);
CREATE INDEX runs_by_source ON runs (source, id);
CREATE INDEX runs_unfinished ON runs (status) WHERE status IN ('queued', 'running');

-- Every source's current rows; `data` is the normalised record as JSON.
CREATE TABLE records (
    source       TEXT    NOT NULL,
    key          TEXT    NOT NULL,
    product_code TEXT    NOT NULL,
    day          TEXT,             -- history rows: the day the row belongs to
    data         TEXT    NOT NULL,
    run_id       INTEGER NOT NULL, -- the run that last wrote this row
    changed_at   TEXT    NOT NULL,
    PRIMARY KEY (source, key)
) WITHOUT ROWID;
CREATE INDEX records_by_product ON records (product_code, source);
CREATE INDEX records_by_day ON records (source, day) WHERE day IS NOT NULL;

-- Which run last changed each part (source) of each product.
CREATE TABLE lineage (
    product_code TEXT    NOT NULL,
    source       TEXT    NOT NULL,
    run_id       INTEGER,           -- NULL when a retention purge made the change
    changed_at   TEXT    NOT NULL,
    PRIMARY KEY (product_code, source)
) WITHOUT ROWID;

-- The products that exist (any source holds a row), with the ERP's name for search.
-- Search folds case beyond ASCII (SQLite's LIKE folds A-Z only): code and name are
-- kept case-folded too, by Python's str.casefold (casefold() on every connection).
CREATE TABLE products (
    code        TEXT PRIMARY KEY,
    name        TEXT,
    code_folded TEXT,
    name_folded TEXT
) WITHOUT ROWID;

-- A feed of changed product codes, read by every cache to invalidate.
CREATE TABLE changes (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    product_code TEXT NOT NULL,
    changed_at   TEXT NOT NULL
);

CREATE TABLE source_state (
    source              TEXT PRIMARY KEY,
    data_version        INTEGER NOT NULL DEFAULT 0,
    row_count           INTEGER NOT NULL DEFAULT 0,
    last_success_run_id INTEGER,
    last_success_at     TEXT,
    -- Where reading stands (refresh/incremental.py), written with the data.
    sync_cursor         TEXT,
    sync_etag           TEXT,
    sync_last_modified  TEXT,
    sync_body_hash      TEXT,
    sync_full_at        TEXT,
    sync_runs_since_full INTEGER NOT NULL DEFAULT 0
);

-- Operator control: paused sources, read by every scheduler, and the reload audit.
CREATE TABLE source_pauses (
    source    TEXT PRIMARY KEY,
    paused_at TEXT NOT NULL,
    reason    TEXT
) WITHOUT ROWID;
CREATE TABLE config_reloads (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    at       TEXT    NOT NULL,
    outcome  TEXT    NOT NULL,  -- applied or refused
    detail   TEXT    NOT NULL   -- what changed, or why it was refused
);

-- Versions of each source's data, pins (store/versions.py).
-- Every run that changed a source's data.
CREATE TABLE versions (
    source       TEXT    NOT NULL,
    run_id       INTEGER NOT NULL,
    published_at TEXT    NOT NULL,
    record_count INTEGER NOT NULL,
    inserted     INTEGER NOT NULL,
    updated      INTEGER NOT NULL,
    deleted      INTEGER NOT NULL,
    PRIMARY KEY (source, run_id)
) WITHOUT ROWID;
-- Each run's reverse delta: what every key it changed held just before (NULL: inserted).
CREATE TABLE version_changes (
    source       TEXT    NOT NULL,
    run_id       INTEGER NOT NULL,
    key          TEXT    NOT NULL,
    product_code TEXT    NOT NULL,
    day          TEXT,
    before       TEXT,
    PRIMARY KEY (source, run_id, key)
) WITHOUT ROWID;
CREATE INDEX version_changes_by_product ON version_changes (product_code);
-- A source served at an older version, until unpinned.
CREATE TABLE pins (
    source    TEXT    PRIMARY KEY,
    run_id    INTEGER NOT NULL,
    pinned_at TEXT    NOT NULL
) WITHOUT ROWID;
-- While pinned: the newest values of the keys the pin rewrote (NULL: absent), and the
-- lineage it replaced; unpinning writes them back.
CREATE TABLE pin_aside (
    source       TEXT NOT NULL,
    key          TEXT NOT NULL,
    product_code TEXT NOT NULL,
    day          TEXT,
    data         TEXT,
    PRIMARY KEY (source, key)
) WITHOUT ROWID;
CREATE TABLE pin_lineage (
    source       TEXT    NOT NULL,
    product_code TEXT    NOT NULL,
    run_id       INTEGER,
    changed_at   TEXT    NOT NULL,
    PRIMARY KEY (source, product_code)
) WITHOUT ROWID;
