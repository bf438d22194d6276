"""The fault matrix's machinery: a cell is one fault against a real `catalog-refresher run`.

Every cell starts the service on two sources of ``tests/fault_source.py`` (the ERP
victim, paged, and the e-shop bystander; one-second intervals), waits for both to
succeed, injects its fault while the victim's data moves to generation 2, and then
``Checker`` looks at every invariant the same way for every cell:

- ``schedule``: the bystander keeps its schedule (runs start on time and succeed);
- ``served``: the API still serves the victim's last good data (generation 1);
- ``truth``: ``/health``, ``/api/sources`` and ``/metrics`` say what happened;
- ``atomic``: the store holds exactly one generation of the victim's rows;
- ``settled``: no run is left ``running`` (nor ``queued``);
- ``converges``: once the fault is gone, the API serves the source's data (generation 2).

A check records ``✓`` or what happened instead (the text ``docs/reliability.md``
shows); a cell does not stop at a failed check, so one run fills a whole row.
"""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from tests.e2e.processes import ServiceProcess, free_port
from tests.fault_source import GENERATION, PAGE_SIZE, PRODUCTS, FaultSource, code, stock

OK = "✓"
INVARIANTS = {
    "schedule": "other sources keep their schedule",
    "served": "last good data stays served",
    "truth": "health, /api/sources, metrics tell the truth",
    "atomic": "nothing half-applied",
    "settled": "no run left running",
    "converges": "converges after recovery",
}
INTERVAL = 1.0
#: How late a bystander's run may start (seconds past its slot): a loaded two-core machine
#: running the cells side by side starts a one-second run up to a few seconds late.
LATE = 3.0
REFRESH_TIMEOUT = 10.0
VICTIM, BYSTANDER = "erp_stock", "eshop_stock"


@dataclass
class Cell:
    """One fault's row of the matrix: a result per invariant, and the service's log."""

    fault: str
    results: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    log: str = ""
    error: str = ""
    seconds: float = 0.0

    def check(self, invariant: str, ok: bool, otherwise: str) -> bool:
        """Record ``invariant`` as held, or what happened instead (the first miss stays)."""
        assert invariant in INVARIANTS, invariant
        if not ok:
            self.results[invariant] = otherwise
        else:
            self.results.setdefault(invariant, OK)
        return ok

    def not_applicable(self, invariant: str, why: str) -> None:
        self.results[invariant] = f"n/a: {why}"

    def failures(self) -> dict[str, str]:
        missing = {name: "not checked" for name in INVARIANTS if name not in self.results}
        failed = {
            name: result
            for name, result in self.results.items()
            if result != OK and not result.startswith("n/a")
        }
        return {**missing, **failed}


def now() -> datetime:
    return datetime.now(UTC)


def moment(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def deadline_poll(read: Callable[[], Any], until: Callable[[Any], bool], seconds: float) -> Any:
    """``read()`` until ``until(result)``, at most ``seconds``; the last result either way."""
    ends = time.monotonic() + seconds
    while True:
        with contextlib.suppress(OSError, ValueError):
            result = read()
            if until(result) or time.monotonic() > ends:
                return result
        if time.monotonic() > ends:
            return None
        time.sleep(0.05)


class Api:
    """The running service's HTTP API."""

    def __init__(self, url: str) -> None:
        self.url = url

    def get(self, path: str, timeout: float = 10) -> tuple[int, Any]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=timeout) as answer:
                status, body = answer.status, answer.read()
        except urllib.error.HTTPError as error:
            status, body = error.code, error.read()
        try:
            return status, json.loads(body)
        except ValueError:
            return status, body.decode(errors="replace")

    def ok(self, path: str) -> Any:
        """The body of a 200 answer; ``ValueError`` (which polling waits out) for another,
        e.g. the 503 of a store not reachable yet."""
        status, body = self.get(path)
        if status != 200:
            raise ValueError(f"GET {path}: {status} {body!r:.200}")
        return body

    def sources(self) -> dict[str, dict[str, Any]]:
        return {entry["id"]: entry for entry in self.ok("/api/sources")}

    def runs(self, source: str) -> list[dict[str, Any]]:
        return list(self.ok(f"/api/runs?source={source}&limit=100")["items"])

    def metric(self, name: str, **labels: str) -> float:
        wanted = ",".join(f'{key}="{value}"' for key, value in labels.items())
        text = self.get("/metrics")[1]
        for line in text.splitlines():
            if line.startswith(f"{name}{{{wanted}}} "):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def victim_stocks(
        self, products: int = PRODUCTS, one_by_one: bool = False
    ) -> dict[str, float | None]:
        """The victim's stock of every product as the API serves it: from the product list,
        or ``one_by_one`` from each product's own URL (a sample of ``SAMPLE`` products when
        there are more than 100)."""
        if products > 100 or one_by_one:
            found = {}
            for n in sampled(products):
                status, item = self.get(f"/api/products/{code(n)}")
                found[code(n)] = item["stock"]["erp"] if status == 200 else status
            return found
        status, page = self.get(f"/api/products?limit={products}")
        if status != 200:
            return {"GET /api/products": status}
        return {item["product_code"]: item["stock"]["erp"] for item in page["items"]}


