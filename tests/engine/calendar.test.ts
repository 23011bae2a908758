import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CalendarError, createCalendar } from '../../engine/calendar.ts';
import type { CalendarErrorCode, Duration } from '../../engine/calendar.ts';

// The State Council's 2026 schedule (国办发明电〔2025〕, published 2025-11-04): Mid-Autumn
// 09-25..27, National Day 10-01..07, make-up workdays Sunday 09-20 and Saturday 10-10.
const CHINA_2026 = {
  holidays: ['2026-09-25', '2026-09-26', '2026-09-27', ...days('2026-10-0', [1, 2, 3, 4, 5, 6, 7])],
  workdays: ['2026-09-20', '2026-10-10'],
};
const calendar = createCalendar(CHINA_2026);

function days(prefix: string, numbers: readonly number[]): string[] {
  return numbers.map((n) => `${prefix}${n}`);
}

/** Epoch ms of a Beijing wall-clock time. */
function beijing(local: string): number {
  return Date.parse(`${local}+08:00`);
}

function codeOf(work: () => unknown): CalendarErrorCode | string {
  try {
    work();
  } catch (error) {
    return error instanceof CalendarError ? error.code : `not a CalendarError: ${String(error)}`;
  }
  return 'no error';
}

describe('isWorkday', () => {
  it.each([
    ['Friday', '2026-09-11T10:00', true],
    ['Saturday', '2026-09-12T10:00', false],
    ['Sunday', '2026-09-13T10:00', false],
    ['National Day, a Thursday', '2026-10-01T10:00', false],
    ['Mid-Autumn, a Friday', '2026-09-25T10:00', false],
    ['make-up workday on a Sunday', '2026-09-20T10:00', true],
    ['make-up workday on a Saturday', '2026-10-10T10:00', true],
    ['the Saturday before the make-up Sunday', '2026-09-19T10:00', false],
  ])('%s (%s) → %s', (_name, local, expected) => {
    expect(calendar.isWorkday(beijing(local))).toBe(expected);
  });

  it('judges by the local date, not the UTC date', () => {
    // 00:15 on Thursday 10-08 in Beijing is still Wednesday 10-07, a holiday, in UTC.
    expect(calendar.isWorkday(beijing('2026-10-08T00:15'))).toBe(true);
    // 23:45 on Wednesday 10-07 in Beijing is 15:45 UTC the same day: a holiday either way.
    expect(calendar.isWorkday(beijing('2026-10-07T23:45'))).toBe(false);
  });
});

describe('addWorkdays', () => {
  it.each([
    ['same day for n = 0', '2026-09-11T15:30', 0, '2026-09-11T15:30'],
    ['Friday + 1 crosses the weekend to Monday', '2026-09-11T15:30', 1, '2026-09-14T15:30'],
    ['Friday + 3 → Wednesday', '2026-09-11T15:30', 3, '2026-09-16T15:30'],
    ['Friday + 1 → the make-up Sunday', '2026-09-18T09:00', 1, '2026-09-20T09:00'],
    ['Thursday + 1 skips Mid-Autumn and the weekend', '2026-09-24T09:00', 1, '2026-09-28T09:00'],
    ['the day before National Day + 1 → after the holiday week', '2026-09-30T10:00', 1, '2026-10-08T10:00'],
    ['… + 3 → the make-up Saturday', '2026-09-30T10:00', 3, '2026-10-10T10:00'],
    ['… + 4 → the Monday after', '2026-09-30T10:00', 4, '2026-10-12T10:00'],
    ['from a Saturday, n = 0 rolls to Monday at the same time', '2026-09-12T09:00', 0, '2026-09-14T09:00'],
    ['from a Saturday + 1 counts from Monday', '2026-09-12T09:00', 1, '2026-09-15T09:00'],
    ['from inside the holiday week + 1 counts from 10-08', '2026-10-03T09:00', 1, '2026-10-09T09:00'],
    ['late evening keeps its time past the UTC date line', '2026-09-11T23:30', 1, '2026-09-14T23:30'],
    ['early morning keeps its time', '2026-09-11T00:05', 2, '2026-09-15T00:05'],
    ['milliseconds are kept', '2026-09-11T08:00:00.123', 1, '2026-09-14T08:00:00.123'],
  ])('%s', (_name, from, n, expected) => {
    expect(new Date(calendar.addWorkdays(beijing(from), n)).toISOString()).toBe(new Date(beijing(expected)).toISOString());
  });

  it('lands on a working day, keeps the local time of day, and composes (property)', () => {
    const start = beijing('2026-01-01T00:00');
    const end = beijing('2027-01-01T00:00');
    fc.assert(
      fc.property(fc.integer({ min: start, max: end }), fc.nat({ max: 40 }), fc.nat({ max: 40 }), (from, a, b) => {
        const result = calendar.addWorkdays(from, a + b);
        expect(calendar.isWorkday(result)).toBe(true);
        expect((result - from) % 86_400_000).toBe(0); // Beijing has no DST now, so same time = whole days
        expect(calendar.addWorkdays(calendar.addWorkdays(from, a), b)).toBe(result);
        expect(calendar.addWorkdays(from, a + b + 1)).toBeGreaterThan(result);
      }),
    );
  });
});

describe('addDuration', () => {
  const from = beijing('2026-09-30T10:00');
  it.each<[Duration, string]>([
    [{ amount: 90, unit: 'minutes' }, '2026-09-30T11:30'],
    [{ amount: 48, unit: 'hours' }, '2026-10-02T10:00'],
    [{ amount: 1.5, unit: 'hours' }, '2026-09-30T11:30'],
    [{ amount: 2, unit: 'days' }, '2026-10-02T10:00'],
    [{ amount: 0, unit: 'days' }, '2026-09-30T10:00'],
    [{ amount: 2, unit: 'workdays' }, '2026-10-09T10:00'],
  ])('%o', (duration, expected) => {
    expect(calendar.addDuration(from, duration)).toBe(beijing(expected));
  });
});

