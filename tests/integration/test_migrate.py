import asyncpg

from analyzer_runtime.ledger.migrate import available, migrate


async def test_migrations_are_recorded_and_applied_once(db_url: str) -> None:
    conn = await asyncpg.connect(db_url)
    try:
        # The template already ran them: nothing is new, and every file is recorded.
        assert await migrate(conn) == []
        recorded = [
            r["version"]
            for r in await conn.fetch("SELECT version FROM schema_migrations ORDER BY 1")
        ]
        assert recorded == [m.version for m in available()]
        assert recorded == sorted(recorded) and len(recorded) >= 2
        cols = {
            r["column_name"]: r["udt_name"]
            for r in await conn.fetch(
                "SELECT column_name, udt_name FROM information_schema.columns WHERE table_name = 'tracks'"
            )
        }
        assert cols["lyrics_embedding"] == "vector"
        assert cols["genius_id"] == "int8"
    finally:
        await conn.close()


async def test_analysis_results_refuse_a_second_row_per_version(db_url: str) -> None:
    conn = await asyncpg.connect(db_url)
    try:
        tid = await conn.fetchval(
            "INSERT INTO tracks (title, artist) VALUES ('t', 'a') RETURNING id"
        )
        q = "INSERT INTO analysis_results (track_id, analyzer_type, model_version) VALUES ($1, 'x', '1')"
        await conn.execute(q, tid)
        try:
            await conn.execute(q, tid)
        except asyncpg.UniqueViolationError:
            pass
        else:
            raise AssertionError("a duplicate analysis row was accepted")
    finally:
        await conn.close()
