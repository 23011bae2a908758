/**
 * Every diagnostic code the language tools can report, with its default severity and a title.
 * This module imports nothing; `tests/dsl/codes.test.ts` keeps it in step with the fixtures in
 * `tests/dsl/fixtures/codes/` (one bad input per code) and with docs/diagnostics.md.
 * Codes are never reused: retire a code by marking it `retired`, never by giving it a new meaning.
 */
export const CODES = {
  // WF01xx: syntax
  WF0101: { severity: 'error', title: 'Unexpected token' },
  WF0102: { severity: 'error', title: 'Missing token' },
  WF0103: { severity: 'error', title: 'Unexpected character' },
  WF0104: { severity: 'error', title: 'Unterminated string' },
  WF0105: { severity: 'error', title: 'Expected one of several forms' },
  WF0106: { severity: 'error', title: 'Unexpected end of file' },
  WF0107: { severity: 'error', title: 'Invalid number' },

  // WF02xx: names and references
  WF0201: { severity: 'error', title: 'Unknown state' },
  WF0202: { severity: 'error', title: 'Duplicate state' },
  WF0203: { severity: 'error', title: 'Unknown role' },
  WF0204: { severity: 'error', title: 'Duplicate role' },
  WF0205: { severity: 'error', title: 'Unknown case field' },
  WF0206: { severity: 'error', title: 'Duplicate field' },
  WF0207: { severity: 'error', title: 'Unknown type' },
  WF0208: { severity: 'error', title: 'Duplicate type' },
  WF0209: { severity: 'error', title: 'Unknown name' },
  WF0210: { severity: 'error', title: 'Unknown rule table or function' },
  WF0211: { severity: 'error', title: 'Duplicate rule table' },
  WF0212: { severity: 'error', title: 'Missing workflow header' },
  WF0213: { severity: 'error', title: 'Declared more than once' },
  WF0214: { severity: 'error', title: 'Imported file not found' },
  WF0215: { severity: 'error', title: 'Imported name not found' },
  WF0216: { severity: 'error', title: 'Duplicate event in a state' },
  WF0217: { severity: 'error', title: 'Unknown enum member' },
  WF0218: { severity: 'error', title: 'Missing start' },
  WF0219: { severity: 'error', title: 'Name shadows a built-in' },
  WF0220: { severity: 'error', title: 'Import cycle' },

  // WF03xx: types and expressions
  WF0301: { severity: 'error', title: 'Operand type mismatch' },
  WF0302: { severity: 'error', title: 'Condition is not a boolean' },
  WF0303: { severity: 'error', title: 'Value does not fit the field' },
  WF0304: { severity: 'error', title: 'Cannot set this' },
  WF0305: { severity: 'error', title: 'Wrong number of arguments' },
  WF0306: { severity: 'error', title: 'Argument type mismatch' },
  WF0307: { severity: 'error', title: 'Invalid pattern' },
  WF0308: { severity: 'error', title: 'Constraint does not apply to this type' },
  WF0309: { severity: 'error', title: 'Unknown duration unit' },
  WF0310: { severity: 'error', title: 'Duration expected' },
  WF0311: { severity: 'error', title: 'Org unit expected' },
  WF0312: { severity: 'error', title: 'Actor expected' },
  WF0313: { severity: 'error', title: 'No such property' },
  WF0314: { severity: 'warning', title: 'Division by zero' },
  WF0315: { severity: 'error', title: 'Default does not fit the field' },
  WF0316: { severity: 'error', title: 'Number expected' },
  WF0317: { severity: 'error', title: 'List expected' },
  WF0318: { severity: 'error', title: 'Duplicate enum member' },

  // WF04xx: flow
  WF0401: { severity: 'error', title: 'Unreachable state' },
  WF0402: { severity: 'error', title: 'Trap state' },
  WF0403: { severity: 'error', title: 'No way to finish' },
  WF0404: { severity: 'error', title: 'No final state' },
  WF0405: { severity: 'error', title: 'Final state with transitions' },
  WF0406: { severity: 'error', title: 'Unconditional target is not last' },
  WF0407: { severity: 'error', title: 'Conditional targets without otherwise' },
  WF0408: { severity: 'warning', title: 'Waiting with no deadline' },
  WF0409: { severity: 'error', title: 'Misplaced otherwise' },
  WF0410: { severity: 'error', title: 'Start state is final' },
  WF0411: { severity: 'error', title: 'Nobody may send this event' },

  // WF05xx: decision tables
  WF0501: { severity: 'error', title: 'Overlapping rows' },
  WF0502: { severity: 'error', title: 'Gap in rule table' },
  WF0503: { severity: 'error', title: 'Wrong number of cells' },
  WF0504: { severity: 'error', title: 'Cell type mismatch' },
  WF0505: { severity: 'error', title: 'Misplaced default row' },
  WF0506: { severity: 'warning', title: 'Row can never match' },
  WF0507: { severity: 'error', title: 'Rule table has no rows' },
  WF0508: { severity: 'warning', title: 'Rule table too large to prove complete' },

  // WF06xx: timers and multi-instance steps
  WF0601: { severity: 'error', title: 'Reminder percentage out of range' },
  WF0602: { severity: 'error', title: 'Nothing to extend' },
  WF0603: { severity: 'error', title: 'Join count is not positive' },
  WF0604: { severity: 'warning', title: 'Multi-instance step with no deadline' },
  WF0605: { severity: 'error', title: 'Timeout without a deadline' },

  // WF07xx: scenarios (`wf test`)
  WF0701: { severity: 'error', title: 'Scenario step failed' },
  WF0702: { severity: 'error', title: 'Scenario file is malformed' },

  // WF09xx: internal
  WF0901: { severity: 'error', title: 'Internal error' },
} as const satisfies Record<string, { severity: 'error' | 'warning'; title: string }>;

export type Code = keyof typeof CODES;
