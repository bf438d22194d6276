-- The current PostgreSQL schema, whole: a new store is created from this file and
-- records every numbered migration as applied (store/migrations.py). A change to
-- the schema is a new numbered migration *and* the same change here;
-- tests/contract/test_migrations.py checks that both roads meet.
--
-- The SQLite schema's tables (see sql/sqlite/schema.sql), with native types,
-- plus what replicas sharing the database need to agree on.
-- Product codes compare byte-wise (COLLATE "C"), as in SQLite, so that every
-- replica and both stores order and match codes the same way.

CREATE TABLE runs (
    id              BIGSERIAL PRIMARY KEY,
    source          TEXT        NOT NULL,
    trigger         TEXT        NOT NULL,
    status          TEXT        NOT NULL,
    forced          BOOLEAN     NOT NULL DEFAULT false,
    queued_at       TIMESTAMPTZ NOT NULL,
    started_at      TIMESTAMPTZ,
    finished_at     TIMESTAMPTZ,
    attempts        INTEGER     NOT NULL DEFAULT 0,
    fetched         BIGINT      NOT NULL DEFAULT 0,
    inserted        BIGINT      NOT NULL DEFAULT 0,
    updated         BIGINT      NOT NULL DEFAULT 0,
    deleted         BIGINT      NOT NULL DEFAULT 0,
    invalid         BIGINT      NOT NULL DEFAULT 0,
    used_backup     BOOLEAN     NOT NULL DEFAULT false,
    error           TEXT,
    error_type      TEXT,
    invalid_reasons JSONB,
    owner           TEXT,       -- the replica running it
    mode            TEXT        NOT NULL DEFAULT 'full',
    cursor_before   TEXT,
    cursor_after    TEXT,
    not_modified    BOOLEAN     NOT NULL DEFAULT false
);
CREATE INDEX runs_by_source ON runs (source, id);
CREATE INDEX runs_unfinished ON runs (status) WHERE status IN ('queued', 'running');

CREATE TABLE records (
    source       TEXT        NOT NULL,
    key          TEXT        COLLATE "C" NOT NULL,
    product_code TEXT        COLLATE "C" NOT NULL,
    day          DATE,
    data         TEXT        NOT NULL,
    run_id       BIGINT      NOT NULL,
    changed_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (source, key)
);
CREATE INDEX records_by_product ON records (product_code, source);
CREATE INDEX records_by_day ON records (source, day) WHERE day IS NOT NULL;

CREATE TABLE lineage (
    product_code TEXT        COLLATE "C" NOT NULL,
    source       TEXT        NOT NULL,
    run_id       BIGINT,
    changed_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (product_code, source)
);

CREATE TABLE products (
    code TEXT COLLATE "C" PRIMARY KEY,
    name TEXT
);

CREATE TABLE changes (
    id           BIGSERIAL   PRIMARY KEY,
    product_code TEXT        NOT NULL,
    changed_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX changes_by_time ON changes (changed_at);

CREATE TABLE source_state (
    source              TEXT PRIMARY KEY,
    data_version        BIGINT NOT NULL DEFAULT 0,
    row_count           BIGINT NOT NULL DEFAULT 0,
    last_success_run_id BIGINT,
    last_success_at     TIMESTAMPTZ,
    sync_cursor         TEXT,
    sync_etag           TEXT,
    sync_last_modified  TEXT,
    sync_body_hash      TEXT,
    sync_full_at        TIMESTAMPTZ,
    sync_runs_since_full INTEGER NOT NULL DEFAULT 0
);

-- Replicas prove they are alive by moving heartbeat_at; one whose heartbeat is
-- older than the lease has died, and its sources and runs are taken over.
CREATE TABLE replicas (
    id           TEXT PRIMARY KEY,
    started_at   TIMESTAMPTZ NOT NULL,
    heartbeat_at TIMESTAMPTZ NOT NULL
);

-- Who refreshes each source: at most one replica at a time, and scheduled runs
-- at most once per interval across the cluster (scheduled_at, the database's clock).
CREATE TABLE source_claims (
    source       TEXT PRIMARY KEY,
    owner        TEXT,
    run_id       BIGINT,
    claimed_at   TIMESTAMPTZ,
    scheduled_at TIMESTAMPTZ,
    released     BOOLEAN NOT NULL DEFAULT true
);

-- Operator control: paused sources, read by every replica's scheduler, and the
-- audit of configuration reloads.
CREATE TABLE source_pauses (
    source    TEXT PRIMARY KEY,
    paused_at TIMESTAMPTZ NOT NULL,
    reason    TEXT
);
CREATE TABLE config_reloads (
    id       BIGSERIAL PRIMARY KEY,
    at       TIMESTAMPTZ NOT NULL,
    outcome  TEXT        NOT NULL,
    detail   TEXT        NOT NULL
);

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
