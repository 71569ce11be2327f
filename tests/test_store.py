"""The store from a blank database: migrations forward-only, the run log; SQLite (WAL) and PostgreSQL."""

import sqlite3

import pytest

from endcloud.errors import StoreError
from endcloud.store import MIGRATIONS, Store


def test_blank_database_gets_all_migrations(tmp_path):
    path = tmp_path / "s.db"
    with Store.open(path) as store:
        assert store.applied_migrations() == [name for name, _ in MIGRATIONS]
        assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store.conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert store.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    # Reopening applies nothing new.
    with Store.open(path) as store:
        assert store.migrate(MIGRATIONS) == []


def test_migration_names_are_unique_and_ordered():
    names = [name for name, _ in MIGRATIONS]
    assert len(names) == len(set(names))
    assert names == sorted(names), "migrations are applied in list order; keep names sorted"


def test_new_migration_is_applied_once_and_failed_one_rolls_back(tmp_path):
    path = tmp_path / "s.db"
    extra = MIGRATIONS + [("9000_t", "CREATE TABLE t (x INTEGER);\nINSERT INTO t VALUES (1);")]
    with Store.open(path, migrations=extra) as store:
        assert store.conn.execute("SELECT x FROM t").fetchone()[0] == 1
    broken = extra + [("9001_bad", "CREATE TABLE u (x);\nTHIS IS NOT SQL;")]
    with pytest.raises(StoreError, match="9001_bad"):
        Store.open(path, migrations=broken)
    with Store.open(path, migrations=extra) as store:
        tables = {r[0] for r in store.conn.execute("SELECT name FROM sqlite_master")}
        assert "u" not in tables  # the failed migration left nothing behind


def test_database_from_a_newer_version_is_refused(tmp_path):
    path = tmp_path / "s.db"
    Store.open(path, migrations=MIGRATIONS + [("9999_future", "SELECT 1;")]).close()
    with pytest.raises(StoreError, match="newer endcloud"):
        Store.open(path)


def test_not_a_database(tmp_path):
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError):
        Store.open(path)


def test_run_log(tmp_path):
    with Store.open(tmp_path / "s.db") as store:
        rid = store.start_run("data", tmp_path / "runs" / "x", {"a": 1})
        assert store.runs("data")[0]["status"] == "running"
        store.finish_run(rid, stats={"samples": 3})
        row = store.runs("data")[0]
        assert row["status"] == "ok" and '"samples": 3' in row["stats_json"]
        rid2 = store.start_run("data", "y", {})
        store.finish_run(rid2, error="boom")
        assert store.runs()[1]["status"] == "failed"
    # Committed: visible from a fresh connection.
    conn = sqlite3.connect(tmp_path / "s.db")
    assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 2


