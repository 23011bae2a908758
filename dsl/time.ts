/**
 * Calendar arithmetic shared by the expression functions, the value validator and the in-memory oracle.
 *
 * A datetime value is an ISO-8601 string in UTC as `Date.prototype.toISOString()` writes it, with a
 * four-digit year (0000–9999) so that such strings also sort in time order. A datetime written without
 * an offset (`2024-05-01`, `2024-05-01 09:00`) means wall-clock time in the deployment's zone, fixed at
 * UTC+8 (China Standard Time, which has no daylight saving) unless an oracle says otherwise: ECMAScript's
 * own reading of such strings depends on the machine's zone, which would make replay differ by machine.
 */
import type { DurationValue } from './types.ts';
import { DURATION_UNITS } from './types.ts';

/**
 * UTC+8, the zone of the seed deployments; used when nothing else names a zone.
 * @example parseDateTime('2024-05-01', DEFAULT_UTC_OFFSET_MINUTES)
 */
export const DEFAULT_UTC_OFFSET_MINUTES = 480;

/** Clock units in milliseconds. @example 2 * HOUR_MS // 7_200_000 */
export const MINUTE_MS = 60_000;
/** @example 2 * HOUR_MS // 7_200_000 */
export const HOUR_MS = 3_600_000;
/** A calendar day of 24 hours, not a working day. @example 3 * DAY_MS */
export const DAY_MS = 86_400_000;

/** `Date` covers ±100,000,000 days around 1970 (ECMA-262 §21.4.1.1). */
const DATE_LIMIT_MS = 8.64e15;

const DATE_TIME =
  /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?\s*(Z|z|[+-]\d{2}(?::?\d{2})?)?$/;

function daysInMonth(year: number, month: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return [4, 6, 9, 11].includes(month) ? 30 : 31;
}

function parseOffset(tz: string | undefined, fallback: number): number | null {
  if (tz === undefined) return fallback;
  if (tz === 'Z' || tz === 'z') return 0;
  const sign = tz.startsWith('-') ? -1 : 1;
  const digits = tz.slice(1).replace(':', '');
  const h = Number(digits.slice(0, 2));
  const m = digits.length > 2 ? Number(digits.slice(2, 4)) : 0;
  if (h > 23 || m > 59) return null;
  return sign * (h * 60 + m);
}

/**
 * Reads an ISO-8601 date or date-time (`2024-05-01`, `2024-05-01T09:30`, `2024-05-01 09:30:00+08:00`,
 * `2024-05-01T01:30:00.000Z`) as epoch milliseconds; null when it is not one or names an impossible day.
 * @example parseDateTime('2024-05-01') // Date.UTC(2024, 3, 30, 16) — midnight in UTC+8
 */
export function parseDateTime(text: string, offsetMinutes: number = DEFAULT_UTC_OFFSET_MINUTES): number | null {
  const m = DATE_TIME.exec(text.trim());
  if (m === null) return null;
  const year = Number(m[1]);
  const month = Number(m[2]);
  const day = Number(m[3]);
  const hour = Number(m[4] ?? 0);
  const minute = Number(m[5] ?? 0);
  const second = Number(m[6] ?? 0);
  const milli = Number(((m[7] ?? '') + '000').slice(0, 3));
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return null;
  if (hour > 23 || minute > 59 || second > 59) return null;
  const offset = parseOffset(m[8], offsetMinutes);
  if (offset === null) return null;
  // Date.UTC maps years 0–99 to 1900–1999, so set the full year explicitly.
  const d = new Date(0);
  d.setUTCFullYear(year, month - 1, day);
  d.setUTCHours(hour, minute, second, milli);
  const ms = d.getTime() - offset * MINUTE_MS;
  return formatIso(ms) === null ? null : ms;
}

/**
 * Epoch milliseconds as a datetime value; null outside the years 0000–9999 or when not finite.
 * @example formatIso(0) // '1970-01-01T00:00:00.000Z'
 */
export function formatIso(ms: number): string | null {
  if (!Number.isFinite(ms) || Math.abs(ms) > DATE_LIMIT_MS) return null;
  const d = new Date(Math.trunc(ms));
  const y = d.getUTCFullYear();
  if (y < 0 || y > 9999) return null;
  return d.toISOString();
}

/**
 * A written date or date-time as a normalized datetime value, or null.
 * @example normalizeDateTime('2024-05-01 08:00') // '2024-05-01T00:00:00.000Z'
 */
export function normalizeDateTime(text: string, offsetMinutes: number = DEFAULT_UTC_OFFSET_MINUTES): string | null {
  const ms = parseDateTime(text, offsetMinutes);
  return ms === null ? null : formatIso(ms);
}

