/**
 * A pure working-day (工作日) calendar: weekends and public holidays are rest days, make-up
 * workdays (调休) are working days even though they fall on a weekend.
 *
 * Local dates and times are computed in an IANA time zone through `Intl`, never with a fixed
 * offset, so the same code serves zones with daylight-saving time. Where a local time of day
 * does not exist (a spring-forward gap) or exists twice (a fall-back overlap), it is resolved as
 * Temporal's `disambiguation: 'compatible'` does: a skipped time moves forward by the length of
 * the gap, a repeated time takes the earlier instant.
 *
 * @module
 */

/** Why a calendar refused its configuration or an argument; codes are stable and never reused. */
export type CalendarErrorCode =
  | 'CALENDAR_INVALID_DATE'
  | 'CALENDAR_INVALID_TIME_ZONE'
  | 'CALENDAR_DATE_CONFLICT'
  | 'CALENDAR_WORKDAY_NOT_WEEKEND'
  | 'CALENDAR_INVALID_TIME'
  | 'CALENDAR_INVALID_DURATION';

/**
 * The error every calendar function throws for bad input.
 *
 * @example
 * ```ts
 * try {
 *   createCalendar({ holidays: ['2026-02-30'] });
 * } catch (error) {
 *   if (error instanceof CalendarError) console.log(error.code); // 'CALENDAR_INVALID_DATE'
 * }
 * ```
 */
export class CalendarError extends Error {
  override readonly name = 'CalendarError';
  readonly code: CalendarErrorCode;