describe('other time zones', () => {
  const newYork = createCalendar({ timeZone: 'America/New_York', holidays: ['2026-10-02'] });
  const shanghai = createCalendar({ holidays: ['2026-10-02'] });

  it('reads the same instant as different local dates', () => {
    const instant = Date.parse('2026-10-02T02:00:00Z'); // Thursday 22:00 in New York, Friday 10:00 in Beijing
    expect(newYork.localDate(instant)).toBe('2026-10-01');
    expect(newYork.isWorkday(instant)).toBe(true);
    expect(shanghai.localDate(instant)).toBe('2026-10-02');
    expect(shanghai.isWorkday(instant)).toBe(false);
  });

  it('keeps the wall-clock time across the spring-forward change (71 hours, not 72)', () => {
    const friday = Date.parse('2026-03-06T09:00:00-05:00');
    const monday = newYork.addWorkdays(friday, 1);
    expect(monday).toBe(Date.parse('2026-03-09T09:00:00-04:00'));
    expect((monday - friday) / 3_600_000).toBe(71);
    expect(newYork.addDuration(Date.parse('2026-03-07T09:00:00-05:00'), { amount: 1, unit: 'days' })).toBe(Date.parse('2026-03-08T09:00:00-04:00'));
  });

  it('moves a skipped local time forward by the gap and takes the earlier of a repeated one', () => {
    // 02:30 does not exist on 2026-03-08 in New York: it becomes 03:30 EDT.
    expect(newYork.addDuration(Date.parse('2026-03-07T02:30:00-05:00'), { amount: 1, unit: 'days' })).toBe(Date.parse('2026-03-08T03:30:00-04:00'));
    // 01:30 happens twice on 2026-11-01: the first (EDT) is chosen.
    expect(newYork.addDuration(Date.parse('2026-10-31T01:30:00-04:00'), { amount: 1, unit: 'days' })).toBe(Date.parse('2026-11-01T01:30:00-04:00'));
  });

  it('spells the zone canonically', () => {
    expect(createCalendar({ timeZone: 'asia/shanghai' }).timeZone).toBe('Asia/Shanghai');
    expect(createCalendar().timeZone).toBe('Asia/Shanghai');
  });

  it('handles half-hour offsets', () => {
    const kolkata = createCalendar({ timeZone: 'Asia/Kolkata' });
    const friday = Date.parse('2026-09-11T18:00:00+05:30');
    expect(kolkata.addWorkdays(friday, 1)).toBe(Date.parse('2026-09-14T18:00:00+05:30'));
  });

  it('does not assume a fixed offset for Asia/Shanghai (China observed DST in 1986–1991)', () => {
    // 1988-07-01 15:30 UTC was 00:30 on 07-02 under the summer offset +09:00.
    expect(shanghai.localDate(Date.parse('1988-07-01T15:30:00Z'))).toBe('1988-07-02');
    expect(shanghai.localDate(Date.parse('2026-07-01T15:30:00Z'))).toBe('2026-07-01');
  });
});

describe('errors', () => {
  it.each<[string, () => unknown, CalendarErrorCode]>([
    ['a date without zero padding', () => createCalendar({ holidays: ['2026-1-1'] }), 'CALENDAR_INVALID_DATE'],
    ['a date that does not exist', () => createCalendar({ holidays: ['2026-02-29'] }), 'CALENDAR_INVALID_DATE'],
    ['a slash-separated date', () => createCalendar({ workdays: ['2026/09/20'] }), 'CALENDAR_INVALID_DATE'],
    ['a date with a time', () => createCalendar({ holidays: ['2026-10-01T00:00'] }), 'CALENDAR_INVALID_DATE'],
    ['an unknown time zone', () => createCalendar({ timeZone: 'Asia/Beijing' }), 'CALENDAR_INVALID_TIME_ZONE'],
    ['a date both holiday and workday', () => createCalendar({ holidays: ['2026-09-20'], workdays: ['2026-09-20'] }), 'CALENDAR_DATE_CONFLICT'],
    ['a make-up workday on a weekday', () => createCalendar({ workdays: ['2026-09-21'] }), 'CALENDAR_WORKDAY_NOT_WEEKEND'],
    ['negative working days', () => calendar.addWorkdays(0, -1), 'CALENDAR_INVALID_DURATION'],
    ['fractional working days', () => calendar.addWorkdays(0, 1.5), 'CALENDAR_INVALID_DURATION'],
    ['fractional days', () => calendar.addDuration(0, { amount: 0.5, unit: 'days' }), 'CALENDAR_INVALID_DURATION'],
    ['NaN minutes', () => calendar.addDuration(0, { amount: Number.NaN, unit: 'minutes' }), 'CALENDAR_INVALID_DURATION'],
    ['an unknown unit', () => calendar.addDuration(0, { amount: 1, unit: 'weeks' } as unknown as Duration), 'CALENDAR_INVALID_DURATION'],
    ['a NaN instant', () => calendar.isWorkday(Number.NaN), 'CALENDAR_INVALID_TIME'],
    ['an instant beyond Date', () => calendar.addWorkdays(9e15, 1), 'CALENDAR_INVALID_TIME'],
  ])('%s', (_name, work, code) => {
    expect(codeOf(work)).toBe(code);
  });

  it('accepts 29 February in a leap year', () => {
    expect(createCalendar({ holidays: ['2028-02-29'] }).isWorkday(beijing('2028-02-29T10:00'))).toBe(false);
  });
});
