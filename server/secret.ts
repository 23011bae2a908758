/**
 * The JWT secret of an embedded install: generated on first start and kept in the data
 * directory (mode 0600), so tokens survive restarts and `wf token` can sign with it.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/** The secret file in a data directory. */
export function secretFile(dataDir: string): string {
  return path.join(dataDir, 'jwt-secret');
}

/**
 * The data directory's secret, or undefined when none was made yet.
 * @example const secret = process.env.JWT_SECRET ?? readSecretFile('data');
 */
export function readSecretFile(dataDir: string): string | undefined {
  try {
    const s = readFileSync(secretFile(dataDir), 'utf8').trim();
    return s.length > 0 ? s : undefined;
  } catch (e) {
    if ((e as { code?: unknown }).code === 'ENOENT') return undefined;
    throw e;
  }
}

/**
 * The data directory's secret, made (48 random bytes, base64url) if there is none. Two processes
 * starting at once agree: the file is created exclusively and the loser reads the winner's.
 * @example const secret = ensureSecretFile('data');
 */
export function ensureSecretFile(dataDir: string): string {
  const existing = readSecretFile(dataDir);
  if (existing !== undefined) return existing;
  mkdirSync(dataDir, { recursive: true });
  const secret = randomBytes(48).toString('base64url');
  try {
    writeFileSync(secretFile(dataDir), `${secret}\n`, { mode: 0o600, flag: 'wx' });
    return secret;
  } catch (e) {
    if ((e as { code?: unknown }).code !== 'EEXIST') throw e;
    const other = readSecretFile(dataDir);
    if (other === undefined) throw new Error(`${secretFile(dataDir)} exists but is empty; delete it to have a new secret made.`);
    return other;
  }
}
