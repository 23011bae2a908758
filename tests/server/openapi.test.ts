/**
 * The served `/openapi.json` as a front-end team receives it: it validates as OpenAPI 3.1 with a
 * third-party validator (@apidevtools/swagger-parser, which checks 3.1 documents against the
 * official 3.1 schema and resolves every `$ref`), and a client generated from it by third-party
 * tools (openapi-typescript for the types, openapi-fetch for the calls) type-checks under strict
 * `tsc` and runs a 五单 case against a listening server.
 *
 * openapi-typescript is at 6.x: 7.x drives the TypeScript compiler's JavaScript API, which the
 * project's TypeScript 7 does not ship; 6.x prints types itself and supports OpenAPI 3.0 and 3.1.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import SwaggerParser from '@apidevtools/swagger-parser';
import openapiTS, { type OpenAPI3 } from 'openapi-typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openHarness, ORDER, ROOT, type Harness } from './support.ts';

const run = promisify(execFile);

let h: Harness;
let base: string;
let served: Record<string, unknown>;
let dir: string | undefined;

beforeAll(async () => {
  h = await openHarness();
  base = await h.app.listen({ port: 0, host: '127.0.0.1' });
  const res = await fetch(`${base}/openapi.json`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^application\/json/);
  served = await res.json() as Record<string, unknown>;
});

afterAll(async () => {
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  await h?.close();
});

/** What the validator says of a document: 'valid', or its first error line. */
async function validate(doc: unknown): Promise<string> {
  try {
    await SwaggerParser.validate(structuredClone(doc) as Parameters<typeof SwaggerParser.validate>[0]);
    return 'valid';
  } catch (e) {
    return (e instanceof Error ? e.message : String(e)).split('\n')[0] ?? '';
  }
}

describe('the served OpenAPI document', () => {
  it('validates as OpenAPI 3.1 with @apidevtools/swagger-parser', async () => {
    expect(served['openapi']).toBe('3.1.0');
    expect(await validate(served)).toBe('valid');
  });

  it.each([
    ['no info', (d: Record<string, unknown>) => { delete d['info']; }],
    ['a response without a description', (d: Record<string, unknown>) => {
      const paths = d['paths'] as Record<string, Record<string, { responses: Record<string, unknown> }>>;
      const get = paths['/v1/cases']?.['get'];
      if (get !== undefined) get.responses['200'] = { content: { 'application/json': { schema: { type: 'object' } } } };
    }],
    ['a $ref to nothing', (d: Record<string, unknown>) => {
      const paths = d['paths'] as Record<string, Record<string, { responses: Record<string, unknown> }>>;
      const get = paths['/v1/cases']?.['get'];
      if (get !== undefined) get.responses['200'] = { $ref: '#/components/responses/Nowhere' };
    }],
    ['an unknown top-level field', (d: Record<string, unknown>) => { d['extra'] = true; }],
  ])('is checked for real: the validator refuses the document with %s', async (_name, spoil) => {
    const copy = structuredClone(served);
    spoil(copy);
    expect(await validate(copy)).not.toBe('valid');
  });
});

/** The client a front-end team would write over the generated types; it must compile under strict tsc. */
const CLIENT = `import createClient from 'openapi-fetch';
import type { paths } from './schema.ts';

type StartBody = paths['/v1/cases']['post']['requestBody']['content']['application/json'];
type Case = paths['/v1/cases/{id}']['get']['responses'][200]['content']['application/json'];
type ProblemCode = paths['/v1/cases/{id}']['get']['responses']['4XX']['content']['application/problem+json']['code'];

// The generated types are real, not \`any\`: each line below must be a type error.
// @ts-expect-error an unknown field of the start body
export const unknownField: StartBody = { workflow: '五单服务', orgUnit: '永乐社区', data: {}, 优先级: '高' };
// @ts-expect-error a start body without orgUnit
export const missingField: StartBody = { workflow: '五单服务', data: {} };
// @ts-expect-error the version of a case is a number
export const wrongType: Case['version'] = 'one';
// @ts-expect-error a code the error table does not have
export const noSuchCode: ProblemCode = 'NO_SUCH_CODE';

export interface Walk {
  readonly id: string;
  readonly startedState: string;
  readonly dispatchedState: string;
  readonly read: Case;
  readonly refusal: { readonly status: number; readonly code: ProblemCode | undefined };
}

export async function walk(baseUrl: string, tokens: { readonly resident: string; readonly secretary: string }, data: StartBody['data']): Promise<Walk> {
  const as = (token: string) => createClient<paths>({ baseUrl, headers: { authorization: \`Bearer \${token}\` } });
  const resident = as(tokens.resident);
  const secretary = as(tokens.secretary);

  const started = await resident.POST('/v1/cases', {
    params: { header: { 'idempotency-key': 'generated-client-start' } },
    body: { workflow: '五单服务', orgUnit: '永乐社区', data },
  });
  if (started.data === undefined) throw new Error(\`start refused: \${started.error.code} \${started.error.detail}\`);
  const id: string = started.data.id;

  const dispatched = await secretary.POST('/v1/cases/{id}/events', {
    params: { path: { id } },
    body: { type: '派单', payload: { 单位: '县卫健局' } },
  });
  if (dispatched.data === undefined) throw new Error(\`派单 refused: \${dispatched.error.code}\`);

  const read = await secretary.GET('/v1/cases/{id}', { params: { path: { id } } });
  if (read.data === undefined) throw new Error(\`read refused: \${read.error.code}\`);

  // 派单 again: the case is no longer waiting for it, and the refusal is typed too.
  const again = await secretary.POST('/v1/cases/{id}/events', { params: { path: { id } }, body: { type: '派单', payload: { 单位: '县卫健局' } } });
  const code: ProblemCode | undefined = again.error?.code;

  return { id, startedState: started.data.state, dispatchedState: dispatched.data.state, read: read.data, refusal: { status: again.response.status, code } };
}
`;