def test_evolve_items_keep_their_rows_and_accept_served_cloud_labels(tmp_path):
    path = tmp_path / "s.db"
    upto = [m for m in MIGRATIONS if m[0] <= "0006_evolve"]
    with Store.open(path, migrations=upto) as store:  # a database from before 0007
        store.conn.execute("INSERT INTO evolve_rounds (round_dir, status, started_at) VALUES ('r', 'refused', 't')")
        store.conn.execute("INSERT INTO evolve_items (round_id, exchange_id, reasons, final, label_source) "
                           "VALUES (1, 'ex-1', 'low_final', 0.1, 'cloud')")
        with pytest.raises(sqlite3.IntegrityError):
            store.conn.execute("INSERT INTO evolve_items (round_id, exchange_id, reasons, label_source) "
                               "VALUES (1, 'ex-2', 'disliked', 'served-cloud')")
    with Store.open(path) as store:
        assert "0007_evolve_served_cloud" in store.applied_migrations()
        rows = store.conn.execute("SELECT exchange_id, final, label_source FROM evolve_items").fetchall()
        assert [tuple(r) for r in rows] == [("ex-1", 0.1, "cloud")]
        store.conn.execute("INSERT INTO evolve_items (round_id, exchange_id, reasons, label_source) "
                           "VALUES (1, 'ex-2', 'disliked', 'served-cloud')")
        with pytest.raises(sqlite3.IntegrityError):
            store.conn.execute("INSERT INTO evolve_items (round_id, exchange_id, reasons, label_source) "
                               "VALUES (1, 'ex-3', 'disliked', 'robot')")
        assert store.conn.execute("PRAGMA foreign_key_check").fetchall() == []
        assert store.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_the_handoff_migration_rebuilds_exchanges_and_keeps_every_row(tmp_path):
    """0010 recreates serve_exchanges (its CHECK gains 'staff'); rows, the feedback and review
    rows that reference them, and the corrections view survive; foreign keys hold."""
    import sqlite3

    from endcloud.records import Exchange
    from endcloud.store.conversations import add_exchange, new_conversation, new_customer
    from endcloud.store.feedback import add_feedback, add_review
    from endcloud.store.migrations import MIGRATIONS

    names = [n for n, _ in MIGRATIONS]
    before = MIGRATIONS[: names.index("0010_handoff")]
    store = Store.open(tmp_path / "s.db", migrations=before)
    conn = store.conn
    new_customer(conn, "c1", "tok")
    cid = new_conversation(conn, "c1")
    insert = ("INSERT INTO serve_exchanges (id, conversation_id, model, context_json, query, reply, "
              "answered_by, finish_reason, latency_ms, created_at, grounded) VALUES "
              "(?, ?, 'end', '[]', ?, ?, ?, 'stop', 5.0, '2026-12-01', 1.0)")
    conn.execute(insert, ("x1", cid, "在吗", "在的", "end"))
    add_feedback(conn, "x1", "down", None, "不好")
    add_review(conn, "x1", None, None, "亲，在的哦", "staff")
    with pytest.raises(sqlite3.IntegrityError):  # before 0010, no exchange is answered by staff
        conn.execute(insert, ("x2", cid, "q", "r", "staff"))
    store.close()
    store = Store.open(tmp_path / "s.db")
    conn = store.conn
    assert store.applied_migrations()[-1] == names[-1]
    row = conn.execute("SELECT query, reply, grounded, staff FROM serve_exchanges WHERE id = 'x1'").fetchone()
    assert tuple(row) == ("在吗", "在的", 1.0, None)
    assert conn.execute("SELECT reply FROM serve_corrections").fetchone()[0] == "亲，在的哦"
    add_exchange(conn, Exchange("x2", cid, "staff", [], "q", "r", "staff", "stop", 0.0, staff="alice"))
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1  # back on after the rebuild
    with pytest.raises(sqlite3.IntegrityError):  # and enforced
        conn.execute("INSERT INTO serve_feedback (exchange_id, thumb, created_at) VALUES ('nope', 'up', '')")
    store.close()


@pytest.mark.parametrize("value", ["mysql://x", "sqlite:///tmp/x.db"])
def test_an_unknown_store_url_is_refused_by_name_not_taken_for_a_folder(value, tmp_path, monkeypatch):
    from endcloud.config import load_config
    from endcloud.errors import ConfigError
    from endcloud.serve.config import ServeConfig

    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"^store: .*:// stores are not supported"):
        load_config(ServeConfig, None, [f"store={value}"])
    with pytest.raises(ConfigError, match="not supported"):
        Store.open(value)
    monkeypatch.setenv("ENDCLOUD_DB", value)
    with pytest.raises(ConfigError, match="^ENDCLOUD_DB: "):
        Store.open()
    assert list(tmp_path.iterdir()) == []  # no folder called `mysql:` was made


def test_an_unreachable_postgresql_store_fails_with_one_line_and_no_password(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StoreError) as info:
        Store.open("postgresql://shop:s3cret@127.0.0.1:9/endcloud?connect_timeout=2")
    msg = str(info.value)
    assert msg.startswith("postgresql://shop:***@127.0.0.1:9/endcloud") and "cannot connect" in msg
    assert "s3cret" not in msg and "\n" not in msg
    assert list(tmp_path.iterdir()) == []


