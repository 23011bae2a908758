import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HashError, canonicalJson, chainHash, sha256Hex } from '../../engine/hash.ts';
import type { HashErrorCode } from '../../engine/hash.ts';

function rejection(work: () => unknown): { code: HashErrorCode; path: string } | string {
  try {
    work();
  } catch (error) {
    return error instanceof HashError ? { code: error.code, path: error.path } : `not a HashError: ${String(error)}`;
  }
  return 'no error';
}

/** The same JSON value with every object's keys inserted in reverse order. */
function reverseKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(reverseKeys);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).reverse().map(([key, member]) => [key, reverseKeys(member)]));
  }
  return value;
}

describe('canonicalJson', () => {
  it.each<[string, unknown, string]>([
    ['sorts keys and drops whitespace', { b: 1, a: ['网格', true] }, '{"a":["网格",true],"b":1}'],
    ['sorts nested keys', { z: { y: 1, x: [{ d: null, c: 2 }] } }, '{"z":{"x":[{"c":2,"d":null}],"y":1}}'],
    ['keeps non-ASCII text as is', { 诉求: '修路灯 🚦' }, '{"诉求":"修路灯 🚦"}'],
    ['escapes control characters as JSON.stringify does', { s: 'a\n\u001f"\\' }, '{"s":"a\\n\\u001f\\"\\\\"}'],
    ['escapes a lone surrogate', ['\ud800'], '["\\ud800"]'],
    ['writes numbers as ECMAScript does', [1.0, -0, 1e21, 0.1, -1.5e-7], '[1,0,1e+21,0.1,-1.5e-7]'],
    ['omits undefined members, as jsonb storage would', { a: undefined, b: 1 }, '{"b":1}'],
    ['uses toJSON (Date → ISO string)', { at: new Date('2026-10-08T02:00:00Z') }, '{"at":"2026-10-08T02:00:00.000Z"}'],
    ['accepts null-prototype objects', Object.assign(Object.create(null) as object, { b: 2, a: 1 }), '{"a":1,"b":2}'],
    ['scalars', 'x', '"x"'],
  ])('%s', (_name, value, expected) => {
    expect(canonicalJson(value)).toBe(expected);
  });

  it('orders keys by UTF-16 code units (RFC 8785), not by code points', () => {
    // U+1F600 is stored as \ud83d\ude00, which sorts before U+FF01.
    expect(canonicalJson({ '\uff01': 1, '\u{1f600}': 2, '\u00e9': 3, a: 4 })).toBe('{"a":4,"é":3,"😀":2,"！":1}');
  });

  it('does not normalize Unicode: a different spelling is a different record', () => {
    expect(canonicalJson({ name: '\u00e9' })).not.toBe(canonicalJson({ name: 'e\u0301' }));
  });

  it('is independent of key insertion order, and parse → canonicalize is stable (property)', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const canonical = canonicalJson(value);
        expect(canonicalJson(reverseKeys(value))).toBe(canonical);
        expect(canonicalJson(JSON.parse(canonical))).toBe(canonical);
      }),
    );
  });

  const cyclic: { self?: unknown } = {};
  cyclic.self = cyclic;
  it.each<[string, unknown, HashErrorCode, string]>([
    ['NaN', { score: Number.NaN }, 'HASH_NON_FINITE_NUMBER', '$.score'],
    ['Infinity in an array', { a: [1, Number.POSITIVE_INFINITY] }, 'HASH_NON_FINITE_NUMBER', '$.a[1]'],
    ['undefined at the top', undefined, 'HASH_UNSUPPORTED_VALUE', '$'],
    ['undefined in an array', [1, undefined], 'HASH_UNSUPPORTED_VALUE', '$[1]'],
    ['an array hole', [1, , 3], 'HASH_UNSUPPORTED_VALUE', '$[1]'],
    ['a function', { f: () => 1 }, 'HASH_UNSUPPORTED_VALUE', '$.f'],
    ['a symbol', { s: Symbol('x') }, 'HASH_UNSUPPORTED_VALUE', '$.s'],
    ['a bigint', { n: 1n }, 'HASH_UNSUPPORTED_VALUE', '$.n'],
    ['a Map', { m: new Map([['a', 1]]) }, 'HASH_UNSUPPORTED_VALUE', '$.m'],
    ['a class instance', { u: new URLSearchParams('a=1') }, 'HASH_UNSUPPORTED_VALUE', '$.u'],
    ['a cycle', cyclic, 'HASH_CYCLE', '$.self'],
    ['a toJSON returning itself', { t: { toJSON(): unknown { return this; } } }, 'HASH_CYCLE', '$.t'],
  ])('rejects %s', (_name, value, code, path) => {
    expect(rejection(() => canonicalJson(value))).toEqual({ code, path });
  });

  /** `[[…[1]…]]` or `{"a":{"a":…1…}}`, `depth` containers deep. */
  const nested = (depth: number, kind: 'array' | 'object', leaf: unknown = 1): unknown => {
    let v = leaf;
    for (let i = 0; i < depth; i++) v = kind === 'array' ? [v] : { a: v };
    return v;
  };

  // Regression: the careful writer recursed once per level, so case data a few thousand levels deep
  // (which the fast writer hands over past 200) overflowed the stack and the request failed with a 500.
  it.each([250, 5_000, 100_000])('writes arrays nested %i levels deep without overflowing the stack', (depth) => {
    expect(canonicalJson(nested(depth, 'array'))).toBe(`${'['.repeat(depth)}1${']'.repeat(depth)}`);
  });

  it('writes objects nested 100,000 levels deep, with sorted keys and toJSON at the bottom', () => {
    const depth = 100_000;
    const bottom = { z: new Date('2026-10-08T02:00:00Z'), b: [true, null] };
    expect(canonicalJson(nested(depth, 'object', bottom))).toBe(`${'{"a":'.repeat(depth)}{"b":[true,null],"z":"2026-10-08T02:00:00.000Z"}${'}'.repeat(depth)}`);
  });

  it('writes deep values exactly as the fast writer writes shallow ones (property)', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        // Wrapped past the fast writer's depth, the same value goes through the careful writer.
        const deep = canonicalJson(nested(300, 'array', value));
        expect(deep).toBe(`${'['.repeat(300)}${canonicalJson(value)}${']'.repeat(300)}`);
      }),
      { numRuns: 200 },
    );
  });

  it('names the path of a bad value deep down, and a deep cycle', () => {
    const bad = rejection(() => canonicalJson(nested(3_000, 'array', { x: Number.NaN })));
    expect(bad).toEqual({ code: 'HASH_NON_FINITE_NUMBER', path: `$${'[0]'.repeat(3_000)}.x` });
    const top: { a?: unknown } = {};
    let v: { a?: unknown } = top;
    for (let i = 0; i < 3_000; i++) v = (v.a = {});
    v.a = top;
    expect(rejection(() => canonicalJson(top))).toEqual({ code: 'HASH_CYCLE', path: `$${'.a'.repeat(3_001)}` });
  });

  it('accepts a shared (non-cyclic) object twice', () => {
    const shared = { a: 1 };
    expect(canonicalJson({ x: shared, y: [shared] })).toBe('{"x":{"a":1},"y":[{"a":1}]}');
  });
});

