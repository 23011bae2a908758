// Listed statically rather than read from the folder, so the list survives bundling and needs no
// TypeScript loader at run time. Kysely orders migrations by name; names never change once released.
import type { Migration } from 'kysely';
import * as coreTables from './0001-core-tables.ts';
import * as auditGuards from './0002-audit-guards.ts';
import * as outboxDeliveries from './0003-outbox-deliveries.ts';
import * as personalDataReads from './0004-personal-data-reads.ts';
import * as eventOrder from './0005-event-order.ts';
import * as historyWritesWithoutForeignKeys from './0006-history-writes-without-foreign-keys.ts';
import * as casePagingIndexes from './0007-case-paging-indexes.ts';
import * as hashCheckWithoutRegex from './0008-hash-check-without-regex.ts';

/**
 * Every migration of the store, by name.
 *
 * @example
 * ```ts
 * const migrator = new Migrator({ db, provider: { getMigrations: async () => ({ ...migrations }) } });
 * ```
 */
export const migrations: Readonly<Record<string, Migration>> = Object.freeze({
  '0001-core-tables': coreTables,
  '0002-audit-guards': auditGuards,
  '0003-outbox-deliveries': outboxDeliveries,
  '0004-personal-data-reads': personalDataReads,
  '0005-event-order': eventOrder,
  '0006-history-writes-without-foreign-keys': historyWritesWithoutForeignKeys,
  '0007-case-paging-indexes': casePagingIndexes,
  '0008-hash-check-without-regex': hashCheckWithoutRegex,
});
