import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { T, type FieldConstraints, type FieldType, type Type, type Value } from '../../dsl/types.ts';
import { validateRecord, validateValue, type FieldErrorCode } from '../../dsl/values.ts';
import { parseDateTime, parseDuration } from '../../dsl/time.ts';

const f = (type: Type, constraints: FieldConstraints = {}, more: Partial<FieldType> = {}): FieldType =>
  ({ type, optional: false, constraints, ...more });
const 类别: Type = { kind: 'enum', members: ['维修', '养老', '其他'] };
const 评分: Type = { kind: 'record', fields: { 满意度: f(T.number, { min: 1, max: 5 }), 意见: f(T.text, {}, { optional: true }) } };

type Row = [string, FieldType, unknown, { value: Value } | { errors: [FieldErrorCode, string][] }];

const rows: Row[] = [
  // text
  ['text', f(T.text), '你好', { value: '你好' }],
  ['text, not a number', f(T.text), 5, { errors: [['type', 'x']] }],
  ['pattern matches', f(T.text, { pattern: '^1[0-9]{10}$' }), '13800000000', { value: '13800000000' }],
  ['pattern fails', f(T.text, { pattern: '^1[0-9]{10}$' }), '123', { errors: [['pattern', 'x']] }],
  ['length in characters', f(T.text, { minLength: 1, maxLength: 2 }), '单位', { value: '单位' }],
  ['too long', f(T.text, { minLength: 1, maxLength: 2 }), '单位们', { errors: [['length', 'x']] }],
  ['too short', f(T.text, { minLength: 1 }), '', { errors: [['length', 'x']] }],
  // number
  ['number', f(T.number), 3.5, { value: 3.5 }],
  ['number as text is refused', f(T.number), '3', { errors: [['type', 'x']] }],
  ['infinite number', f(T.number), Infinity, { errors: [['type', 'x']] }],
  ['NaN', f(T.number), Number.NaN, { errors: [['type', 'x']] }],
  ['in range', f(T.number, { min: 1, max: 5 }), 5, { value: 5 }],
  ['out of range', f(T.number, { min: 1, max: 5 }), 6, { errors: [['range', 'x']] }],
  // boolean
  ['boolean', f(T.boolean), false, { value: false }],
  ['boolean as text', f(T.boolean), 'true', { errors: [['type', 'x']] }],
  // datetime
  ['date means local midnight (UTC+8)', f(T.datetime), '2024-05-01', { value: '2024-04-30T16:00:00.000Z' }],
  ['date-time with offset', f(T.datetime), '2024-05-01T09:00:00+08:00', { value: '2024-05-01T01:00:00.000Z' }],
  ['UTC date-time', f(T.datetime), '2024-05-01T09:00:00.5Z', { value: '2024-05-01T09:00:00.500Z' }],
  ['space separator', f(T.datetime), '2024-05-01 09:30', { value: '2024-05-01T01:30:00.000Z' }],
  ['not a date', f(T.datetime), 'tomorrow', { errors: [['type', 'x']] }],
  ['impossible month', f(T.datetime), '2024-13-01', { errors: [['type', 'x']] }],
  ['impossible day', f(T.datetime), '2023-02-29', { errors: [['type', 'x']] }],
  ['leap day', f(T.datetime), '2024-02-29T00:00:00Z', { value: '2024-02-29T00:00:00.000Z' }],
  ['epoch number refused', f(T.datetime), 0, { errors: [['type', 'x']] }],
  ['datetime in range', f(T.datetime, { min: '2024-01-01T00:00:00.000Z', max: '2024-12-31T00:00:00.000Z' }), '2024-05-01T00:00:00Z', { value: '2024-05-01T00:00:00.000Z' }],
  ['datetime out of range', f(T.datetime, { min: '2024-01-01T00:00:00.000Z' }), '2023-05-01T00:00:00Z', { errors: [['range', 'x']] }],
  // duration
  ['2 workdays', f(T.duration), '2 workdays', { value: { ms: 0, workdays: 2 } }],
  ['48 hours', f(T.duration), '48 hours', { value: { ms: 48 * 3_600_000, workdays: 0 } }],
  ['30 minutes', f(T.duration), '30 minutes', { value: { ms: 1_800_000, workdays: 0 } }],
  ['3 days', f(T.duration), '3 days', { value: { ms: 3 * 86_400_000, workdays: 0 } }],
  ['2 工作日', f(T.duration), '2 工作日', { value: { ms: 0, workdays: 2 } }],
  ['3天2小时', f(T.duration), '3天2小时', { value: { ms: 3 * 86_400_000 + 2 * 3_600_000, workdays: 0 } }],
  ['1 workday, 2 hours', f(T.duration), '1 workday, 2 hours', { value: { ms: 2 * 3_600_000, workdays: 1 } }],
  ['2h', f(T.duration), '2h', { value: { ms: 2 * 3_600_000, workdays: 0 } }],
  ['PT48H', f(T.duration), 'PT48H', { value: { ms: 48 * 3_600_000, workdays: 0 } }],
  ['P1DT2H30M', f(T.duration), 'P1DT2H30M', { value: { ms: 86_400_000 + 2.5 * 3_600_000, workdays: 0 } }],
  ['PT1.5H', f(T.duration), 'PT1.5H', { value: { ms: 1.5 * 3_600_000, workdays: 0 } }],
  ['object form', f(T.duration), { ms: 5, workdays: 1 }, { value: { ms: 5, workdays: 1 } }],
  ['P1Y refused', f(T.duration), 'P1Y', { errors: [['type', 'x']] }],
  ['PT refused', f(T.duration), 'PT', { errors: [['type', 'x']] }],
  ['unknown unit', f(T.duration), '2 fortnights', { errors: [['type', 'x']] }],
  ['bare number refused', f(T.duration), 5, { errors: [['type', 'x']] }],
  ['object with text parts', f(T.duration), { ms: '5', workdays: 0 }, { errors: [['type', 'x']] }],
  ['object with extra keys', f(T.duration), { ms: 5, workdays: 0, x: 1 }, { errors: [['type', 'x']] }],
  // org and actor
  ['org', f(T.org), '社区1', { value: '社区1' }],
  ['empty org', f(T.org), '', { errors: [['type', 'x']] }],
  ['blank org', f(T.org), '  ', { errors: [['type', 'x']] }],
  ['numeric org', f(T.org), 7, { errors: [['type', 'x']] }],
  ['actor', f(T.actor), 'u1', { value: 'u1' }],
  ['empty actor', f(T.actor), '', { errors: [['type', 'x']] }],
  // enum
  ['member', f(类别), '养老', { value: '养老' }],
  ['not a member', f(类别), '修理', { errors: [['enum', 'x']] }],
  ['enum given a number', f(类别), 1, { errors: [['type', 'x']] }],
  // list
  ['list', f({ kind: 'list', item: T.text }), ['a', 'b'], { value: ['a', 'b'] }],
  ['list item of the wrong type', f({ kind: 'list', item: T.text }), ['a', 2], { errors: [['type', 'x[1]']] }],
  ['null list item', f({ kind: 'list', item: T.text }), [null], { errors: [['required', 'x[0]']] }],
  ['list length', f({ kind: 'list', item: T.text }, { maxLength: 1 }), ['a', 'b'], { errors: [['length', 'x']] }],
  ['list of datetimes normalized', f({ kind: 'list', item: T.datetime }), ['2024-05-01'], { value: ['2024-04-30T16:00:00.000Z'] }],
  ['not a list', f({ kind: 'list', item: T.text }), 'a', { errors: [['type', 'x']] }],
  // record
  ['record', f(评分), { 满意度: 5 }, { value: { 满意度: 5, 意见: null } }],
  ['record field out of range', f(评分), { 满意度: 9 }, { errors: [['range', 'x.满意度']] }],
  ['record field missing', f(评分), { 意见: '好' }, { errors: [['required', 'x.满意度']] }],
  ['record unknown field', f(评分), { 满意度: 3, 满意: 3 }, { errors: [['unknown_field', 'x.满意']] }],
  ['record given a list', f(评分), [], { errors: [['type', 'x']] }],
  ['list of records', f({ kind: 'list', item: 评分 }), [{ 满意度: 1 }, { 满意度: 0 }], { errors: [['range', 'x[1].满意度']] }],
  // absence and defaults
  ['required and missing', f(T.text), undefined, { errors: [['required', 'x']] }],
  ['required and null', f(T.text), null, { errors: [['required', 'x']] }],
  ['optional and missing', f(T.text, {}, { optional: true }), undefined, { value: null }],
  ['optional and null', f(T.org, {}, { optional: true }), null, { value: null }],
  ['default when missing', f(T.number, {}, { default: 0 }), undefined, { value: 0 }],
  ['default when null', f(T.number, {}, { default: 0 }), null, { value: 0 }],
  ['default not used when given', f(T.number, {}, { default: 0 }), 3, { value: 3 }],
  // untyped
  ['unknown type takes JSON', f(T.unknown), { a: [1, 'x', null] }, { value: { a: [1, 'x', null] } }],
];