SAMPLE = 25


def sampled(products: int) -> list[int]:
    if products <= 100:
        return list(range(products))
    return sorted({*range(0, products, products // SAMPLE), products - 1})


def generation(products: int, gen: int) -> dict[str, float]:
    """What the API serves of generation ``gen`` (of the sample, for many products)."""
    return {code(n): float(stock(n, gen)) for n in sampled(products)}


class StoreView(Protocol):
    """What the checker reads from the store itself, beside the API."""

    def victim_rows(self) -> list[tuple[str, float]]: ...

    def open_runs(self) -> list[tuple[int, str, str]]: ...


class SqliteView:
    def __init__(self, path: Path) -> None:
        self.path = path

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=10)
        try:
            yield conn
        finally:
            conn.close()

    def victim_rows(self) -> list[tuple[str, float]]:
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT product_code, data FROM records WHERE source = ?", (VICTIM,)
            )
            return [(key, float(json.loads(data)["stock"])) for key, data in rows]

    def open_runs(self) -> list[tuple[int, str, str]]:
        with self._connect() as conn:
            query = "SELECT id, source, status FROM runs WHERE status IN ('queued', 'running')"
            return list(conn.execute(query))


class PostgresView:
    def __init__(self, dsn: str) -> None:
        self.dsn = dsn

    def _query(self, sql: str, *args: object) -> list[tuple[Any, ...]]:
        import psycopg

        with psycopg.connect(self.dsn, connect_timeout=5) as conn:
            return list(conn.execute(sql, args).fetchall())

    def victim_rows(self) -> list[tuple[str, float]]:
        rows = self._query("SELECT product_code, data FROM records WHERE source = %s", VICTIM)
        return [
            (key, float((json.loads(d) if isinstance(d, str) else d)["stock"])) for key, d in rows
        ]

    def open_runs(self) -> list[tuple[int, str, str]]:
        return [
            (int(i), str(s), str(st))
            for i, s, st in self._query(
                "SELECT id, source, status FROM runs WHERE status IN ('queued', 'running')"
            )
        ]


def config(
    work: Path,
    source: FaultSource,
    store_url: str,
    port: int,
    victim: dict[str, object] | None = None,
    **repository: object,
) -> Path:
    """The service's configuration: the victim (paged) and the bystander, every second."""
    paging = {
        "Kind": "offset",
        "OffsetParameter": "start",
        "SizeParameter": "limit",
        "PageSize": PAGE_SIZE if source.products <= PRODUCTS else 20_000,
        "TotalPath": "total",
    }
    document = {
        "CatalogRepository": {
            "ErpStockRefreshInterval": "00:00:01",
            "EshopStockRefreshInterval": "00:00:01",
            "RefreshTimeout": f"00:00:{REFRESH_TIMEOUT:02.0f}",
            "RetryAttempts": 1,
            "RetryBaseDelay": "00:00:00.100",
            "CircuitBreakerFailureThreshold": 1000,
            "ShutdownGracePeriod": "00:00:10",
            **repository,
        },
        "Sources": {
            "ErpStock": {
                "Url": source.erp_url,
                "RecordsPath": "items",
                "RequestTimeout": "00:00:05",
                "Paging": paging,
                **(victim or {}),
            },
            "EshopStock": {"Url": source.eshop_url},
        },
        "Store": {"Url": store_url},
        "Api": {"Port": port},
    }
    path = work / "appsettings.json"
    path.write_text(json.dumps(document))
    return path


def start(
    work: Path,
    source: FaultSource,
    store_url: str,
    victim: dict[str, object] | None = None,
    **repository: object,
) -> ServiceProcess:
    """The service on ``config``; ``victim`` adds options of the victim source."""
    port = free_port()
    path = config(work, source, store_url, port, victim, **repository)
    return ServiceProcess(path, f"http://127.0.0.1:{port}")


class Checker:
    """The invariants, checked the same way for every fault."""

    def __init__(self, cell: Cell, api: Api, view: StoreView, products: int = PRODUCTS) -> None:
        self.cell = cell
        self.api = api
        self.view = view
        self.products = products

    # -- waiting ------------------------------------------------------------------------

    def wait_healthy_start(self, seconds: float = 120) -> None:
        """Until both sources have succeeded once (the last good data exists; a first run
        may time out on a loaded machine while the worker process starts)."""
        result = deadline_poll(
            self.api.sources,
            lambda s: all(s[x]["last_success_at"] for x in (VICTIM, BYSTANDER)),
            seconds,
        )
        assert result is not None, "the API never answered"
        statuses = {x: result[x]["last_status"] for x in (VICTIM, BYSTANDER)}
        assert all(result[x]["last_success_at"] for x in statuses), f"no good run: {statuses}"

    def wait_run(self, since: datetime, statuses: Iterable[str], seconds: float = 40) -> dict:
        """The victim's first run that started at ``since`` or later and ended in one of
        ``statuses``; fails the cell with the runs seen when there is none in time."""
        wanted = set(statuses)

        def found() -> list[dict[str, Any]]:
            return [
                run
                for run in self.api.runs(VICTIM)
                if run["status"] in wanted and (moment(run["started_at"]) or since) >= since
            ]

        runs = deadline_poll(found, bool, seconds)
        if not runs:
            seen = [(r["id"], r["status"], r["error"]) for r in self.api.runs(VICTIM)[:5]]
            raise AssertionError(f"no {VICTIM} run ended {sorted(wanted)} in {seconds} s: {seen}")
        return runs[-1]

    # -- the invariants -------------------------------------------------------------------

    def served(self, gen: int | tuple[int, ...] = 1, one_by_one: bool = False) -> None:
        """The API serves generation ``gen`` of the victim (or one of ``gen``), every
        product of the same one."""
        stocks = self.api.victim_stocks(self.products, one_by_one)
        gens = (gen,) if isinstance(gen, int) else gen
        want = generation(self.products, gens[0])
        wrong = {c: v for c, v in stocks.items() if want.get(c) != v}
        self.cell.check(
            "served",
            any(stocks == generation(self.products, g) for g in gens),
            f"{len(wrong)} products not generation {gens}, e.g. {list(wrong.items())[:2]}",
        )

    def served_or_unavailable(self, gen: int = 1, within: float = 5.0, reads: int = 4) -> None:
        """With the store down: each of ``reads`` product reads answers generation ``gen``
        (a cached aggregate) or a 503 problem within ``within`` seconds; never other data
        or a 500."""
        want = dict(list(generation(self.products, gen).items())[:reads])
        served, unavailable, wrong = 0, 0, []
        for product, value in want.items():
            started = time.monotonic()
            try:
                status, body = self.api.get(f"/api/products/{product}", timeout=within)
            except OSError as exc:
                wrong.append((product, f"no answer within {within:g} s: {exc}"))
                continue
            if status == 200 and body["stock"]["erp"] == value:
                served += 1
            elif status == 503:
                unavailable += 1
            else:
                wrong.append((product, status))
            took = time.monotonic() - started
            if took > within:
                wrong.append((product, f"took {took:.1f} s"))
        self.cell.notes.append(
            f"product reads with the store down: {served} served from the cache, "
            f"{unavailable} answered 503"
        )
        self.cell.check("served", not wrong, f"reads with the store down: {wrong[:3]}")

    def atomic(self, allowed: Iterable[int] = (1,)) -> set[int]:
        """The store holds every victim row of exactly one generation among ``allowed``."""
        rows = dict(self.view.victim_rows())
        gens = {int(value) // GENERATION for value in rows.values()}
        found = {
            gen
            for gen in allowed
            if rows == {code(n): float(stock(n, gen)) for n in range(self.products)}
        }
        self.cell.check(
            "atomic",
            len(found) == 1,
            f"{len(rows)} stored rows are not one whole generation of {sorted(allowed)} "
            f"(generations seen: {sorted(gens)})",
        )
        return found

    def truth(
        self, run: dict, status: str, error_type: str, failures_before: float, health: str
    ) -> None:
        """``/health``, ``/api/sources`` and ``/metrics`` report ``run`` as it ended."""
        cell = self.cell
        started = time.monotonic()
        code_, body = self.api.get("/health")
        took = time.monotonic() - started
        cell.check("truth", took < 1.0, f"/health took {took:.1f} s")
        if isinstance(body, dict):
            entry = body["entries"][VICTIM]["status"]
            cell.check(
                "truth",
                body["status"] == health and entry == health,
                f"/health {code_} {body['status']}, {VICTIM} {entry} (wanted {health})",
            )
        else:
            cell.check("truth", False, f"/health {code_}: {body!r:.100}")
        source = self.api.sources()[VICTIM]
        error = source.get("last_error") or ""
        cell.check(
            "truth",
            source["last_status"] == status,
            f"/api/sources last_status {source['last_status']} (wanted {status})",
        )
        cell.check(
            "truth",
            bool(error) and "\n" not in error and "Traceback" not in error,
            f"last_error is not one line naming the cause: {error!r:.120}",
        )
        count = self.api.metric(
            "catalog_refresh_failure_total", data_type=VICTIM, error_type=error_type
        )
        cell.check(
            "truth",
            count > failures_before,
            f"catalog_refresh_failure_total{{error_type={error_type!r}}} stayed {count:g}",
        )
        cell.notes.append(f"run {run['id']} {run['status']}: {run['error']}")

    def schedule(self, since: datetime, runs: int = 3, seconds: float = 15) -> None:
        """The bystander's runs from ``since`` on: at least ``runs`` of them, each started at
        most ``INTERVAL + LATE`` after the one before, every one succeeded."""

        def mine() -> list[dict[str, Any]]:
            return [
                run
                for run in self.api.runs(BYSTANDER)
                if (moment(run["started_at"]) or since) >= since
                and run["status"] not in ("queued", "running")
            ]

        seen = deadline_poll(mine, lambda r: len(r) >= runs, seconds) or []
        starts = sorted(moment(run["started_at"]) for run in seen if run["started_at"])
        gaps = [
            (later - earlier).total_seconds()
            for earlier, later in zip([since, *starts], starts, strict=False)
        ]
        failed = [(r["id"], r["status"]) for r in seen if r["status"] != "succeeded"]
        self.cell.check(
            "schedule",
            len(seen) >= runs and not failed and max(gaps, default=99) <= INTERVAL + LATE,
            f"{BYSTANDER}: {len(seen)} runs, not succeeded {failed[:3]}, "
            f"largest gap {max(gaps, default=0):.1f} s",
        )

    def in_flight(self, since: datetime) -> int | None:
        """The id of the victim's run ``running`` now, started at ``since`` or later."""
        for run in self.api.runs(VICTIM):
            started = moment(run["started_at"])
            if run["status"] == "running" and started is not None and started >= since:
                return int(run["id"])
        return None

    def wait_finished(self, run_id: int | None, seconds: float = 20) -> dict[str, Any]:
        """Run ``run_id`` once it has ended (fails the cell if it does not in time)."""
        assert run_id is not None, "no run was in flight"
        run = deadline_poll(
            lambda: self.api.get(f"/api/runs/{run_id}")[1],
            lambda r: r["status"] not in ("queued", "running"),
            seconds,
        )
        assert run is not None, f"run {run_id} did not end within {seconds:g} s"
        assert run["status"] not in ("queued", "running"), f"run {run_id} still {run['status']}"
        return dict(run)

    def running_for(self, since: datetime) -> float:
        """How long the victim's run started at ``since`` or later has been running (0: none)."""
        for run in self.api.runs(VICTIM):
            started = moment(run["started_at"])
            if run["status"] == "running" and started is not None and started >= since:
                return (now() - started).total_seconds()
        return 0.0

    def none_stuck(self) -> None:
        """No run is ``running`` longer than ``RefreshTimeout`` (and a little)."""
        stuck = []
        for source in (VICTIM, BYSTANDER):
            for run in self.api.runs(source):
                started = moment(run["started_at"])
                if run["status"] == "running" and started is not None:
                    age = (now() - started).total_seconds()
                    if age > REFRESH_TIMEOUT + 2:
                        stuck.append((run["id"], f"{age:.1f} s"))
        self.cell.check("settled", not stuck, f"runs running past RefreshTimeout: {stuck}")

    def settled(self) -> None:
        """After the service stopped: no run in the store is ``queued`` or ``running``."""
        left = self.view.open_runs()
        self.cell.check("settled", not left, f"runs left open: {left}")

    def converges(self, gen: int = 2, seconds: float = 40) -> None:
        want = generation(self.products, gen)
        started = time.monotonic()
        stocks = deadline_poll(lambda: self.api.victim_stocks(self.products), want.__eq__, seconds)
        took = time.monotonic() - started
        if self.cell.check(
            "converges", stocks == want, f"not generation {gen} within {seconds:g} s"
        ):
            self.cell.notes.append(f"converged {took:.1f} s after the fault was removed")


def failures_of(api: Api, error_type: str) -> float:
    return api.metric("catalog_refresh_failure_total", data_type=VICTIM, error_type=error_type)


ERROR_LINE = re.compile(r"Error refreshing|Rejected")
