"""The catalog's data: record types, source specs, per-record rules, runs, the aggregate. Pure."""
