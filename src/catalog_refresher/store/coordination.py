"""Who runs a source now, when several replicas share one store (contract 7).

Every run starts with a claim. A replica alone (the SQLite store) is always
granted it: ``Solo``. Replicas sharing PostgreSQL ask the database
(``store/postgres_cluster.py``), whose clock decides for all of them: one
replica at a time per source, a scheduled run at most once per interval across
the cluster, and the claim of a replica that stopped heart-beating is taken over.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from catalog_refresher.domain.runs import Run, Trigger
from catalog_refresher.store.base import Store


@dataclass(frozen=True, slots=True, kw_only=True)
class Claim:
    granted: bool
    run: Run | None = None
    """Granted: the run created for this replica. Refused: the run another replica
    has in flight, if that is why."""
    retry_after: timedelta | None = None
    """Refused: when asking again makes sense."""


class Coordinator(Protocol):
    heartbeat_every: timedelta | None
    """How often ``heartbeat`` must be called; ``None`` when there are no peers."""

    def claim(
        self,
        source: str,
        *,
        trigger: Trigger,
        forced: bool,
        at: datetime,
        interval: timedelta | None,
    ) -> Claim:
        """Create a run of ``source`` for this replica, if it may run it now.

        ``interval`` is given for a scheduled run: refused if the source's last
        scheduled run, by any replica, started less than ``interval`` ago.
        """
        ...

    def release(self, source: str, run_id: int) -> None:
        """The run ended: the source is free for any replica."""
        ...

    def heartbeat(self) -> None:
        """This replica is alive; its claims stay its own."""
        ...

    def orphaned(self) -> list[str]:
        """Sources whose run was left unfinished by a replica that is gone (its lease
        ran out): a scheduled claim of one is granted at once, whatever its interval."""
        ...

    def leave(self) -> None:
        """This replica stops: peers may take its sources at once."""
        ...


class Solo:
    """The coordinator of a replica without peers: every claim is granted."""

    heartbeat_every: timedelta | None = None

    def __init__(self, store: Store) -> None:
        self.store = store

    def claim(
        self,
        source: str,
        *,
        trigger: Trigger,
        forced: bool,
        at: datetime,
        interval: timedelta | None,
    ) -> Claim:
        run = self.store.create_run(source=source, trigger=trigger, forced=forced, at=at)
        return Claim(granted=True, run=run)

    def release(self, source: str, run_id: int) -> None:
        pass

    def heartbeat(self) -> None:
        pass

    def orphaned(self) -> list[str]:
        return []  # alone, an earlier process's runs are recovered at start

    def leave(self) -> None:
        pass
