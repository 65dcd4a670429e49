import { describe, expect, it } from "vitest";
import {
  dueTimesBetween,
  MAX_DUE_TIMES_PER_WAKE,
  nextDueAfter,
  ON_TIME_TOLERANCE_MS,
  overlapDecision,
  recurrenceError,
  runsToFire,
} from "../../src/core/recurrence";

const at = (iso: string) => Date.parse(iso);
const isoOf = (ms: number[]) => ms.map((m) => new Date(m).toISOString());

describe("cron recurrence", () => {
  it("reads a 5-field pattern in its timezone (daylight saving included)", () => {
    const weekdays9 = { cron: "0 9 * * 1-5", timezone: "Europe/Berlin" };
    // Tuesday 2026-12-01 12:00 UTC is past 09:00 Berlin (08:00 UTC in winter): next is Wednesday.
    expect(new Date(nextDueAfter(weekdays9, at("2026-12-01T12:00:00Z"))!).toISOString()).toBe("2026-12-02T08:00:00.000Z");
    // Friday evening → Monday.
    expect(new Date(nextDueAfter(weekdays9, at("2026-12-04T18:00:00Z"))!).toISOString()).toBe("2026-12-07T08:00:00.000Z");
    // In summer Berlin is UTC+2.
    expect(new Date(nextDueAfter(weekdays9, at("2026-07-01T00:00:00Z"))!).toISOString()).toBe("2026-07-01T07:00:00.000Z");
  });

  it("answers strictly after the time given", () => {
    const everyFive = { cron: "*/5 * * * *", timezone: "UTC" };
    expect(nextDueAfter(everyFive, at("2026-12-01T10:05:00Z"))).toBe(at("2026-12-01T10:10:00Z"));
    expect(nextDueAfter(everyFive, at("2026-12-01T10:04:59.999Z"))).toBe(at("2026-12-01T10:05:00Z"));
  });

  it("refuses what is not a standard pattern or timezone, with a reason", () => {
    expect(recurrenceError({ cron: "*/5 * * * *", timezone: "UTC" })).toBeNull();
    expect(recurrenceError({ cron: "@daily", timezone: "America/New_York" })).toBeNull();
    expect(recurrenceError({ cron: "61 * * * *", timezone: "UTC" })).toMatch(/minute/);
    expect(recurrenceError({ cron: "0 * * * * *", timezone: "UTC" })).toMatch(/5 fields/); // seconds field
    expect(recurrenceError({ cron: "* * *", timezone: "UTC" })).toMatch(/5 fields/);
    expect(recurrenceError({ cron: "* * * * *", timezone: "Mars/Olympus" })).toMatch(/timezone/);
    expect(recurrenceError({ cron: "0 0 31 2 *", timezone: "UTC" })).toMatch(/never/); // 31 February
  });
});

describe("interval recurrence", () => {
  const every10 = { everySeconds: 10, anchorMs: 1_000_000 };
  it("counts from its anchor", () => {
    expect(nextDueAfter(every10, 0)).toBe(1_000_000);
    expect(nextDueAfter(every10, 1_000_000)).toBe(1_010_000);
    expect(nextDueAfter(every10, 1_015_000)).toBe(1_020_000);
  });

  it("lists the due times in (after, until], and only the newest ones after a long outage", () => {
    expect(dueTimesBetween(every10, 1_000_000, 1_030_000)).toEqual({ due: [1_010_000, 1_020_000, 1_030_000], dropped: 0 });
    const day = dueTimesBetween(every10, 1_000_000, 1_000_000 + 86_400_000);
    expect(day.due).toHaveLength(MAX_DUE_TIMES_PER_WAKE);
    expect(day.dropped).toBe(8640 - MAX_DUE_TIMES_PER_WAKE);
    expect(day.due.at(-1)).toBe(1_000_000 + 86_400_000);
    expect(day.due[1]! - day.due[0]!).toBe(10_000);
  });

  it("cron due times are walked the same way (oldest first, newest kept)", () => {
    const hourly = { cron: "0 * * * *", timezone: "UTC" };
    expect(isoOf(dueTimesBetween(hourly, at("2026-12-01T09:30:00Z"), at("2026-12-01T12:00:00Z")).due)).toEqual([
      "2026-12-01T10:00:00.000Z",
      "2026-12-01T11:00:00.000Z",
      "2026-12-01T12:00:00.000Z",
    ]);
    const minutely = dueTimesBetween({ cron: "* * * * *", timezone: "UTC" }, 0, 3 * 3600_000, 50);
    expect(minutely).toMatchObject({ dropped: 130 });
    expect(minutely.due.at(-1)).toBe(3 * 3600_000);
  });
});

describe("catch_up", () => {
  const due = [1000, 2000, 3000];
  it("runs the newest on time whatever the policy", () => {
    expect(runsToFire([3000], 3000 + ON_TIME_TOLERANCE_MS, "none")).toEqual({ fire: [3000], missed: [] });
    expect(runsToFire([3000], 3500, "last")).toEqual({ fire: [3000], missed: [] });
  });
  it("none: missed times and a late newest do not run", () => {
    expect(runsToFire(due, 3500, "none")).toEqual({ fire: [3000], missed: [1000, 2000] });
    expect(runsToFire(due, 3000 + ON_TIME_TOLERANCE_MS + 1, "none")).toEqual({ fire: [], missed: due });
  });
  it("last: the newest runs, late or not", () => {
    expect(runsToFire(due, 3000 + 3_600_000, "last")).toEqual({ fire: [3000], missed: [1000, 2000] });
  });
  it("all: every one, oldest first", () => {
    expect(runsToFire(due, 3000 + 3_600_000, "all")).toEqual({ fire: due, missed: [] });
  });
  it("nothing due, nothing to do", () => {
    expect(runsToFire([], 5000, "all")).toEqual({ fire: [], missed: [] });
  });
});

describe("overlap", () => {
  it("only matters while an earlier run is going", () => {
    for (const policy of ["skip", "queue", "cancel_previous"] as const) {
      expect(overlapDecision(policy, false)).toBe("run");
      expect(overlapDecision(policy, true)).toBe(policy);
    }
  });
});
