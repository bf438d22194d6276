-- Operator control (contract 8): a paused source and why, read by every scheduler
-- (so by every replica); and the audit of configuration reloads, applied or refused.
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
