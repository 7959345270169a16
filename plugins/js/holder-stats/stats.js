// The `holder_stats` projection's logic: per account holder, how many accounts are open and
// closed, how many deposits and withdrawals they made, how much moved, and the balance over the
// open accounts. Pure over the `sql` interface it is given (the host's in the component, an
// in-memory one in the tests), so `node --test` runs it without the host.
//
// Amounts stay exact: they are taken from the event's JSON as text (never a JS float) and added
// up by the host's decimal columns (`add`).

const ACCOUNTS = 'holder_accounts';
const STATS = 'holder_stats';

const SUBSCRIPTIONS = ['AccountOpenedEvent', 'FundsDepositedEvent', 'FundsWithdrawnEvent', 'AccountClosedEvent'];

const text = (val) => ({ tag: 'text', val });
const integer = (val) => ({ tag: 'integer', val: BigInt(val) });
const decimal = (val) => ({ tag: 'decimal', val });
const eq = (column, value) => ({ column, comparison: 'eq', value });
const add = (column, value) => ({ column, change: { tag: 'add', val: value } });
const column = (name, columnType) => ({ name, columnType, nullable: false });

/** What the projection declares; the host reads it once at load. */
export function manifest() {
  return {
    name: 'holder_stats',
    subscriptions: SUBSCRIPTIONS,
    schemaVersion: 1,
    tables: [
      {
        name: ACCOUNTS,
        columns: [column('id', 'text'), column('holder', 'text'), column('balance', 'decimal')],
        primaryKey: ['id'],
        indexes: [],
      },
      {
        name: STATS,
        columns: [
          column('holder', 'text'),
          column('open_accounts', 'integer'),
          column('closed_accounts', 'integer'),
          column('deposits', 'integer'),
          column('withdrawals', 'integer'),
          column('deposited', 'decimal'),
          column('withdrawn', 'decimal'),
          column('balance', 'decimal'),
        ],
        primaryKey: ['holder'],
        indexes: [],
      },
    ],
    queries: ['all', 'byHolder'],
    routes: [
      { path: '/api/v1/holderStats', query: 'all', caseInsensitive: false },
      { path: '/api/v1/holderStats/{accountHolder}', query: 'byHolder', caseInsensitive: false },
    ],
    rebuildRoutes: [],
  };
}

/** Why an event cannot be applied: the host rolls the batch back and dead-letters the event. */
class Refused extends Error {}

/**
 * The exact text of the JSON number `field` of `data` (a flat JSON object): JSON.parse would
 * round it to a double.
 */
export function amountText(data, field) {
  const found = new RegExp(`"${field}"\\s*:\\s*(-?\\d+(?:\\.\\d+)?)(?=\\s*[,}])`).exec(data);
  if (!found) {
    throw new Refused(`no amount ${field} in ${data}`);
  }
  return found[1];
}

function negate(amount) {
  return amount.startsWith('-') ? amount.slice(1) : `-${amount}`;
}

/** Unwrap a `sql` call's error (the bindings throw the WIT `sql-error` variant). */
function sqlCall(what, call) {
  try {
    return call();
  } catch (e) {
    const error = e?.payload ?? e;
    throw new Refused(`${what}: ${error?.tag ?? ''} ${error?.val ?? error}`.trim());
  }
}

function accountOf(sql, id) {
  const rows = sqlCall('select account', () =>
    sql.select({ table: ACCOUNTS, columns: ['holder', 'balance'], filter: [eq('id', text(id))], orderBy: [], limit: 1 }),
  );
  const row = rows.rows[0];
  return row ? { holder: row[0].val, balance: row[1].val } : undefined;
}