/**
 * The wall-clock reading of an instant in some zone.
 * @example localParts(Date.parse('2024-05-03T07:00:00Z')) // { year: 2024, month: 5, day: 3, hour: 15, minute: 0, weekday: 5 }
 */
export interface LocalParts {
  readonly year: number;
  /** 1–12 */
  readonly month: number;
  /** 1–31 */
  readonly day: number;
  /** 0–23 */
  readonly hour: number;
  readonly minute: number;
  /** ISO weekday: 1 = Monday … 7 = Sunday. */
  readonly weekday: number;
}

/**
 * The wall-clock reading of an instant in a zone `offsetMinutes` east of UTC.
 * @example localParts(Date.UTC(2024, 0, 1, 20), 480).day // 2
 */
export function localParts(ms: number, offsetMinutes: number = DEFAULT_UTC_OFFSET_MINUTES): LocalParts {
  const d = new Date(ms + offsetMinutes * MINUTE_MS);
  const dow = d.getUTCDay();
  return {
    year: d.getUTCFullYear(),
    month: d.getUTCMonth() + 1,
    day: d.getUTCDate(),
    hour: d.getUTCHours(),
    minute: d.getUTCMinutes(),
    weekday: dow === 0 ? 7 : dow,
  };
}

/** Days since 1970-01-01 (a Thursday) → whether that local day is Monday–Friday. */
function isMonToFri(dayIndex: number): boolean {
  const dow = (((dayIndex + 4) % 7) + 7) % 7; // 0 = Sunday
  return dow !== 0 && dow !== 6;
}

/**
 * Whether the local day of an instant is Monday–Friday; the simple calendar with no holidays.
 * @example isWeekdayMonToFri(Date.UTC(2024, 4, 4, 2)) // false — Saturday in UTC+8
 */
export function isWeekdayMonToFri(ms: number, offsetMinutes: number = DEFAULT_UTC_OFFSET_MINUTES): boolean {
  return isMonToFri(Math.floor((ms + offsetMinutes * MINUTE_MS) / DAY_MS));
}

/**
 * Moves an instant by whole working days (Monday–Friday, no holidays), keeping the time of day:
 * the result is on the n-th working day after (or before, for negative n) the start's local day, so
 * Friday 15:00 + 1 is Monday 15:00 and Saturday 10:00 + 1 is Monday 10:00. Fractional counts round
 * to the nearest whole day. Null when the result is outside the datetime range.
 * @example addWorkdaysMonToFri(Date.parse('2024-05-03T07:00:00Z'), 1) // Monday 2024-05-06T07:00:00Z
 */
export function addWorkdaysMonToFri(ms: number, workdays: number, offsetMinutes: number = DEFAULT_UTC_OFFSET_MINUTES): number | null {
  const n = Math.round(workdays);
  if (!Number.isFinite(n) || !Number.isFinite(ms)) return null;
  if (n === 0) return ms;
  // 10^8 days already leaves the range of Date; bail out before looping.
  if (Math.abs(n) > 1e8) return null;
  const local = ms + offsetMinutes * MINUTE_MS;
  let day = Math.floor(local / DAY_MS);
  const timeOfDay = local - day * DAY_MS;
  const step = n > 0 ? 1 : -1;
  // Any 7 consecutive days hold exactly 5 working days; keep the last five to walk, so a start on a
  // weekend lands on the right day of the final week.
  let weeks = Math.floor(Math.abs(n) / 5);
  let rest = Math.abs(n) % 5;
  if (rest === 0) {
    weeks -= 1;
    rest = 5;
  }
  day += step * weeks * 7;
  while (rest > 0) {
    day += step;
    if (isMonToFri(day)) rest -= 1;
  }
  const result = day * DAY_MS + timeOfDay - offsetMinutes * MINUTE_MS;
  return formatIso(result) === null ? null : result;
}

/**
 * Adds a duration with the simple calendar: working days first (Monday–Friday, no holidays), then clock time.
 * @example addDurationMonToFri('2024-05-03T07:00:00.000Z', { ms: 3_600_000, workdays: 1 }) // '2024-05-06T08:00:00.000Z'
 */
export function addDurationMonToFri(iso: string, d: DurationValue, offsetMinutes: number = DEFAULT_UTC_OFFSET_MINUTES): string | null {
  const start = parseDateTime(iso, offsetMinutes);
  if (start === null) return null;
  const shifted = addWorkdaysMonToFri(start, d.workdays, offsetMinutes);
  return shifted === null ? null : formatIso(shifted + d.ms);
}

// ---------------------------------------------------------------------------------------------
// Durations

