/**
 * Scheduled runs (roadmap of seed 001): when a schedule is due, which of its
 * due times still run after an outage (`catch_up`), and what a run does when
 * the previous one is still going (`overlap`). Pure: the caller passes the
 * clock. Cron patterns are parsed by croner (a maintained parser, no I/O).
 */
import { Cron } from "croner";

export const OVERLAP_POLICIES = ["skip", "queue", "cancel_previous"] as const;
export type Overlap = (typeof OVERLAP_POLICIES)[number];
export const CATCH_UP_POLICIES = ["none", "last", "all"] as const;
export type CatchUp = (typeof CATCH_UP_POLICIES)[number];

/** A standard 5-field cron pattern in an IANA timezone, or a fixed interval counted from `anchorMs`. */
export type Recurrence = { cron: string; timezone: string } | { everySeconds: number; anchorMs: number };

/** A due time later than this is missed (with `catch_up: none` it does not run). */
export const ON_TIME_TOLERANCE_MS = 60_000;
/** Due times one wake-up considers at most (an interval of seconds after a day's outage is far more). */
export const MAX_DUE_TIMES_PER_WAKE = 100;

const NICKNAMES = new Set(["@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"]);

/** Why a pattern or timezone is refused, or null when it is usable. */
export function recurrenceError(r: Recurrence): string | null {
  if ("everySeconds" in r) return null; // bounds are the contract's
  const pattern = r.cron.trim();
  if (!NICKNAMES.has(pattern.toLowerCase()) && pattern.split(/\s+/).length !== 5) {
    return "cron must have 5 fields (minute hour day-of-month month day-of-week) or be a nickname such as @daily";
  }
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: r.timezone });
  } catch {
    return `unknown timezone '${r.timezone}' (use an IANA name such as Europe/Berlin)`;
  }
  try {
    const next = cronOf(r).nextRun(new Date(0));
    if (!next) return "cron pattern never matches";
  } catch (err) {
    return `invalid cron pattern: ${(err as Error).message.replace(/^CronPattern: /, "")}`;
  }
  return null;
}

const cronOf = (r: { cron: string; timezone: string }) => new Cron(r.cron.trim(), { timezone: r.timezone, paused: true });

/** The first due time strictly after `afterMs`, or null if there is none. */
export const nextDueAfter = (r: Recurrence, afterMs: number): number | null => nextDueFn(r)(afterMs);

/** `nextDueAfter` for one recurrence, its pattern parsed once. */
function nextDueFn(r: Recurrence): (afterMs: number) => number | null {
  if ("everySeconds" in r) {
    const stepMs = r.everySeconds * 1000;
    return (afterMs) => (afterMs < r.anchorMs ? r.anchorMs : r.anchorMs + (Math.floor((afterMs - r.anchorMs) / stepMs) + 1) * stepMs);
  }
  const cron = cronOf(r);
  // croner works in whole seconds and answers strictly after the date it is given.
  return (afterMs) => cron.nextRun(new Date(afterMs))?.getTime() ?? null;
}

/**
 * The due times in (`afterMs`, `untilMs`], oldest first. When there are more
 * than `limit`, the newest `limit` (the older ones are reported as `dropped`).
 */
export function dueTimesBetween(r: Recurrence, afterMs: number, untilMs: number, limit = MAX_DUE_TIMES_PER_WAKE) {
  const due: number[] = [];
  let dropped = 0;
  let cursor = afterMs;
  const nextAfter = nextDueFn(r);
  if ("everySeconds" in r && untilMs > afterMs) {
    // Skip straight to the last `limit` of a long interval run instead of walking every one.
    const stepMs = r.everySeconds * 1000;
    const first = nextAfter(afterMs)!;
    const count = first > untilMs ? 0 : Math.floor((untilMs - first) / stepMs) + 1;
    if (count > limit) {
      dropped = count - limit;
      cursor = first + (dropped - 1) * stepMs;
    }
  }
  for (let i = 0; i < 10_000; i++) {
    const next = nextAfter(cursor);
    if (next === null || next > untilMs) break;
    due.push(next);
    if (due.length > limit) {
      due.shift();
      dropped++;
    }
    cursor = next;
  }
  return { due, dropped };
}

/**
 * Which of the due times that passed run now. The newest runs if it is on
 * time; the others (and a late newest) were missed while nothing ran:
 * `none` runs none of them, `last` the newest, `all` every one (oldest first).
 */
export function runsToFire(due: number[], nowMs: number, catchUp: CatchUp): { fire: number[]; missed: number[] } {
  if (due.length === 0) return { fire: [], missed: [] };
  const newest = due[due.length - 1]!;
  const onTime = nowMs - newest <= ON_TIME_TOLERANCE_MS;
  if (catchUp === "all") return { fire: due, missed: [] };
  if (catchUp === "last" || onTime) return { fire: [newest], missed: due.slice(0, -1) };
  return { fire: [], missed: due };
}

export type OverlapDecision = "run" | "skip" | "queue" | "cancel_previous";

/** What a run does when earlier runs of its schedule have not finished. */
export function overlapDecision(overlap: Overlap, previousActive: boolean): OverlapDecision {
  if (!previousActive) return "run";
  return overlap;
}