  constructor(code: CalendarErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

/** The units a duration in a workflow can be written in. */
export type DurationUnit = 'minutes' | 'hours' | 'days' | 'workdays';

/**
 * A span of time to add to an instant.
 *
 * @example
 * ```ts
 * const reply: Duration = { amount: 2, unit: 'workdays' };
 * ```
 */
export interface Duration {
  readonly amount: number;
  readonly unit: DurationUnit;
}

/**
 * Configuration of a working-day calendar.
 *
 * @example
 * ```ts
 * const options: CalendarOptions = {
 *   timeZone: 'Asia/Shanghai',
 *   holidays: ['2026-10-01', '2026-10-02'],
 *   workdays: ['2026-09-20'],
 * };
 * ```
 */
export interface CalendarOptions {
  /** IANA time zone in which dates are local; defaults to `'Asia/Shanghai'`. */
  readonly timeZone?: string;
  /** Public holidays as `'YYYY-MM-DD'`; a holiday on a weekend is allowed and changes nothing. */
  readonly holidays?: readonly string[];
  /** Make-up workdays (调休) as `'YYYY-MM-DD'`; each must fall on a Saturday or Sunday. */
  readonly workdays?: readonly string[];
}

/**
 * A working-day calendar in one time zone. All instants are epoch milliseconds.
 *
 * @example
 * ```ts
 * const calendar = createCalendar({ holidays: ['2026-10-01'] });
 * calendar.isWorkday(Date.parse('2026-10-01T10:00:00+08:00')); // false
 * ```
 */
export interface Calendar {
  readonly timeZone: string;
  /** Whether the local date of `epochMs` is a working day. */
  isWorkday(epochMs: number): boolean;
  /**
   * The instant `n` working days after `fromEpochMs`, at the same local time of day.
   *
   * Rule: counting starts on the local date of `fromEpochMs` if that is a working day, otherwise
   * on the next working day at the same local time (so `n = 0` from a Saturday gives Monday at
   * that time). Each of the `n` steps then moves to the next working day. `n` is a non-negative
   * integer.
   */
  addWorkdays(fromEpochMs: number, n: number): number;
  /**
   * `minutes` and `hours` are elapsed time; `days` are calendar days keeping the local time of
   * day (23 or 25 hours across a daylight-saving change); `workdays` follow {@link addWorkdays}.
   */
  addDuration(fromEpochMs: number, duration: Duration): number;
  /** The local date of `epochMs` as `'YYYY-MM-DD'`. */
  localDate(epochMs: number): string;
}

const MS_PER_DAY = 86_400_000;
const MS_PER_MINUTE = 60_000;
const MS_PER_HOUR = 3_600_000;
/** The range of `Date`, so that every instant accepted can be formatted by `Intl`. */
const MAX_EPOCH_MS = 8.64e15;
const SUNDAY = 0;
const SATURDAY = 6;
const ISO_DATE = /^(\d{4})-(\d{2})-(\d{2})$/;

/**
 * Builds a working-day calendar. Validates every date and the time zone up front, so a bad
 * holiday list fails at configuration time rather than when a deadline is computed.
 *
 * @throws {CalendarError} `CALENDAR_INVALID_DATE`, `CALENDAR_INVALID_TIME_ZONE`,
 *   `CALENDAR_DATE_CONFLICT` (a date both a holiday and a workday),
 *   `CALENDAR_WORKDAY_NOT_WEEKEND`.
 *
 * @example
 * ```ts
 * const calendar = createCalendar({
 *   holidays: ['2026-10-01', '2026-10-02', '2026-10-03', '2026-10-04', '2026-10-05', '2026-10-06', '2026-10-07'],
 *   workdays: ['2026-09-20', '2026-10-10'],
 * });
 * // Friday 2026-09-30 10:00 + 1 working day → Thursday 2026-10-08 10:00
 * calendar.addWorkdays(Date.parse('2026-09-30T10:00:00+08:00'), 1);
 * ```
 */
export function createCalendar(options: CalendarOptions = {}): Calendar {
  const formatter = createFormatter(options.timeZone ?? 'Asia/Shanghai');
  // The zone's canonical spelling ('asia/shanghai' → 'Asia/Shanghai'), fit for recording in facts.
  const { timeZone } = formatter.resolvedOptions();
  const holidays = new Set((options.holidays ?? []).map((date) => parseIsoDate(date, 'holiday')));
  const workdays = new Set<number>();
  for (const date of options.workdays ?? []) {
    const day = parseIsoDate(date, 'workday');
    if (holidays.has(day)) {
      throw new CalendarError('CALENDAR_DATE_CONFLICT', `${date} is listed both as a holiday and as a make-up workday.`);
    }
    if (!isWeekend(day)) {
      throw new CalendarError(
        'CALENDAR_WORKDAY_NOT_WEEKEND',
        `Make-up workday ${date} is not a Saturday or Sunday; it is a working day already. Remove it or check the date.`,
      );
    }
    workdays.add(day);
  }

  const isWorkingDay = (day: number): boolean =>
    workdays.has(day) || (!isWeekend(day) && !holidays.has(day));

  // Terminates because only the finitely many listed holidays can extend a weekend.
  const nextWorkingDay = (day: number): number => {
    let next = day + 1;
    while (!isWorkingDay(next)) next += 1;
    return next;
  };

  const wallClock = (epochMs: number): WallClock => wallClockAt(formatter, epochMs);
  const toInstant = (day: number, msOfDay: number): number => instantOf(formatter, day, msOfDay);

  const addWorkdays = (fromEpochMs: number, n: number): number => {
    checkInstant(fromEpochMs);
    if (!Number.isSafeInteger(n) || n < 0) {
      throw new CalendarError('CALENDAR_INVALID_DURATION', `Working days must be a whole number ≥ 0, got ${n}.`);
    }
    const start = wallClock(fromEpochMs);
    let day = isWorkingDay(start.day) ? start.day : nextWorkingDay(start.day);
    for (let i = 0; i < n; i += 1) day = nextWorkingDay(day);
    // Returning the input itself keeps a repeated (fall-back) local time on the instant given.
    return day === start.day ? fromEpochMs : toInstant(day, start.msOfDay);
  };

  return Object.freeze({
    timeZone,
    isWorkday(epochMs: number): boolean {
      checkInstant(epochMs);
      return isWorkingDay(wallClock(epochMs).day);
    },
    addWorkdays,
    addDuration(fromEpochMs: number, duration: Duration): number {
      checkInstant(fromEpochMs);
      const { amount, unit } = duration;
      if (!Number.isFinite(amount) || amount < 0) {
        throw new CalendarError('CALENDAR_INVALID_DURATION', `A duration must be a finite number ≥ 0, got ${amount}.`);
      }
      switch (unit) {
        case 'minutes':
          return fromEpochMs + Math.round(amount * MS_PER_MINUTE);
        case 'hours':
          return fromEpochMs + Math.round(amount * MS_PER_HOUR);
        case 'days': {
          if (!Number.isSafeInteger(amount)) {
            throw new CalendarError('CALENDAR_INVALID_DURATION', `Days must be a whole number, got ${amount}.`);
          }
          if (amount === 0) return fromEpochMs;
          const start = wallClock(fromEpochMs);
          return toInstant(start.day + amount, start.msOfDay);
        }
        case 'workdays':
          return addWorkdays(fromEpochMs, amount);
        default:
          return unknownUnit(unit);
      }
    },
    localDate(epochMs: number): string {
      checkInstant(epochMs);
      return formatIsoDate(wallClock(epochMs).day);
    },
  });
}

function unknownUnit(unit: never): never {
  throw new CalendarError('CALENDAR_INVALID_DURATION', `Unknown duration unit ${String(unit)}; use minutes, hours, days or workdays.`);
}

/** A local date as days since 1970-01-01 and the local time as milliseconds into that day. */
interface WallClock {
  readonly day: number;
  readonly msOfDay: number;
}

function createFormatter(timeZone: string): Intl.DateTimeFormat {
  try {
    // The Gregorian calendar and Latin digits are pinned so that parsing the parts never depends
    // on the host's default locale.
    return new Intl.DateTimeFormat('en-US-u-ca-gregory-nu-latn', {
      timeZone,
      hourCycle: 'h23',
      era: 'short',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
  } catch {
    throw new CalendarError('CALENDAR_INVALID_TIME_ZONE', `Unknown time zone ${JSON.stringify(timeZone)}; use an IANA name such as "Asia/Shanghai".`);
  }
}

function checkInstant(epochMs: number): void {
  if (!Number.isFinite(epochMs) || Math.abs(epochMs) > MAX_EPOCH_MS) {
    throw new CalendarError('CALENDAR_INVALID_TIME', `Expected epoch milliseconds, got ${epochMs}.`);
  }
}

/**
 * Offsets by quarter hour, per formatter: asking Intl costs microseconds, and a deadline computation
 * asks several times. Every zone changes its offset on a quarter hour, so an offset found anywhere
 * in a quarter hour holds for all of it.
 */
const offsetCache = new WeakMap<Intl.DateTimeFormat, Map<number, number>>();
const QUARTER_HOUR = 15 * MS_PER_MINUTE;

function wallClockAt(formatter: Intl.DateTimeFormat, epochMs: number): WallClock {
  let cache = offsetCache.get(formatter);
  if (cache === undefined) {
    cache = new Map();
    offsetCache.set(formatter, cache);
  }
  const bucket = Math.floor(epochMs / QUARTER_HOUR);
  let offset = cache.get(bucket);
  if (offset === undefined) {
    const w = wallClockUncached(formatter, epochMs);
    offset = w.day * MS_PER_DAY + w.msOfDay - epochMs;
    if (cache.size > 50_000) cache.clear();
    cache.set(bucket, offset);
  }
  const local = epochMs + offset;
  const day = Math.floor(local / MS_PER_DAY);
  return { day, msOfDay: local - day * MS_PER_DAY };
}

function wallClockUncached(formatter: Intl.DateTimeFormat, epochMs: number): WallClock {
  const fields: Record<string, number> = {};
  let bc = false;
  for (const part of formatter.formatToParts(epochMs)) {
    if (part.type === 'era') bc = part.value === 'BC';
    else if (part.type !== 'literal') fields[part.type] = Number(part.value);
  }
  const year = bc ? 1 - (fields.year ?? 0) : (fields.year ?? 0);
  const day = daysFromCivil(year, fields.month ?? 0, fields.day ?? 0);
  const ms = ((epochMs % 1000) + 1000) % 1000;
  const msOfDay = (fields.hour ?? 0) * MS_PER_HOUR + (fields.minute ?? 0) * MS_PER_MINUTE + (fields.second ?? 0) * 1000 + ms;
  return { day, msOfDay };
}

/** The zone's offset from UTC at an instant, in milliseconds (positive east of Greenwich). */
function offsetAt(formatter: Intl.DateTimeFormat, epochMs: number): number {
  const { day, msOfDay } = wallClockAt(formatter, epochMs);
  return day * MS_PER_DAY + msOfDay - epochMs;
}

function instantOf(formatter: Intl.DateTimeFormat, day: number, msOfDay: number): number {
  const local = day * MS_PER_DAY + msOfDay;
  // A day either side brackets any transition near this wall time; zones never change offset twice
  // within two days.
  const offsetBefore = offsetAt(formatter, local - MS_PER_DAY);
  const offsetAfter = offsetAt(formatter, local + MS_PER_DAY);
  const candidates = [local - offsetBefore, local - offsetAfter]
    .filter((instant) => offsetAt(formatter, instant) === local - instant)
    .sort((a, b) => a - b);
  // No candidate means the wall time fell in a gap: the pre-transition offset moves it forward.
  return candidates[0] ?? local - offsetBefore;
}

function isWeekend(day: number): boolean {
  const weekday = weekdayOf(day);
  return weekday === SATURDAY || weekday === SUNDAY;
}

/** 0 = Sunday … 6 = Saturday; 1970-01-01 was a Thursday. */
function weekdayOf(day: number): number {
  return (((day + 4) % 7) + 7) % 7;
}

function parseIsoDate(text: string, what: string): number {
  const match = typeof text === 'string' ? ISO_DATE.exec(text) : null;
  if (match) {
    const year = Number(match[1]);
    const month = Number(match[2]);
    const day = Number(match[3]);
    if (month >= 1 && month <= 12 && day >= 1 && day <= daysInMonth(year, month)) {
      return daysFromCivil(year, month, day);
    }
  }
  throw new CalendarError('CALENDAR_INVALID_DATE', `Invalid ${what} date ${JSON.stringify(text)}; write it as YYYY-MM-DD, e.g. "2026-10-01".`);
}

function daysInMonth(year: number, month: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return [4, 6, 9, 11].includes(month) ? 30 : 31;
}

function formatIsoDate(day: number): string {
  const { year, month, dayOfMonth } = civilFromDays(day);
  const pad = (value: number, width: number): string => String(value).padStart(width, '0');
  return `${year < 0 ? '-' : ''}${pad(Math.abs(year), 4)}-${pad(month, 2)}-${pad(dayOfMonth, 2)}`;
}

// Proleptic Gregorian day numbers without `Date`, whose two-digit-year rules would misread
// years 0–99. Algorithms from Howard Hinnant, "chrono-Compatible Low-Level Date Algorithms".
function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yearOfEra = y - era * 400;
  const dayOfYear = Math.floor((153 * (month + (month > 2 ? -3 : 9)) + 2) / 5) + day - 1;
  const dayOfEra = yearOfEra * 365 + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100) + dayOfYear;
  return era * 146_097 + dayOfEra - 719_468;
}

function civilFromDays(days: number): { year: number; month: number; dayOfMonth: number } {
  const z = days + 719_468;
  const era = Math.floor(z / 146_097);
  const dayOfEra = z - era * 146_097;
  const yearOfEra = Math.floor((dayOfEra - Math.floor(dayOfEra / 1460) + Math.floor(dayOfEra / 36_524) - Math.floor(dayOfEra / 146_096)) / 365);
  const dayOfYear = dayOfEra - (365 * yearOfEra + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100));
  const mp = Math.floor((5 * dayOfYear + 2) / 153);
  const dayOfMonth = dayOfYear - Math.floor((153 * mp + 2) / 5) + 1;
  const month = mp < 10 ? mp + 3 : mp - 9;
  return { year: yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, dayOfMonth };
}
