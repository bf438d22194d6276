"""A database's schema as its own catalog describes it, for comparing two stores.

``describe_sqlite`` reads ``sqlite_master`` and the ``PRAGMA`` functions;
``describe_postgres`` reads ``pg_catalog``. Both return one entry per schema
object (a table's columns, keys, indexes, constraints and triggers each their
own), so a failing comparison names what differs. The migrations a store has
recorded are an entry too.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import psycopg

Schema = dict[str, str]


def normalised(sql: str | None) -> str:
    """``sql`` without comments and with its white space folded (case is kept)."""
    if sql is None:
        return "-"
    text = re.sub(r"--[^\n]*", " ", sql)
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.DOTALL)
    text = re.sub(r"\s+", " ", text).strip()
    return re.sub(r"\s*([(),])\s*", r"\1", text)


def _checks(table_sql: str) -> list[str]:
    """The ``CHECK (...)`` clauses of a ``CREATE TABLE`` (no PRAGMA lists them)."""
    found = []
    for match in re.finditer(r"\bCHECK\(", table_sql, flags=re.IGNORECASE):
        depth, end = 1, match.end()
        while depth and end < len(table_sql):
            depth += {"(": 1, ")": -1}.get(table_sql[end], 0)
            end += 1
        found.append(table_sql[match.start() : end])
    return found


# --- SQLite ---------------------------------------------------------------------------


def describe_sqlite(path: Path) -> Schema:
    """The schema of the SQLite file at ``path``."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        return _sqlite(conn)
    finally:
        conn.close()


def _sqlite(conn: sqlite3.Connection) -> Schema:
    schema: Schema = {}
    tables = conn.execute(
        "SELECT name, type, wr, strict FROM pragma_table_list"
        " WHERE schema = 'main' AND name NOT LIKE 'sqlite_%' ORDER BY name"
    ).fetchall()
    for table, kind, without_rowid, strict in tables:
        (sql,) = conn.execute("SELECT sql FROM sqlite_master WHERE name = ?", (table,)).fetchone()
        text = normalised(sql)
        schema[f"{kind} {table}"] = (
            f"without_rowid={without_rowid} strict={strict}"
            f" autoincrement={'AUTOINCREMENT' in text.upper()} checks={_checks(text)}"
        )
        columns = conn.execute(
            'SELECT cid, name, type, "notnull", dflt_value, pk, hidden'
            " FROM pragma_table_xinfo(?) ORDER BY cid",
            (table,),
        ).fetchall()
        for cid, name, type_, notnull, default, pk, hidden in columns:
            schema[f"{kind} {table} column {name}"] = (
                f"#{cid} {type_} notnull={notnull} default={default} pk={pk} hidden={hidden}"
                f" collation={_column_collation(conn, table, name) if kind == 'table' else '-'}"
            )
        indexes = conn.execute(
            'SELECT name, "unique", origin, partial FROM pragma_index_list(?)', (table,)
        ).fetchall()
        for index, unique, origin, partial in indexes:
            keys = conn.execute(
                'SELECT name, "desc", coll FROM pragma_index_xinfo(?) WHERE key ORDER BY seqno',
                (index,),
            ).fetchall()
            row = conn.execute("SELECT sql FROM sqlite_master WHERE name = ?", (index,)).fetchone()
            schema[f"{kind} {table} index {index}"] = (
                f"unique={unique} origin={origin} partial={partial}"
                f" keys={[(k or '<expression>', d, c) for k, d, c in keys]}"
                f" sql={normalised(row[0] if row else None)}"
            )
        for fk in conn.execute("SELECT * FROM pragma_foreign_key_list(?)", (table,)).fetchall():
            schema[f"{kind} {table} foreign key {fk[0]}.{fk[1]}"] = repr(fk[2:])
    others = conn.execute(
        "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE type IN ('trigger', 'view')"
    ).fetchall()
    for kind, name, table, sql in others:
        schema[f"{kind} {name}"] = f"on {table}: {normalised(sql)}"
    schema["recorded migrations"] = repr(
        conn.execute("SELECT version, name FROM schema_migrations ORDER BY version").fetchall()
    )
    return schema


def _column_collation(conn: sqlite3.Connection, table: str, column: str) -> str:
    """A column's collation: no PRAGMA tells it, but an index on the column inherits it
    (created in a transaction that is rolled back)."""
    conn.execute("BEGIN")
    try:
        conn.execute(f'CREATE INDEX schema_probe ON "{table}" ("{column}")')
        probe = "SELECT coll FROM pragma_index_xinfo('schema_probe') WHERE key"
        return str(conn.execute(probe).fetchone()[0])
    finally:
        conn.execute("ROLLBACK")