function apply(sql, event) {
  let data;
  try {
    data = JSON.parse(event.data);
  } catch (e) {
    throw new Refused(`${event.eventType}: unreadable data: ${e.message}`);
  }
  if (typeof data?.id !== 'string') {
    throw new Refused(`${event.eventType}: no account id in ${event.data}`);
  }
  const byId = [eq('id', text(data.id))];
  switch (event.eventType) {
    case 'AccountOpenedEvent': {
      if (typeof data.accountHolder !== 'string') {
        throw new Refused(`AccountOpenedEvent: no accountHolder in ${event.data}`);
      }
      const opening = amountText(event.data, 'openingBalance');
      sqlCall('insert account', () =>
        sql.insert(ACCOUNTS, ['id', 'holder', 'balance'], [text(data.id), text(data.accountHolder), decimal(opening)]),
      );
      const byHolder = [eq('holder', text(data.accountHolder))];
      const changed = sqlCall('update holder', () =>
        sql.update(STATS, [add('open_accounts', integer(1)), add('balance', decimal(opening))], byHolder),
      );
      if (changed === 0n || changed === 0) {
        sqlCall('insert holder', () =>
          sql.insert(
            STATS,
            ['holder', 'open_accounts', 'closed_accounts', 'deposits', 'withdrawals', 'deposited', 'withdrawn', 'balance'],
            [text(data.accountHolder), integer(1), integer(0), integer(0), integer(0), decimal('0'), decimal('0'), decimal(opening)],
          ),
        );
      }
      return;
    }
    case 'FundsDepositedEvent':
    case 'FundsWithdrawnEvent': {
      const amount = amountText(event.data, 'amount');
      const deposit = event.eventType === 'FundsDepositedEvent';
      const change = deposit ? amount : negate(amount);
      // Funds moved on an account this projection never saw opened change nothing, as in the seed.
      const account = accountOf(sql, data.id);
      if (!account) return;
      sqlCall('update account', () => sql.update(ACCOUNTS, [add('balance', decimal(change))], byId));
      sqlCall('update holder', () =>
        sql.update(
          STATS,
          [
            add(deposit ? 'deposits' : 'withdrawals', integer(1)),
            add(deposit ? 'deposited' : 'withdrawn', decimal(amount)),
            add('balance', decimal(change)),
          ],
          [eq('holder', text(account.holder))],
        ),
      );
      return;
    }
    case 'AccountClosedEvent': {
      const account = accountOf(sql, data.id);
      if (!account) return;
      sqlCall('delete account', () => sql.delete(ACCOUNTS, byId));
      sqlCall('update holder', () =>
        sql.update(
          STATS,
          [add('open_accounts', integer(-1)), add('closed_accounts', integer(1)), add('balance', decimal(negate(account.balance)))],
          [eq('holder', text(account.holder))],
        ),
      );
      return;
    }
    default:
      // Only subscribed types arrive; anything else has nothing to change here.
      return;
  }
}

/** Apply a batch of events in order; a refusal names the event that failed. */
export function handle(sql, events) {
  for (const event of events) {
    try {
      apply(sql, event);
    } catch (e) {
      if (e instanceof Refused) throw `${e.message} (event at ${event.globalPosition})`;
      throw e;
    }
  }
}

const STAT_COLUMNS = ['holder', 'open_accounts', 'closed_accounts', 'deposits', 'withdrawals', 'deposited', 'withdrawn', 'balance'];

/** One row as JSON text: amounts are JSON numbers with the store's exact text. */
function statsJson(row) {
  const [holder, open, closed, deposits, withdrawals, deposited, withdrawn, balance] = row.map((v) => v.val);
  return (
    `{"accountHolder":${JSON.stringify(holder)},"openAccounts":${open},"closedAccounts":${closed},` +
    `"deposits":${deposits},"withdrawals":${withdrawals},"deposited":${deposited},"withdrawn":${withdrawn},` +
    `"balance":${balance}}`
  );
}

/** Answer query `name`; `params` is a list of [key, value] pairs. Errors are thrown as the WIT `query-error`. */
export function query(sql, name, params) {
  const param = (key) => params.find(([k]) => k === key)?.[1];
  const select = (filter) => {
    try {
      return sql.select({ table: STATS, columns: STAT_COLUMNS, filter, orderBy: [{ column: 'holder', descending: false }], limit: undefined });
    } catch (e) {
      const error = e?.payload ?? e;
      throw { tag: 'failed', val: `${error?.tag ?? ''} ${error?.val ?? error}`.trim() };
    }
  };
  switch (name) {
    case 'all': {
      const rows = select([]).rows;
      if (rows.length === 0) return { status: 204, body: '' };
      const message = JSON.stringify(`Successfully returned statistics of ${rows.length} holder(s)!`);
      return { status: 200, body: `{"message":${message},"holders":[${rows.map(statsJson).join(',')}]}` };
    }
    case 'byHolder': {
      const holder = param('accountHolder');
      if (!holder) throw { tag: 'invalid', val: 'accountHolder is required' };
      const rows = select([eq('holder', text(holder))]).rows;
      if (rows.length === 0) throw { tag: 'not-found', val: `no account holder ${holder}` };
      return { status: 200, body: `{"message":"Successfully returned holder statistics!","holder":${statsJson(rows[0])}}` };
    }
    default:
      throw { tag: 'unknown-query', val: name };
  }
}
