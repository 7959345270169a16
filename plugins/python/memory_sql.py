"""An in-memory stand-in for the host's `sql` capability, for a projection's native tests.

It keeps the tables a manifest declares and answers `insert`, `upsert`, `update`, `delete` and
`select` as the host does for one projection: unknown tables and columns are refused, a primary
key is unique, decimals are exact (`decimal.Decimal`), and errors are raised as `Err(SqlError)`.
"""

import decimal
import operator

from componentize_py_types import Err
from wit_world.imports import sql as s

_COMPARE = {
    s.Comparison.EQ: operator.eq,
    s.Comparison.NE: operator.ne,
    s.Comparison.LT: operator.lt,
    s.Comparison.LE: operator.le,
    s.Comparison.GT: operator.gt,
    s.Comparison.GE: operator.ge,
}


def _plain(value):
    if isinstance(value, s.Value_Null):
        return None
    if isinstance(value, s.Value_Decimal):
        return decimal.Decimal(value.value)
    return value.value


class MemorySql:
    def __init__(self, manifest):
        self.tables = {t.name: t for t in manifest.tables}
        self.rows = {t.name: [] for t in manifest.tables}

    def _table(self, name):
        if name not in self.tables:
            raise Err(s.SqlError_UnknownTable(name))
        return self.tables[name]

    def _column(self, table, name):
        for column in table.columns:
            if column.name == name:
                return column
        raise Err(s.SqlError_UnknownColumn(name))

    def _matches(self, table, row, conditions):
        for c in conditions:
            self._column(table, c.column)
            have, want = row.get(c.column), _plain(c.value)
            if have is None or want is None or not _COMPARE[c.comparison](have, want):
                return False
        return True

    def _value(self, table, name, plain):
        column = self._column(table, name)
        if plain is None:
            if not column.nullable:
                raise Err(s.SqlError_InvalidValue(f"{name} is not nullable"))
            return s.Value_Null()
        kind = column.column_type.name
        if kind == "DECIMAL":
            return s.Value_Decimal(str(plain.quantize(decimal.Decimal("0.01"))))
        if kind == "INTEGER":
            return s.Value_Integer(plain)
        if kind == "BOOLEAN":
            return s.Value_Boolean(plain)
        return s.Value_Text(plain)

    def insert(self, table_name, columns, values):
        table = self._table(table_name)
        row = {self._column(table, c).name: _plain(v) for c, v in zip(columns, values)}
        key = [row.get(k) for k in table.primary_key]
        if any(key == [r.get(k) for k in table.primary_key] for r in self.rows[table_name]):
            raise Err(s.SqlError_Constraint(f"{table_name}: duplicate key {key}"))
        self.rows[table_name].append(row)

    def upsert(self, table_name, columns, values):
        table = self._table(table_name)
        row = {self._column(table, c).name: _plain(v) for c, v in zip(columns, values)}
        key = [row.get(k) for k in table.primary_key]
        self.rows[table_name] = [r for r in self.rows[table_name] if [r.get(k) for k in table.primary_key] != key]
        self.rows[table_name].append(row)

    def update(self, table_name, assignments, conditions):
        table = self._table(table_name)
        matched = [r for r in self.rows[table_name] if self._matches(table, r, conditions)]
        for row in matched:
            for a in assignments:
                self._column(table, a.column)
                value = _plain(a.change.value)
                row[a.column] = row[a.column] + value if isinstance(a.change, s.Change_Add) else value
        return len(matched)

    def delete(self, table_name, conditions):
        table = self._table(table_name)
        kept = [r for r in self.rows[table_name] if not self._matches(table, r, conditions)]
        deleted = len(self.rows[table_name]) - len(kept)
        self.rows[table_name] = kept
        return deleted

    def select(self, selection):
        table = self._table(selection.table)
        columns = selection.columns or [c.name for c in table.columns]
        found = [r for r in self.rows[selection.table] if self._matches(table, r, selection.filter)]
        for order in reversed(selection.order_by):
            self._column(table, order.column)
            found.sort(key=lambda r: r.get(order.column), reverse=order.descending)
        if selection.limit is not None:
            found = found[: selection.limit]
        rows = [[self._value(table, c, r.get(c)) for c in columns] for r in found]
        return s.Rows(columns=columns, rows=rows)