# -- PostgreSQL: the same migrations and schema, the same SQL -----------------------------------
def test_both_backends_have_the_same_migrations_and_the_same_columns(tmp_path, pg_server):
    from endcloud.store.pg_migrations import PG_MIGRATIONS

    assert [n for n, _ in PG_MIGRATIONS] == [n for n, _ in MIGRATIONS]
    with Store.open(tmp_path / "s.db") as lite:
        tables = [r[0] for r in lite.conn.execute(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite%'")]
        want = {t: {r[1] for r in lite.conn.execute(f"PRAGMA table_info({t})")} for t in tables}
    with Store.open(pg_server.new_database()) as pg:
        assert pg.applied_migrations() == [n for n, _ in MIGRATIONS]
        got: dict[str, set[str]] = {}
        for t, c in pg.conn.execute("SELECT table_name, column_name FROM information_schema.columns "
                                    "WHERE table_schema = 'public'"):
            got.setdefault(t, set()).add(c)
    got = {t: cols - {"rowid"} for t, cols in got.items()}  # SQLite's rowid is implicit
    want = {t: cols - {"rowid"} for t, cols in want.items()}
    assert got == want


def test_postgresql_sql_parameters_are_rewritten_outside_quotes_only():
    from endcloud.store.postgres import pg_sql

    assert pg_sql("SELECT * FROM t WHERE a = ? AND b = :name") == "SELECT * FROM t WHERE a = %s AND b = %(name)s"
    assert pg_sql("SELECT '?', ':x', 'it''s ?' WHERE a LIKE 'x%' AND b = ?") == \
        "SELECT '?', ':x', 'it''s ?' WHERE a LIKE 'x%' AND b = %s"
    assert pg_sql("SELECT x::text, 5 % 2 -- what? :y\nFROM t") == "SELECT x::text, 5 %% 2 -- what? :y\nFROM t"


def test_postgresql_store_migrates_once_under_concurrent_opens_and_maps_errors(pg_server):
    import threading

    url = pg_server.new_database()
    errors: list[BaseException] = []

    def open_close() -> None:
        try:
            Store.open(url).close()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=open_close) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with Store.open(url) as store:
        assert store.applied_migrations() == [n for n, _ in MIGRATIONS]
        assert store.location == url and store.dialect == "postgresql"
        with pytest.raises(sqlite3.IntegrityError):  # the PEP 249 class, as on SQLite
            store.conn.execute("INSERT INTO serve_feedback (exchange_id, thumb, created_at) "
                               "VALUES ('nope', 'up', '')")
        row = store.conn.execute("SELECT 1 AS one, 'a' AS two").fetchone()
        assert (row[0], row["two"], dict(row)) == (1, "a", {"one": 1, "two": "a"})
        assert store.conn.execute("SELECT AVG(x) FROM (VALUES (1), (2)) v(x)").fetchone()[0] == 1.5


def test_a_postgresql_password_never_reaches_a_message(pg_server):
    url = pg_server.new_database().replace("endcloud@", "endcloud:pw-canary-93@")
    with Store.open(url) as store:  # trust auth: the password is not checked, only carried
        assert "pw-canary-93" not in store.location and "***" in store.location


def test_passwords_are_redacted_in_every_url_form():
    from endcloud.store.postgres import redact, scrub

    assert redact("postgresql://u:s3cret@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert redact("postgresql://u@h/db?sslmode=require&password=s3cret") == \
        "postgresql://u@h/db?sslmode=require&password=***"
    assert redact("postgresql://u:p@h:notaport/db") == "postgresql://u:***@h:notaport/db"  # no parsing
    assert scrub('invalid percent-encoded token: "se%zzcret"', "postgresql://u:se%zzcret@h/db") == \
        'invalid percent-encoded token: "***"'


def test_a_postgresql_constraint_error_does_not_quote_the_row(pg_server):
    with Store.open(pg_server.new_database()) as store:
        with pytest.raises(sqlite3.IntegrityError) as info:
            store.conn.execute("INSERT INTO serve_customers (id, token_sha256, created_at) "
                               "VALUES ('c', 'h', 'x')")
            store.conn.execute("INSERT INTO serve_conversations (id, customer_id, created_at) "
                               "VALUES ('v', 'c', 'x')")
            store.conn.execute("INSERT INTO serve_exchanges (id, conversation_id, model, context_json, "
                               "query, reply, answered_by, latency_ms, finish_reason, created_at) VALUES "
                               "('e', 'v', 'm', '[]', 'my phone is 13800138000', 'r', 'nobody', 0, 's', 'x')")
    assert "13800138000" not in str(info.value) and "check constraint" in str(info.value)


def test_a_cancelled_write_does_not_stop_the_writer(tmp_path):
    import asyncio
    import time as _time

    from endcloud.store.writer import ServeStore

    db = ServeStore(tmp_path / "w.db")

    def slow(conn):
        _time.sleep(0.3)
        return conn.execute("SELECT 1").fetchone()[0]

    async def scenario() -> int:
        first = asyncio.ensure_future(db.write(slow))
        with pytest.raises(asyncio.TimeoutError):  # the customer went away: its future is cancelled
            await asyncio.wait_for(db.write(lambda conn: 2), 0.05)
        await first
        return await asyncio.wait_for(db.write(lambda conn: 3), 5)  # the writer still answers

    try:
        assert asyncio.run(scenario()) == 3
    finally:
        db.close()