describe('validateValue', () => {
  it.each(rows)('%s', (_, field, input, expected) => {
    const r = validateValue(field, input, 'x');
    if ('value' in expected) {
      expect(r.errors).toEqual([]);
      expect(r.value).toEqual(expected.value);
    } else {
      expect(r.errors.map((e) => [e.code, e.path])).toEqual(expected.errors);
      expect(r.value).toBeNull();
      for (const e of r.errors) expect(e.message).toContain(`"${e.path}"`);
    }
  });

  it('says what is expected', () => {
    expect(validateValue(f(类别), '修理', '类别').errors[0]?.message).toBe('"类别" must be one of 维修, 养老, 其他; got the text "修理".');
    expect(validateValue(f(T.text, { pattern: '^1[0-9]{10}$' }), '123', '电话').errors[0]?.message).toBe('"电话" must match the pattern ^1[0-9]{10}$; got the text "123".');
    expect(validateValue(f(T.text, {}, { label: '联系电话' }), undefined, '电话').errors[0]?.message).toBe('"电话" is required (联系电话): give text.');
    expect(validateValue(f(T.number, { min: 1, max: 5 }), 6, '分').errors[0]?.message).toBe('"分" must be between 1 and 5; got 6.');
    expect(validateValue(f(类别), '维休', '类别').errors[0]?.message).toContain('Did you mean "维修"?');
  });
});