def run_sqlite_script(path: Path, script: str) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.executescript(script)
    finally:
        conn.close()


# --- PostgreSQL -----------------------------------------------------------------------

_RELATIONS = """
SELECT c.relname, c.relkind, c.relpersistence, coalesce(c.reloptions::text, '')
FROM pg_class c WHERE c.relnamespace = current_schema()::regnamespace
  AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
"""
_COLUMNS = """
SELECT c.relname, row_number() OVER (PARTITION BY c.oid ORDER BY a.attnum), a.attname,
       format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_get_expr(d.adbin, d.adrelid),
       coalesce(co.collname, '-'), a.attidentity, a.attgenerated
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
LEFT JOIN pg_collation co ON co.oid = a.attcollation
WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
  AND a.attnum > 0 AND NOT a.attisdropped
"""
_CONSTRAINTS = """
SELECT c.relname, k.conname, k.contype, pg_get_constraintdef(k.oid), k.condeferrable
FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
WHERE k.connamespace = current_schema()::regnamespace
"""
_INDEXES = """
SELECT c.relname, i.relname, pg_get_indexdef(i.oid)
FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class c ON c.oid = x.indrelid
WHERE c.relnamespace = current_schema()::regnamespace
"""
_TRIGGERS = """
SELECT c.relname, t.tgname, pg_get_triggerdef(t.oid), t.tgenabled
FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
WHERE c.relnamespace = current_schema()::regnamespace AND NOT t.tgisinternal
"""
_SEQUENCES = """
SELECT s.sequencename, s.data_type::text, s.start_value, s.increment_by, s.min_value,
       s.max_value, s.cycle, coalesce(owner.relname || '.' || a.attname, '-')
FROM pg_sequences s
JOIN pg_class seq ON seq.relname = s.sequencename
  AND seq.relnamespace = current_schema()::regnamespace
LEFT JOIN pg_depend d ON d.objid = seq.oid AND d.classid = 'pg_class'::regclass
  AND d.deptype IN ('a', 'i')
LEFT JOIN pg_class owner ON owner.oid = d.refobjid
LEFT JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
WHERE s.schemaname = current_schema()
"""
_VIEWS = "SELECT viewname, definition FROM pg_views WHERE schemaname = current_schema()"
_FUNCTIONS = """
SELECT p.proname, pg_get_function_identity_arguments(p.oid), pg_get_functiondef(p.oid)
FROM pg_proc p WHERE p.pronamespace = current_schema()::regnamespace AND p.prokind IN ('f', 'p')
"""


def describe_postgres(url: str) -> Schema:
    """The schema of the store at ``url`` (its ``search_path`` names the schema)."""
    with psycopg.connect(url) as conn:
        name = conn.execute("SELECT current_schema()").fetchone()[0]  # type: ignore[index]
        schema: Schema = {}

        def add(key: str, value: str) -> None:
            # Definitions name the schema where it is not on the search path: drop it.
            schema[key] = value.replace(f"{name}.", "")

        for relation, kind, persistence, options in conn.execute(_RELATIONS):
            add(f"relation {relation}", f"kind={kind} persistence={persistence} {options}")
        for (
            table,
            n,
            column,
            type_,
            notnull,
            default,
            collation,
            identity,
            generated,
        ) in conn.execute(_COLUMNS):
            add(
                f"table {table} column {column}",
                f"#{n} {type_} notnull={notnull} default={default} collation={collation}"
                f" identity={identity!r} generated={generated!r}",
            )
        for table, constraint, kind, definition, deferrable in conn.execute(_CONSTRAINTS):
            add(f"table {table} constraint {constraint}", f"{kind} {definition} {deferrable}")
        for table, index, definition in conn.execute(_INDEXES):
            add(f"table {table} index {index}", definition)
        for table, trigger, definition, enabled in conn.execute(_TRIGGERS):
            add(f"table {table} trigger {trigger}", f"{definition} enabled={enabled}")
        for sequence, *details, owner in conn.execute(_SEQUENCES):
            add(f"sequence {sequence}", f"{details} owned by {owner}")
        for view, definition in conn.execute(_VIEWS):
            add(f"view {view}", normalised(definition))
        for function, arguments, definition in conn.execute(_FUNCTIONS):
            add(f"function {function}({arguments})", normalised(definition))
        recorded = conn.execute("SELECT version, name FROM schema_migrations ORDER BY version")
        add("recorded migrations", repr([tuple(row) for row in recorded]))
        return schema


def run_postgres_script(url: str, script: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(script.encode())
