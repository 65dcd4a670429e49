/**
 * A Durable Object has one alarm; it keeps a schedule of named deadlines and
 * arms the alarm for the earliest one (pure helpers).
 */
export type Schedule = Record<string, number>;

export function nextWakeMs(schedule: Schedule): number | null {
  let earliest: number | null = null;
  for (const at of Object.values(schedule)) if (earliest === null || at < earliest) earliest = at;
  return earliest;
}

/** Splits a schedule into entries due at `nowMs` and the ones still ahead. */
export function takeDue(schedule: Schedule, nowMs: number): { due: string[]; remaining: Schedule } {
  const due: string[] = [];
  const remaining: Schedule = {};
  for (const [key, at] of Object.entries(schedule)) {
    if (at <= nowMs) due.push(key);
    else remaining[key] = at;
  }
  return { due, remaining };
}