describe('validateRecord', () => {
  const fields: Record<string, FieldType> = {
    电话: f(T.text, { pattern: '^1[0-9]{10}$' }),
    类别: f(类别),
    单位: f(T.org, {}, { optional: true }),
    积分: f(T.number, {}, { default: 0 }),
    截止: f(T.datetime, {}, { optional: true }),
  };

  it('fills defaults and optional fields, and normalizes', () => {
    const r = validateRecord(fields, { 电话: '13800000000', 类别: '维修', 截止: '2024-05-01' }, {});
    expect(r.errors).toEqual([]);
    expect(r.value).toEqual({ 电话: '13800000000', 类别: '维修', 单位: null, 积分: 0, 截止: '2024-04-30T16:00:00.000Z' });
  });

  it('reports every problem at once, unknown fields with a suggestion', () => {
    const r = validateRecord(fields, { 电话: '1', 类别: '修理', 单元: '社区1' }, {});
    expect(r.errors.map((e) => [e.code, e.path])).toEqual([['unknown_field', '单元'], ['pattern', '电话'], ['enum', '类别']]);
    expect(r.errors[0]?.message).toBe('"单元" is not a field here. Did you mean "单位"?');
  });

  it('lists the fields when nothing is close', () => {
    const r = validateRecord({ a: f(T.text) }, { a: 'x', zzzzzz: 1 }, {});
    expect(r.errors[0]?.message).toBe('"zzzzzz" is not a field here. The fields are: a.');
  });

  it('with partial, neither requires nor defaults what is left out', () => {
    const r = validateRecord(fields, { 单位: '网格1' }, { partial: true });
    expect(r.errors).toEqual([]);
    expect(r.value).toEqual({ 单位: '网格1' });
    expect(validateRecord(fields, { 类别: 'x' }, { partial: true }).errors.map((e) => e.code)).toEqual(['enum']);
  });

  it('prefixes paths', () => {
    const r = validateRecord(fields, { 类别: 'x' }, { partial: true, path: 'payload' });
    expect(r.errors[0]?.path).toBe('payload.类别');
  });

  it.each([null, 'text', 3, [], true])('refuses %j as a record', (input) => {
    const r = validateRecord(fields, input, {});
    expect(r.errors.map((e) => [e.code, e.path])).toEqual([['type', '']]);
    expect(r.value).toEqual({});
  });

  it('treats __proto__ and constructor as data, never as the prototype', () => {
    const polluted: unknown = JSON.parse('{"__proto__": {"x": 1}, "电话": "13800000000", "类别": "维修"}');
    const r = validateRecord(fields, polluted, {});
    expect(r.errors.map((e) => [e.code, e.path])).toEqual([['unknown_field', '__proto__']]);
    expect(Object.getPrototypeOf(r.value)).toBe(Object.prototype);
    const own = validateRecord({ constructor: f(T.text), __proto__: f(T.text, {}, { optional: true }) } as Record<string, FieldType>, {}, {});
    expect(own.errors.map((e) => [e.code, e.path])).toEqual([['required', 'constructor']]);
  });
});

