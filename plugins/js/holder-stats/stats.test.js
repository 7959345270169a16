// Given bank account events, when a query runs, then this answer: the `holder-stats` logic on an
// in-memory `sql`, natively (`node --test`).
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { MemorySql } from '../memory-sql.js';
import { amountText, handle, manifest, query } from './stats.js';

const ADA = '11111111-1111-4111-8111-111111111111';
const ADA_2 = '22222222-2222-4222-8222-222222222222';
const ALAN = '33333333-3333-4333-8333-333333333333';

/** A fresh projection that has applied `events` ([type, data JSON text] pairs). */
function given(...events) {
  const sql = new MemorySql(manifest());
  let position = 0n;
  const apply = (...more) => {
    handle(
      sql,
      more.map(([eventType, data]) => ({
        aggregateType: 'BankAccount',
        aggregateId: '',
        version: 1n,
        globalPosition: ++position,
        eventType,
        schemaVersion: 1,
        data,
        recordedAt: '2026-01-01T10:00:00Z',
      })),
    );
  };
  apply(...events);
  return { sql, apply, query: (name, params = []) => query(sql, name, params) };
}

const opened = (id, holder, balance) => [
  'AccountOpenedEvent',
  `{"id":"${id}","accountHolder":"${holder}","accountType":"SAVINGS","openedAt":"2026-01-01T10:00:00Z","openingBalance":${balance}}`,
];
const deposited = (id, amount) => ['FundsDepositedEvent', `{"id":"${id}","amount":${amount}}`];
const withdrawn = (id, amount) => ['FundsWithdrawnEvent', `{"id":"${id}","amount":${amount}}`];
const closed = (id) => ['AccountClosedEvent', `{"id":"${id}"}`];

function holder(projection, name) {
  const answer = projection.query('byHolder', [['accountHolder', name]]);
  assert.equal(answer.status, 200, answer.body);
  const body = JSON.parse(answer.body);
  assert.equal(body.message, 'Successfully returned holder statistics!');
  return body.holder;
}

test('the manifest declares its tables, queries and routes', () => {
  const m = manifest();
  assert.equal(m.name, 'holder_stats');
  assert.deepEqual(m.tables.map((t) => t.name), ['holder_accounts', 'holder_stats']);
  assert.deepEqual(m.routes.map((r) => r.query), ['all', 'byHolder']);
});

test('no holder is no content', () => {
  assert.equal(given().query('all').status, 204);
});

test('a holder adds up over every account, deposit and withdrawal', () => {
  const p = given(opened(ADA, 'Ada', '50'), opened(ADA_2, 'Ada', '0.10'), deposited(ADA, '25.25'), withdrawn(ADA_2, '0.05'));
  assert.deepEqual(holder(p, 'Ada'), {
    accountHolder: 'Ada',
    openAccounts: 2,
    closedAccounts: 0,
    deposits: 1,
    withdrawals: 1,
    deposited: 25.25,
    withdrawn: 0.05,
    balance: 75.3,
  });
});

test('amounts keep their exact text beyond a double', () => {
  const p = given(opened(ADA, 'Ada', '0'), deposited(ADA, '123456789012345.67'), deposited(ADA, '0.01'));
  const answer = p.query('byHolder', [['accountHolder', 'Ada']]);
  assert.match(answer.body, /"balance":123456789012345\.68\b/);
});

test('closing an account takes its balance off its holder', () => {
  const p = given(opened(ADA, 'Ada', '50'), opened(ADA_2, 'Ada', '10'), deposited(ADA_2, '5'), closed(ADA_2));
  const ada = holder(p, 'Ada');
  assert.equal(ada.openAccounts, 1);
  assert.equal(ada.closedAccounts, 1);
  assert.equal(ada.balance, 50);
});

test('all lists every holder by name', () => {
  const p = given(opened(ALAN, 'Alan', '1'), opened(ADA, 'Ada', '2'));
  const body = JSON.parse(p.query('all').body);
  assert.equal(body.message, 'Successfully returned statistics of 2 holder(s)!');
  assert.deepEqual(body.holders.map((h) => h.accountHolder), ['Ada', 'Alan']);
});

test('funds moved on an unknown account change nothing', () => {
  const p = given(opened(ADA, 'Ada', '1'), deposited(ALAN, '5'), closed(ALAN));
  assert.equal(holder(p, 'Ada').balance, 1);
});

test('an unknown holder is not found, a missing one invalid, an unknown query named', () => {
  const p = given();
  assert.throws(() => p.query('byHolder', [['accountHolder', 'Nobody']]), { tag: 'not-found', val: 'no account holder Nobody' });
  assert.throws(() => p.query('byHolder', []), { tag: 'invalid' });
  assert.throws(() => p.query('everything'), { tag: 'unknown-query', val: 'everything' });
});

test('an event applied twice or without an amount is refused, naming its position', () => {
  const p = given(opened(ADA, 'Ada', '1'));
  assert.throws(() => p.apply(['AccountOpenedEvent', opened(ADA, 'Ada', '1')[1]]), /event at 2/);
  assert.throws(() => p.apply(['FundsDepositedEvent', `{"id":"${ADA}","amount":"ten"}`]), /no amount amount/);
});

test('amountText reads the number as written', () => {
  assert.equal(amountText('{"id":"x","amount":10.50}', 'amount'), '10.50');
  assert.equal(amountText('{"amount": -3 ,"id":"x"}', 'amount'), '-3');
});
