-- Incremental refresh and conditional requests: the audit log tells a run's mode,
-- its cursor before and after and whether nothing was read (304, identical body);
-- each source keeps its cursor and the last good fetch's validators, written in the
-- same transaction as its data.
ALTER TABLE runs ADD COLUMN mode TEXT NOT NULL DEFAULT 'full';
ALTER TABLE runs ADD COLUMN cursor_before TEXT;
ALTER TABLE runs ADD COLUMN cursor_after TEXT;
ALTER TABLE runs ADD COLUMN not_modified INTEGER NOT NULL DEFAULT 0;
ALTER TABLE source_state ADD COLUMN sync_cursor TEXT;
ALTER TABLE source_state ADD COLUMN sync_etag TEXT;
ALTER TABLE source_state ADD COLUMN sync_last_modified TEXT;
ALTER TABLE source_state ADD COLUMN sync_body_hash TEXT;
ALTER TABLE source_state ADD COLUMN sync_full_at TEXT;
ALTER TABLE source_state ADD COLUMN sync_runs_since_full INTEGER NOT NULL DEFAULT 0;
