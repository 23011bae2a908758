/**
 * Imports of sources sent over HTTP (`import rules 责任分工 from "shared/分类.wf"`), read from one
 * folder and never outside it: a draft names files relative to that folder, and the paths in its
 * diagnostics stay relative too, so no server path is shown to the caller.
 */
import { existsSync, readFileSync, realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import type { SourceLoader } from '../dsl/check.ts';

/**
 * A loader confined to `root`. Importers are root-relative names (`五步闭环.wf`,
 * `shared/分类.wf`); an import that would leave the folder, or a symlink pointing out of it, is
 * reported as not found.
 * @example const load = folderLoader('workflows'); load('shared/分类.wf', '五步闭环.wf') // { file: 'shared/分类.wf', source }
 */
export function folderLoader(root: string): SourceLoader {
  const base = realpathSync(path.resolve(root));
  return (from, importer) => {
    const rel = path.posix.normalize(path.posix.join(path.posix.dirname(importer.replaceAll('\\', '/')), from.replaceAll('\\', '/')));
    if (rel.startsWith('../') || rel === '..' || path.posix.isAbsolute(rel)) return undefined;
    const abs = path.join(base, rel);
    if (!existsSync(abs)) return undefined;
    const real = realpathSync(abs);
    if (real !== base && !real.startsWith(base + path.sep)) return undefined;
    if (!statSync(real).isFile()) return undefined;
    return { file: rel, source: readFileSync(real, 'utf8') };
  };
}