const TSCONFIG = {
  compilerOptions: {
    target: 'ES2022',
    lib: ['ES2023'],
    module: 'NodeNext',
    moduleResolution: 'NodeNext',
    strict: true,
    noUncheckedIndexedAccess: true,
    exactOptionalPropertyTypes: true,
    verbatimModuleSyntax: true,
    allowImportingTsExtensions: true,
    noEmit: true,
    types: ['node'],
  },
  files: ['client.ts'],
};

interface Walk {
  readonly id: string;
  readonly startedState: string;
  readonly dispatchedState: string;
  readonly read: { readonly id: string; readonly state: string; readonly version: number; readonly data: Record<string, unknown>; readonly allowedActions?: readonly { readonly event: string }[] };
  readonly refusal: { readonly status: number; readonly code: string | undefined };
}

describe('a client generated from the served document (openapi-typescript + openapi-fetch)', () => {
  it('generates, type-checks under strict tsc with no errors, and runs a 五单 case', async () => {
    const types = await openapiTS(served as unknown as OpenAPI3);
    expect(types).toContain('"/v1/cases/{id}/events"');

    dir = await mkdtemp(path.join(os.tmpdir(), 'wf-openapi-client-'));
    // The generated module resolves openapi-fetch and @types/node from the project.
    await symlink(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'), 'dir');
    await writeFile(path.join(dir, 'package.json'), JSON.stringify({ type: 'module', private: true }));
    await writeFile(path.join(dir, 'tsconfig.json'), JSON.stringify(TSCONFIG, null, 2));
    await writeFile(path.join(dir, 'schema.ts'), types);
    await writeFile(path.join(dir, 'client.ts'), CLIENT);

    const tsc = path.join(ROOT, 'node_modules/.bin/tsc');
    const checked = await run(tsc, ['-p', path.join(dir, 'tsconfig.json'), '--pretty', 'false'], { cwd: dir }).then(
      (r) => ({ code: 0, out: `${r.stdout}${r.stderr}` }),
      (e: { code?: number; stdout?: string; stderr?: string }) => ({ code: e.code ?? -1, out: `${e.stdout ?? ''}${e.stderr ?? ''}` }),
    );
    expect(checked, checked.out).toEqual({ code: 0, out: '' });

    const client = await import(pathToFileURL(path.join(dir, 'client.ts')).href) as {
      walk(baseUrl: string, tokens: { resident: string; secretary: string }, data: Record<string, unknown>): Promise<Walk>;
    };
    const bearer = async (actor: string): Promise<string> => (await h.auth(actor)).authorization.slice('Bearer '.length);
    const w = await client.walk(base, { resident: await bearer('居民王先生'), secretary: await bearer('社区书记张') }, ORDER);
    expect(w.startedState).toBe('待派单');
    expect(w.dispatchedState).toBe('待接单');
    expect(w.read).toMatchObject({ id: w.id, state: '待接单', version: 2, data: { 单位: '县卫健局' } });
    expect(w.read.allowedActions?.map((a) => a.event)).toContain('改派');
    expect(w.refusal).toEqual({ status: 409, code: 'NOT_POSSIBLE' });

    // The case the generated client started is the server's: the auditor sees it in the history.
    const history = await fetch(`${base}/v1/cases/${encodeURIComponent(w.id)}/history`, { headers: await h.auth('督查员周') });
    const events = (await history.json() as { events: { type: string; actor: string }[] }).events;
    expect(events.map((e) => [e.type, e.actor])).toEqual([['start', '居民王先生'], ['派单', '社区书记张']]);
  });
});
