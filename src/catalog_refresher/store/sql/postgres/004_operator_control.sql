-- Operator control (see sql/sqlite/004_operator_control.sql).
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
