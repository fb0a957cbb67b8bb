"""Hot read statements executed with one call into SQLite's thread.

aiosqlite runs every call on the connection's own thread, and SQLAlchemy's adapter makes four
calls per statement (open a cursor, execute, fetch, close), each a hand-off to that thread and back.
For the few statements a REST read runs on every request, `fetch_all` compiles the statement once and
sends it with aiosqlite's `execute_fetchall`: one hand-off. Other databases (and every write) go
through SQLAlchemy as usual. The rows are plain tuples in the statement's column order; the
statements used here select only columns that need no result conversion (text, integers).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, cast

from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.expression import ClauseElement, Executable


@dataclass(frozen=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]  # bound parameters in positional order
    constants: dict[str, Any]  # values of the parameters the statement binds itself, converted
    converters: dict[str, Callable[[Any], Any]]  # for the caller's parameters that need converting


@cache
def _compiled(statement: Executable, dialect: Dialect) -> _Compiled:
    compiled: Any = cast(ClauseElement, statement).compile(dialect=dialect)
    if compiled.post_compile_params or compiled.literal_execute_params:
        raise ValueError("statements rendered anew at each execution cannot be sent precompiled")
    converters = {}
    for name, bind in compiled.binds.items():
        convert = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if convert is not None:
            converters[name] = convert
    required = {name for name, bind in compiled.binds.items() if bind.required}
    values = compiled.construct_params(dict.fromkeys(required))
    constants = {
        name: converters[name](value) if name in converters else value
        for name, value in values.items()
        if name not in required
    }
    return _Compiled(compiled.string, tuple(compiled.positiontup), constants, converters)


async def fetch_all(session: AsyncSession, statement: Executable, params: dict[str, Any]) -> Sequence[Sequence[Any]]:
    """All rows of `statement` run with `params` in `session`'s transaction."""
    bind = session.get_bind()
    if bind.dialect.name != "sqlite":
        return (await session.execute(statement, params)).all()
    compiled = _compiled(statement, bind.dialect)
    args = []
    for name in compiled.names:
        if name in params:
            value = params[name]
            convert = compiled.converters.get(name)
            args.append(convert(value) if convert is not None else value)
        else:
            args.append(compiled.constants[name])
    raw = await (await session.connection()).get_raw_connection()
    driver: Any = raw.driver_connection
    return list(await driver.execute_fetchall(compiled.sql, args))