// Regressions: a NUL in case data or a payload reached Postgres, which refuses it in text and jsonb
// (a 500 instead of a 422), and case data thousands of levels deep overflowed the stack.
describe('values no type can store', () => {
  const fields: Record<string, FieldType> = {
    心愿: f(T.text),
    类别: f(类别, {}, { optional: true }),
    附件: f(T.unknown, {}, { optional: true }),
    评分: f(评分, {}, { optional: true }),
  };
  const deep = (depth: number): unknown => {
    let v: unknown = 1;
    for (let i = 0; i < depth; i++) v = [v];
    return v;
  };
  const codes = (r: { errors: readonly { code: string; path: string }[] }): [string, string][] => r.errors.map((e) => [e.code, e.path]);

  it.each<[string, unknown, [FieldErrorCode, string][]]>([
    ['a NUL in a text field', { 心愿: '清理\u0000杂物' }, [['nul_character', '心愿']]],
    ['a NUL in an enum field (refused before the enum check)', { 心愿: 'x', 类别: '养\u0000老' }, [['nul_character', '类别']]],
    ['a NUL deep inside an untyped field', { 心愿: 'x', 附件: { 图片: ['a', { 说明: 'b\u0000' }] } }, [['nul_character', '附件.图片[1].说明']]],
    ['a NUL in a key, shown escaped in the path', { 心愿: 'x', 附件: { 'a\u0000b': 1 } }, [['nul_character', '附件.a\\u0000b']]],
    ['a NUL in an unknown field\'s key', { 心愿: 'x', 'x\u0000': 1 }, [['nul_character', 'x\\u0000']]],
    ['a NUL in a nested record', { 心愿: 'x', 评分: { 满意度: 3, 意见: '\u0000' } }, [['nul_character', '评分.意见']]],
    ['several, in the input\'s order', { 心愿: '\u0000', 附件: ['\u0000', { '\u0000': 1 }] }, [['nul_character', '心愿'], ['nul_character', '附件[0]'], ['nul_character', '附件[1].\\u0000']]],
    ['lists 65 deep', { 心愿: 'x', 附件: deep(65) }, [['too_deep', `附件${'[0]'.repeat(64)}`]]],
    ['lists 5,000 deep', { 心愿: 'x', 附件: deep(5_000) }, [['too_deep', `附件${'[0]'.repeat(64)}`]]],
    ['lists 200,000 deep in an unknown field', { 心愿: 'x', 其他: deep(200_000) }, [['too_deep', `其他${'[0]'.repeat(64)}`]]],
  ])('refuses %s, and nothing else', (_name, input, expected) => {
    const r = validateRecord(fields, input, {});
    expect(codes(r)).toEqual(expected);
    expect(r.value).toEqual({});
    for (const e of r.errors) {
      expect(e.message).toContain(`"${e.path}"`);
      expect(e.path).not.toContain('\u0000');
      expect(e.message).not.toContain('\u0000');
    }
  });

  it('takes lists 64 deep', () => {
    expect(validateRecord(fields, { 心愿: 'x', 附件: deep(64) }, {}).errors).toEqual([]);
  });

  it('stops after 20 problems', () => {
    const r = validateRecord(fields, { 心愿: 'x', 附件: Array.from({ length: 1_000 }, () => '\u0000') }, {});
    expect(r.errors).toHaveLength(20);
  });

  it('prefixes the paths, and refuses a bare value too', () => {
    expect(codes(validateRecord(fields, { 心愿: '\u0000' }, { path: 'payload' }))).toEqual([['nul_character', 'payload.心愿']]);
    expect(codes(validateValue(f(T.text), 'a\u0000', '说明'))).toEqual([['nul_character', '说明']]);
    expect(validateValue(f(T.text), 'a\u0000', '说明').value).toBeNull();
    expect(codes(validateValue(f(T.unknown), deep(70), 'x'))).toEqual([['too_deep', `x${'[0]'.repeat(65)}`]]);
  });

  it('lets other control characters through (they are storable)', () => {
    expect(validateRecord(fields, { 心愿: '第一行\n第二行\t\u0001' }, {}).errors).toEqual([]);
  });
});

