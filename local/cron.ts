/**
 * NCRONTAB (six fields: second minute hour day month day-of-week), as the Functions host reads
 * timer schedules. Supports `*`, numbers, lists, ranges and steps.
 */
const LIMITS: ReadonlyArray<[number, number]> = [
  [0, 59],
  [0, 59],
  [0, 23],
  [1, 31],
  [1, 12],
  [0, 6],
];

function parseField(field: string, [min, max]: [number, number]): Set<number> {
  const values = new Set<number>();
  for (const part of field.split(",")) {
    const [range = "", stepText] = part.split("/");
    const step = stepText === undefined ? 1 : Number(stepText);
    if (!Number.isInteger(step) || step < 1) throw new Error(`bad step in "${field}"`);
    let lo: number;
    let hi: number;
    if (range === "*") {
      lo = min;
      hi = max;
    } else if (range.includes("-")) {
      const [a, b] = range.split("-").map(Number);
      lo = a ?? NaN;
      hi = b ?? NaN;
    } else {
      lo = Number(range);
      hi = stepText === undefined ? lo : max;
    }
    if (!Number.isInteger(lo) || !Number.isInteger(hi) || lo < min || hi > max || lo > hi) {
      throw new Error(`bad value in "${field}"`);
    }
    for (let v = lo; v <= hi; v += step) values.add(v);
  }
  return values;
}

export interface Schedule {
  next(after: Date): Date;
}

export function parseSchedule(expression: string): Schedule {
  const fields = expression.trim().split(/\s+/);
  if (fields.length !== 6) throw new Error(`"${expression}" must have six fields`);
  const sets = fields.map((f, i) => parseField(f, LIMITS[i] ?? [0, 0]));
  const [sec, min, hour, day, month, dow] = sets as [
    Set<number>,
    Set<number>,
    Set<number>,
    Set<number>,
    Set<number>,
    Set<number>,
  ];
  return {
    next(after: Date): Date {
      const t = new Date(after.getTime());
      t.setUTCMilliseconds(0);
      t.setUTCSeconds(t.getUTCSeconds() + 1);
      // Bounded scan: one year of minutes at most.
      for (let guard = 0; guard < 366 * 24 * 60 * 60; guard++) {
        if (
          !month.has(t.getUTCMonth() + 1) ||
          !day.has(t.getUTCDate()) ||
          !dow.has(t.getUTCDay())
        ) {
          t.setUTCHours(0, 0, 0, 0);
          t.setUTCDate(t.getUTCDate() + 1);
          continue;
        }
        if (!hour.has(t.getUTCHours())) {
          t.setUTCMinutes(0, 0, 0);
          t.setUTCHours(t.getUTCHours() + 1);
          continue;
        }
        if (!min.has(t.getUTCMinutes())) {
          t.setUTCSeconds(0, 0);
          t.setUTCMinutes(t.getUTCMinutes() + 1);
          continue;
        }
        if (!sec.has(t.getUTCSeconds())) {
          t.setUTCSeconds(t.getUTCSeconds() + 1);
          continue;
        }
        return t;
      }
      throw new Error(`"${expression}" never fires`);
    },
  };
}
