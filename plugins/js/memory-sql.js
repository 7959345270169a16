// An in-memory stand-in for the host's `sql` capability, for a projection's `node --test` tests.
//
// It keeps the tables a manifest declares and answers `insert`, `upsert`, `update`, `delete` and
// `select` as the host does for one projection: unknown tables and columns are refused, a primary
// key is unique, decimals are exact (kept as scaled BigInts, two fractional digits), and errors
// are thrown as the WIT `sql-error` variant ({ tag, val }), as the component's bindings do.

const SCALE = 100n;

function toCents(text) {
  const found = /^(-?)(\d+)(?:\.(\d{1,2}))?$/.exec(text);
  if (!found) throw { tag: 'invalid-value', val: `not a decimal: ${text}` };
  const cents = BigInt(found[2]) * SCALE + BigInt((found[3] ?? '').padEnd(2, '0'));
  return found[1] ? -cents : cents;
}

function fromCents(cents) {
  const sign = cents < 0n ? '-' : '';
  const abs = cents < 0n ? -cents : cents;
  return `${sign}${abs / SCALE}.${String(abs % SCALE).padStart(2, '0')}`;
}

/** A WIT `value` as something comparable (decimals as cents, null as null). */
function plain(value) {
  switch (value.tag) {
    case 'null':
      return null;
    case 'decimal':
      return toCents(value.val);
    default:
      return value.val;
  }
}

const COMPARE = {
  eq: (a, b) => a === b,
  ne: (a, b) => a !== b,
  lt: (a, b) => a < b,
  le: (a, b) => a <= b,
  gt: (a, b) => a > b,
  ge: (a, b) => a >= b,
};

export class MemorySql {
  constructor(manifest) {
    this.tables = new Map(manifest.tables.map((t) => [t.name, t]));
    this.rows = new Map(manifest.tables.map((t) => [t.name, []]));
  }

  #table(name) {
    const table = this.tables.get(name);
    if (!table) throw { tag: 'unknown-table', val: name };
    return table;
  }

  #column(table, name) {
    const column = table.columns.find((c) => c.name === name);
    if (!column) throw { tag: 'unknown-column', val: name };
    return column;
  }

  #row(table, columns, values) {
    const row = {};
    columns.forEach((name, i) => {
      row[this.#column(table, name).name] = plain(values[i]);
    });
    return row;
  }

  #matches(table, row, filter) {
    return filter.every((c) => {
      this.#column(table, c.column);
      const have = row[c.column];
      const want = plain(c.value);
      return have !== null && have !== undefined && want !== null && COMPARE[c.comparison](have, want);
    });
  }

  #key(table, row) {
    return JSON.stringify(table.primaryKey.map((k) => String(row[k])));
  }

  insert(tableName, columns, values) {
    const table = this.#table(tableName);
    const row = this.#row(table, columns, values);
    const rows = this.rows.get(tableName);
    if (rows.some((r) => this.#key(table, r) === this.#key(table, row))) {
      throw { tag: 'constraint', val: `${tableName}: duplicate key ${this.#key(table, row)}` };
    }
    rows.push(row);
  }

  upsert(tableName, columns, values) {
    const table = this.#table(tableName);
    const row = this.#row(table, columns, values);
    const kept = this.rows.get(tableName).filter((r) => this.#key(table, r) !== this.#key(table, row));
    this.rows.set(tableName, [...kept, row]);
  }

  update(tableName, assignments, filter) {
    const table = this.#table(tableName);
    const matched = this.rows.get(tableName).filter((r) => this.#matches(table, r, filter));
    for (const row of matched) {
      for (const { column, change } of assignments) {
        this.#column(table, column);
        const value = plain(change.val);
        row[column] = change.tag === 'add' ? row[column] + value : value;
      }
    }
    return BigInt(matched.length);
  }

  delete(tableName, filter) {
    const table = this.#table(tableName);
    const rows = this.rows.get(tableName);
    const kept = rows.filter((r) => !this.#matches(table, r, filter));
    this.rows.set(tableName, kept);
    return BigInt(rows.length - kept.length);
  }

  select({ table: tableName, columns, filter, orderBy, limit }) {
    const table = this.#table(tableName);
    const names = columns.length ? columns : table.columns.map((c) => c.name);
    let found = this.rows.get(tableName).filter((r) => this.#matches(table, r, filter));
    found = found.toSorted((a, b) => {
      for (const { column, descending } of orderBy) {
        this.#column(table, column);
        if (a[column] !== b[column]) return (a[column] < b[column]) !== descending ? -1 : 1;
      }
      return 0;
    });
    if (limit !== undefined) found = found.slice(0, limit);
    const value = (name, v) => {
      if (v === null || v === undefined) return { tag: 'null' };
      const type = this.#column(table, name).columnType;
      if (type === 'decimal') return { tag: 'decimal', val: fromCents(v) };
      if (type === 'integer') return { tag: 'integer', val: v };
      if (type === 'boolean') return { tag: 'boolean', val: v };
      return { tag: 'text', val: v };
    };
    return { columns: names, rows: found.map((r) => names.map((n) => value(n, r[n]))) };
  }
}