describe('chainHash', () => {
  it('hashes the first event alone (SHA-256 test vectors)', () => {
    expect(chainHash(null, '')).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    expect(chainHash(null, 'abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  });

  it('prefixes the previous hash as 32 raw bytes, then the UTF-8 event', () => {
    const first = chainHash(null, canonicalJson({ seq: 1, type: '点单' }));
    const event = canonicalJson({ seq: 2, type: '派单' });
    const expected = createHash('sha256').update(Buffer.from(first, 'hex')).update(Buffer.from(event, 'utf8')).digest('hex');
    expect(chainHash(first, event)).toBe(expected);
  });

  it('changes when any link changes', () => {
    const a = chainHash(null, '{"seq":1}');
    const b = chainHash(null, '{"seq":1,"x":0}');
    expect(chainHash(a, '{"seq":2}')).not.toBe(chainHash(b, '{"seq":2}'));
    expect(chainHash(a, '{"seq":2}')).not.toBe(chainHash(a, '{"seq":3}'));
    expect(chainHash(a, '')).not.toBe(chainHash(null, ''));
  });

  it.each(['', 'abc', 'E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855', `${'0'.repeat(63)}g`])(
    'rejects the previous hash %j',
    (prev) => {
      expect(rejection(() => chainHash(prev, '{}'))).toEqual({ code: 'HASH_INVALID_PREV_HASH', path: '$' });
    },
  );
});

describe('sha256Hex', () => {
  it('hashes UTF-8', () => {
    expect(sha256Hex('网格')).toBe(createHash('sha256').update(Buffer.from('网格', 'utf8')).digest('hex'));
  });
});
