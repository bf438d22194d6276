"""What operators set on the running service, kept in the store so that every
replica and every restart sees it: paused sources, and the audit of reloads.

A mixin of ``SqlStore``: the SQL is the same on both dialects but for the
placeholder, which ``_q`` fills in.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Protocol

from catalog_refresher.store.base import ConfigReload, Pause

_PAUSE = (
    "INSERT INTO source_pauses (source, paused_at, reason) VALUES ({p}, {p}, {p})"
    " ON CONFLICT (source) DO UPDATE SET reason = excluded.reason"
)
_PAUSED = "SELECT source, paused_at, reason FROM source_pauses"
_RESUME = "DELETE FROM source_pauses WHERE source = {p}"
_RELOAD = "INSERT INTO config_reloads (at, outcome, detail) VALUES ({p}, {p}, {p}) RETURNING id"
_RELOADS = "SELECT id, at, outcome, detail FROM config_reloads ORDER BY id DESC LIMIT {p}"


class _Sql(Protocol):
    def _write(self) -> AbstractContextManager[Any]: ...

    def _read(self) -> AbstractContextManager[Any]: ...

    def _q(self, template: str) -> str: ...

    def _time_param(self, value: datetime) -> object: ...

    def _time_value(self, value: object) -> datetime | None: ...


class ControlState:
    """``Store``'s operator-control methods over the ``SqlStore`` plumbing."""

    def pause_source(self: _Sql, source: str, *, at: datetime, reason: str | None) -> Pause:
        with self._write() as conn:
            conn.execute(self._q(_PAUSE), (source, self._time_param(at), reason))
            row = conn.execute(self._q(_PAUSED + " WHERE source = {p}"), (source,)).fetchone()
        paused_at = self._time_value(row[1])
        assert paused_at is not None
        return Pause(source=source, paused_at=paused_at, reason=row[2])

    def resume_source(self: _Sql, source: str) -> bool:
        with self._write() as conn:
            return bool(conn.execute(self._q(_RESUME), (source,)).rowcount)

    def pauses(self: _Sql) -> dict[str, Pause]:
        with self._read() as conn:
            rows = conn.execute(_PAUSED).fetchall()
        found = {}
        for source, paused_at, reason in rows:
            at = self._time_value(paused_at)
            assert at is not None
            found[str(source)] = Pause(source=str(source), paused_at=at, reason=reason)
        return found

    def record_reload(self: _Sql, *, at: datetime, outcome: str, detail: str) -> int:
        with self._write() as conn:
            row = conn.execute(self._q(_RELOAD), (self._time_param(at), outcome, detail))
            return int(row.fetchone()[0])

    def list_reloads(self: _Sql, limit: int = 20) -> list[ConfigReload]:
        with self._read() as conn:
            rows = conn.execute(self._q(_RELOADS), (limit,)).fetchall()
        return [
            ConfigReload(id=int(i), at=self._time_value(at) or datetime.min, outcome=o, detail=d)
            for i, at, o, d in rows
        ]