describe('parsing helpers', () => {
  it.each([
    ['2024-05-01T00:00:00Z', Date.UTC(2024, 4, 1)],
    ['2024-05-01T08:00:00+08:00', Date.UTC(2024, 4, 1)],
    ['2024-05-01T08:00:00+0800', Date.UTC(2024, 4, 1)],
    ['2024-05-01T08:00+08', Date.UTC(2024, 4, 1)],
    ['0099-01-01T00:00:00Z (not 1999)', -59042995200000],
    ['2024-05-01T24:00:00Z', null],
    ['2024-05-01T23:60:00Z', null],
    ['2024-05-01T00:00:00+25:00', null],
    ['May 1, 2024', null],
  ] as [string, number | null][])('parseDateTime(%s)', (text, ms) => {
    expect(parseDateTime(text.replace(/ \(.*\)$/, ''))).toBe(ms);
  });
  it('reads durations', () => {
    expect(parseDuration(' 1 天 ')).toEqual({ ms: 86_400_000, workdays: 0 });
    expect(parseDuration('')).toBeNull();
    expect(parseDuration('2')).toBeNull();
    expect(parseDuration('-2 hours')).toBeNull();
  });
});

// ---------------------------------------------------------------------------------------------

describe('totality and idempotence', () => {
  const everything: Record<string, FieldType> = {
    t: f(T.text, { pattern: '^a', minLength: 1, maxLength: 5 }, { optional: true }),
    n: f(T.number, { min: 0, max: 10 }, { default: 1 }),
    b: f(T.boolean, {}, { optional: true }),
    dt: f(T.datetime, { min: '2000-01-01T00:00:00.000Z' }, { optional: true }),
    du: f(T.duration, {}, { optional: true }),
    o: f(T.org, {}, { optional: true }),
    a: f(T.actor, {}, { optional: true }),
    e: f(类别, {}, { optional: true }),
    l: f({ kind: 'list', item: { kind: 'list', item: T.number } }, { maxLength: 3 }, { optional: true }),
    r: f(评分, {}, { optional: true }),
    u: f(T.unknown, {}, { optional: true }),
  };
  const plausible = fc.record({
    t: fc.oneof(fc.string(), fc.constant('abc')),
    n: fc.oneof(fc.integer({ min: -2, max: 12 }), fc.double()),
    b: fc.boolean(),
    dt: fc.oneof(fc.string(), fc.date({ noInvalidDate: true }).map((d) => d.toISOString()), fc.constantFrom('2024-05-01', '1999-12-31')),
    du: fc.oneof(fc.constantFrom('2 workdays', 'PT1H', '3天', 'x'), fc.record({ ms: fc.double(), workdays: fc.integer() })),
    o: fc.string(),
    a: fc.string(),
    e: fc.constantFrom('维修', '养老', '其他', '修理'),
    l: fc.array(fc.array(fc.oneof(fc.integer(), fc.string()), { maxLength: 3 }), { maxLength: 4 }),
    r: fc.record({ 满意度: fc.integer({ min: 0, max: 6 }), 意见: fc.option(fc.string()) }, { requiredKeys: ['满意度'] }),
    u: fc.jsonValue(),
  }, { requiredKeys: [] });

  it('never throws on any JSON, and always names a path and a code', () => {
    fc.assert(fc.property(fc.oneof(fc.jsonValue(), plausible, fc.dictionary(fc.constantFrom(...Object.keys(everything), 'zz'), fc.jsonValue())), fc.boolean(), (input, partial) => {
      const r = validateRecord(everything, input, { partial });
      for (const e of r.errors) {
        expect(typeof e.path).toBe('string');
        expect(e.message.length).toBeGreaterThan(0);
      }
    }), { numRuns: 1000 });
  });

  it('accepts its own output unchanged', () => {
    fc.assert(fc.property(plausible, (input) => {
      const first = validateRecord(everything, input, {});
      fc.pre(first.errors.length === 0);
      const second = validateRecord(everything, JSON.parse(JSON.stringify(first.value)), {});
      expect(second.errors).toEqual([]);
      expect(second.value).toEqual(first.value);
    }), { numRuns: 500 });
  });
});
