-- Incremental refresh and conditional requests (see sql/sqlite/003_incremental.sql).
ALTER TABLE runs ADD COLUMN mode TEXT NOT NULL DEFAULT 'full';
ALTER TABLE runs ADD COLUMN cursor_before TEXT;
ALTER TABLE runs ADD COLUMN cursor_after TEXT;
ALTER TABLE runs ADD COLUMN not_modified BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE source_state ADD COLUMN sync_cursor TEXT;
ALTER TABLE source_state ADD COLUMN sync_etag TEXT;
ALTER TABLE source_state ADD COLUMN sync_last_modified TEXT;
ALTER TABLE source_state ADD COLUMN sync_body_hash TEXT;
ALTER TABLE source_state ADD COLUMN sync_full_at TIMESTAMPTZ;
ALTER TABLE source_state ADD COLUMN sync_runs_since_full INTEGER NOT NULL DEFAULT 0;
