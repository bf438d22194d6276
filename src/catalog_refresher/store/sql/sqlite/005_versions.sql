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
