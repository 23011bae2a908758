// The store is the only door to the database: nothing outside engine/store imports kysely, pg or
// PGlite (STYLE §7).
export { archiveCase } from './archive.ts';
export { openAppDatabase } from './app.ts';
export type { AppDatabaseOptions } from './app.ts';
export { SQLSTATE, StoreError, sqlStateOf } from './errors.ts';
export type { StoreErrorCode } from './errors.ts';
export type { StoreLogger } from './logger.ts';
export { migrate } from './migrate.ts';
export type { MigrateOptions } from './migrate.ts';
export { openDatabase } from './open.ts';
export type { DatabaseKind, OpenDatabaseOptions, OpenedDatabase, RawQuery } from './open.ts';
export { ensureAppRole } from './roles.ts';
export type { AppRoleOptions } from './roles.ts';
export type * from './tables.ts';
