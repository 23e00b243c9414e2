"""PostgreSQL helpers for the benchmarks' data loads."""

from __future__ import annotations

import io
from collections.abc import Iterable


def copy_rows(cursor, table: str, columns: list[str], rows: Iterable[tuple]) -> int:
    """COPY rows (tuples of str/None) into `table` in chunks, through a psycopg2 or a psycopg 3
    cursor; returns the number of rows."""
    count, buffer = 0, io.StringIO()

    statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN"

    def flush() -> None:
        if hasattr(cursor, "copy_expert"):  # psycopg2 (the bench's own connections)
            buffer.seek(0)
            cursor.copy_expert(statement, buffer)
        else:  # psycopg 3 (the app's driver, e.g. bench.metrics' raw connection)
            with cursor.copy(statement) as copy:
                copy.write(buffer.getvalue())
        buffer.seek(0)
        buffer.truncate()

    for row in rows:
        buffer.write("\t".join(r"\N" if v is None else str(v) for v in row) + "\n")
        count += 1
        if count % 100_000 == 0:
            flush()
    flush()
    return count