/** Short and spelled-out forms accepted in data beyond the DSL's own units. */
const EXTRA_UNITS: Readonly<Record<string, DurationValue>> = {
  s: { ms: 1000, workdays: 0 }, sec: { ms: 1000, workdays: 0 }, secs: { ms: 1000, workdays: 0 },
  second: { ms: 1000, workdays: 0 }, seconds: { ms: 1000, workdays: 0 }, 秒: { ms: 1000, workdays: 0 },
  m: { ms: MINUTE_MS, workdays: 0 }, min: { ms: MINUTE_MS, workdays: 0 }, mins: { ms: MINUTE_MS, workdays: 0 },
  h: { ms: HOUR_MS, workdays: 0 }, hr: { ms: HOUR_MS, workdays: 0 }, hrs: { ms: HOUR_MS, workdays: 0 }, 个小时: { ms: HOUR_MS, workdays: 0 },
  d: { ms: DAY_MS, workdays: 0 }, w: { ms: 7 * DAY_MS, workdays: 0 }, week: { ms: 7 * DAY_MS, workdays: 0 },
  weeks: { ms: 7 * DAY_MS, workdays: 0 }, 周: { ms: 7 * DAY_MS, workdays: 0 },
  wd: { ms: 0, workdays: 1 }, 个工作日: { ms: 0, workdays: 1 },
};

function unitOf(word: string): DurationValue | undefined {
  const w = word.toLowerCase();
  if (Object.hasOwn(DURATION_UNITS, w)) return DURATION_UNITS[w];
  if (Object.hasOwn(EXTRA_UNITS, w)) return EXTRA_UNITS[w];
  return undefined;
}

const ISO_DURATION = /^P(?:(\d+(?:[.,]\d+)?)W)?(?:(\d+(?:[.,]\d+)?)D)?(?:T(?:(\d+(?:[.,]\d+)?)H)?(?:(\d+(?:[.,]\d+)?)M)?(?:(\d+(?:[.,]\d+)?)S)?)?$/i;
const PART = /\s*(\d+(?:\.\d+)?)\s*(\p{L}+)\s*[,，、]?/uy;

/**
 * Reads a written duration: `2 workdays`, `48 hours`, `1 day 2 hours`, `2 工作日`, `3天`, or ISO-8601
 * `PT48H` / `P1DT2H` (years and months are refused: their length depends on the calendar). Null if unreadable.
 * @example parseDuration('2 工作日') // { ms: 0, workdays: 2 }
 */
export function parseDuration(text: string): DurationValue | null {
  const s = text.trim();
  if (s === '') return null;
  const iso = ISO_DURATION.exec(s);
  if (iso !== null) {
    if (s.toUpperCase() === 'P' || s.toUpperCase().endsWith('T')) return null;
    const n = (i: number): number => Number((iso[i] ?? '0').replace(',', '.'));
    const ms = n(1) * 7 * DAY_MS + n(2) * DAY_MS + n(3) * HOUR_MS + n(4) * MINUTE_MS + n(5) * 1000;
    return Number.isFinite(ms) ? { ms, workdays: 0 } : null;
  }
  let pos = 0;
  let ms = 0;
  let workdays = 0;
  while (pos < s.length) {
    PART.lastIndex = pos;
    const m = PART.exec(s);
    if (m === null) return null;
    const unit = unitOf(m[2] ?? '');
    if (unit === undefined) return null;
    const amount = Number(m[1]);
    ms += amount * unit.ms;
    workdays += amount * unit.workdays;
    pos = PART.lastIndex;
  }
  return Number.isFinite(ms) && Number.isFinite(workdays) ? { ms, workdays } : null;
}

/**
 * A duration as policy staff would write it, for messages and `text(…)`: `2 workdays 3 hours`.
 * @example showDuration({ ms: 5_400_000, workdays: 0 }) // '1 hours 30 minutes'
 */
export function showDuration(d: DurationValue): string {
  const parts: string[] = [];
  if (d.workdays !== 0) parts.push(`${d.workdays} workdays`);
  let rest = Math.abs(d.ms);
  const sign = d.ms < 0 ? '-' : '';
  const units: readonly [number, string][] = [[DAY_MS, 'days'], [HOUR_MS, 'hours'], [MINUTE_MS, 'minutes'], [1000, 'seconds'], [1, 'ms']];
  for (const [size, name] of units) {
    const n = Math.floor(rest / size);
    if (n > 0) {
      parts.push(`${sign}${n} ${name}`);
      rest -= n * size;
    }
  }
  return parts.length === 0 ? '0 minutes' : parts.join(' ');
}

/**
 * A duration's length in milliseconds for ordering, counting a working day as 24 hours: exact when
 * both sides use the same unit, an approximation when one mixes working days with clock time.
 * @example approxMs({ ms: 3_600_000, workdays: 1 }) // 90_000_000
 */
export function approxMs(d: DurationValue): number {
  return d.ms + d.workdays * DAY_MS;
}
