-- Versions of each source's data, pins (store/versions.py; see sql/sqlite/005_versions.sql).
-- Every run that changed a source's data.
CREATE TABLE versions (
    source       TEXT    NOT NULL,
    run_id       BIGINT NOT NULL,
    published_at TIMESTAMPTZ NOT NULL,
    record_count BIGINT NOT NULL,
    inserted     BIGINT NOT NULL,
    updated      BIGINT NOT NULL,
    deleted      BIGINT NOT NULL,
    PRIMARY KEY (source, run_id)
);
-- Each run's reverse delta: what every key it changed held just before (NULL: inserted).
CREATE TABLE version_changes (
    source       TEXT    NOT NULL,
    run_id       BIGINT NOT NULL,
    key          TEXT    COLLATE "C" NOT NULL,
    product_code TEXT    COLLATE "C" NOT NULL,
    day          DATE,
    before       TEXT,
    PRIMARY KEY (source, run_id, key)
);
CREATE INDEX version_changes_by_product ON version_changes (product_code);
-- A source served at an older version, until unpinned.
CREATE TABLE pins (
    source    TEXT    PRIMARY KEY,
    run_id    BIGINT NOT NULL,
    pinned_at TIMESTAMPTZ NOT NULL
);
-- While pinned: the newest values of the keys the pin rewrote (NULL: absent), and the
-- lineage it replaced; unpinning writes them back.
CREATE TABLE pin_aside (
    source       TEXT NOT NULL,
    key          TEXT COLLATE "C" NOT NULL,
    product_code TEXT COLLATE "C" NOT NULL,
    day          DATE,
    data         TEXT,
    PRIMARY KEY (source, key)
);
CREATE TABLE pin_lineage (
    source       TEXT    NOT NULL,
    product_code TEXT    COLLATE "C" NOT NULL,
    run_id       BIGINT,
    changed_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (source, product_code)
);
