/**
 * The part of a logger the store uses; a pino `Logger` fits it.
 *
 * @example
 * ```ts
 * const logger: StoreLogger = pino();
 * ```
 */
export interface StoreLogger {
  info(object: object, message: string): void;
  warn(object: object, message: string): void;
}
