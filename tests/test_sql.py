"""parameterize_sql: no literal survives; placeholders and identifiers do; odd input is safe."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from otel_sentry._internal.sql import SqlDialect, parameterize_sql


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        pytest.param(
            "SELECT * FROM users WHERE id = 42 AND name = 'bob'",
            "SELECT * FROM users WHERE id = %s AND name = %s",
            id="string-and-number",
        ),
        pytest.param("SELECT 'it''s'", "SELECT %s", id="doubled-quote-escape"),
        pytest.param("SELECT ''", "SELECT %s", id="empty-string"),
        pytest.param("SELECT E'it\\'s', e'a\\'b'", "SELECT E%s, e%s", id="postgres-escape-string"),
        pytest.param(
            "SELECT N'x', X'ff', B'01', U&'d'", "SELECT N%s, X%s, B%s, U&%s", id="prefixes"
        ),
        pytest.param(
            "SELECT 'C:\\' FROM t WHERE a = 'b'",
            "SELECT %s FROM t WHERE a = %s",
            id="ansi-backslash-is-plain",
        ),
        pytest.param(
            "WHERE a = -5 AND b = (-1) AND c IN (-2, 3)",
            "WHERE a = %s AND b = (%s) AND c IN (%s)",
            id="negative-numbers",
        ),
        pytest.param(
            "SELECT a-1, a - 1, 10-5, x -1",
            "SELECT a-%s, a - %s, %s-%s, x -%s",
            id="subtraction-keeps-the-operator",
        ),
        pytest.param(
            "WHERE a = 1.5 AND b = .5 AND c = 1e10 AND d = 2.5E-3 AND e = 7.",
            "WHERE a = %s AND b = %s AND c = %s AND d = %s AND e = %s",
            id="decimals",
        ),
        pytest.param(
            "WHERE flags = 0xFF00 OR bits = 0b1010",
            "WHERE flags = %s OR bits = %s",
            id="hex-and-binary",
        ),
        pytest.param("WHERE id IN (1, 2, 3)", "WHERE id IN (%s)", id="in-list-of-numbers"),
        pytest.param("WHERE s IN ( 'a' , 'b' )", "WHERE s IN (%s)", id="in-list-of-strings"),
        pytest.param(
            "WHERE id IN (?, ?, ?)", "WHERE id IN (?, ?, ?)", id="in-list-of-placeholders"
        ),
        pytest.param("WHERE id IN (%s, %s)", "WHERE id IN (%s, %s)", id="in-list-of-format-params"),
        pytest.param("WHERE id IN (1, ?, 2)", "WHERE id IN (%s, ?, %s)", id="mixed-in-list"),
        pytest.param(
            "INSERT INTO t VALUES (1, 'a'), (2, 'b')",
            "INSERT INTO t VALUES (%s), (%s)",
            id="values-rows",
        ),
        pytest.param(
            "SELECT t1.col2, tbl_3.x9 FROM t1 JOIN tbl_3 ON t1.id = tbl_3.t1_id",
            "SELECT t1.col2, tbl_3.x9 FROM t1 JOIN tbl_3 ON t1.id = tbl_3.t1_id",
            id="identifiers-with-digits",
        ),
        pytest.param(
            'SELECT "Table 1"."col 2", `t 3`.c FROM "Table 1"',
            'SELECT "Table 1"."col 2", `t 3`.c FROM "Table 1"',
            id="quoted-identifiers",
        ),
        pytest.param(
            "SELECT x::int4, y::numeric(10, 2)", "SELECT x::int4, y::numeric(%s)", id="casts"
        ),
        pytest.param(
            "WHERE a = $1 AND b = %s AND c = %(name)s AND d = :name AND e = :1 AND f = ? "
            "AND g = ?2 AND h = @p1",
            "WHERE a = $1 AND b = %s AND c = %(name)s AND d = :name AND e = :1 AND f = ? "
            "AND g = ?2 AND h = @p1",
            id="placeholders-untouched",
        ),
        pytest.param("SELECT 1 -- user 42\nFROM t", "SELECT %s FROM t", id="line-comment"),
        pytest.param(
            "SELECT /* id=42 */ a /* x */ /* y */ FROM t", "SELECT a FROM t", id="block-comments"
        ),
        pytest.param(
            "SELECT 1 /*traceparent='00-7c51-da76-03',db_driver='pysqlite'*/",
            "SELECT %s",
            id="sqlcommenter",
        ),
        pytest.param(
            "SELECT '--not a comment', '/*nor this*/' FROM t",
            "SELECT %s, %s FROM t",
            id="comment-markers-in-strings",
        ),
        pytest.param("SELECT $$a 'b' 1$$, $fn$ x $$ y $fn$", "SELECT %s, %s", id="dollar-quotes"),
        pytest.param("  SELECT\n\ta,\n   b\r\nFROM t  ", "SELECT a, b FROM t", id="whitespace"),
        pytest.param("SELECT 'never closed", "SELECT %s", id="unterminated-string"),
        pytest.param("SELECT a /* never closed 42", "SELECT a", id="unterminated-comment"),
        pytest.param("SELECT $tag$ never closed 42", "SELECT %s", id="unterminated-dollar"),
        pytest.param('SELECT "never closed', 'SELECT "never closed', id="unterminated-identifier"),
        pytest.param("", "", id="empty"),
        pytest.param("'", "%s", id="lone-quote"),
        pytest.param("\\", "\\", id="lone-backslash"),
        pytest.param("--", "", id="only-comment"),
        pytest.param("SELECT \x00 1", "SELECT %s", id="nul-bytes"),
        pytest.param("SELECT 123abc FROM t", "SELECT 123abc FROM t", id="digit-led-identifier"),
    ],
)
def test_parameterize_sql(statement: str, expected: str) -> None:
    assert parameterize_sql(statement) == expected


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        pytest.param('WHERE name = "alice"', "WHERE name = %s", id="double-quoted-string"),
        pytest.param("WHERE s = 'it\\'s' AND t = 'x'", "WHERE s = %s AND t = %s", id="backslash"),
        pytest.param('WHERE s = "a\\"b"', "WHERE s = %s", id="backslash-in-double-quotes"),
        pytest.param(
            "SELECT `col 1` FROM `t2` LIMIT 10, 20",
            "SELECT `col 1` FROM `t2` LIMIT %s, %s",
            id="backticks",
        ),
        pytest.param(
            '{"find": "users", "filter": {"age": 42}}', "{%s: %s, %s: {%s: %s}}", id="json-document"
        ),
    ],
)
def test_parameterize_sql_mysql_quoting(statement: str, expected: str) -> None:
    assert parameterize_sql(statement, dialect="mysql") == expected


_VALUE = st.one_of(
    st.text(alphabet=st.characters(blacklist_categories=["Cs"]), min_size=1).map(
        lambda s: "'" + s.replace("'", "''") + "'"
    ),
    st.integers().map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
)


@given(st.lists(_VALUE, min_size=1, max_size=5))
def test_no_literal_value_survives(values: list[str]) -> None:
    statement = "SELECT a FROM t WHERE " + " AND ".join(
        f"c{i} = {value}" for i, value in enumerate(values)
    )
    expected = "SELECT a FROM t WHERE " + " AND ".join(f"c{i} = %s" for i in range(len(values)))
    assert parameterize_sql(statement) == expected


@given(st.text())
def test_any_text_is_handled(text: str) -> None:
    dialects: tuple[SqlDialect, ...] = ("ansi", "mysql")
    for dialect in dialects:
        assert isinstance(parameterize_sql(text, dialect=dialect), str)
