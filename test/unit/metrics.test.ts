import { describe, expect, it } from "vitest";
import { DURATION_BUCKETS_S, emptyHistogram, histogramSeries, labelText, observeInto, renderPrometheus } from "../../src/core/metrics";

const observed = (...seconds: number[]) => {
  const h = emptyHistogram();
  for (const s of seconds) observeInto(h, s);
  return h;
};

describe("metrics (core)", () => {
  it("an observation adds 1 to every bucket at or above it, +Inf, the count, and its value to the sum", () => {
    const series = histogramSeries("clawbot_task_run_seconds", { capability: "echo" }, observed(0.3));
    const buckets = series.filter((s) => s.name.endsWith("_bucket")).map((s) => s.labels.le);
    expect(buckets).toEqual([...DURATION_BUCKETS_S.filter((b) => b >= 0.3).map(String), "+Inf"]);
    expect(series.find((s) => s.name.endsWith("_sum"))).toEqual({
      name: "clawbot_task_run_seconds_sum",
      labels: { capability: "echo" },
      value: 0.3,
    });
    expect(series.find((s) => s.name.endsWith("_count"))?.value).toBe(1);
    // Past the largest bound: +Inf only.
    expect(
      histogramSeries("clawbot_task_run_seconds", {}, observed(7200))
        .filter((s) => s.name.endsWith("_bucket"))
        .map((s) => s.labels.le),
    ).toEqual(["+Inf"]);
  });

  it("observations kept together give what they would one by one: cumulative buckets, the sum, the count", () => {
    const together = histogramSeries("clawbot_task_run_seconds", {}, observed(0.003, 0.3, 0.3, 7200));
    const byLe = Object.fromEntries(together.filter((s) => s.name.endsWith("_bucket")).map((s) => [s.labels.le, s.value]));
    expect(byLe["0.005"]).toBe(1);
    expect(byLe["0.25"]).toBe(1);
    expect(byLe["0.5"]).toBe(3);
    expect(byLe["3600"]).toBe(3);
    expect(byLe["+Inf"]).toBe(4);
    expect(Object.keys(byLe)).toHaveLength(DURATION_BUCKETS_S.length + 1);
    expect(together.find((s) => s.name.endsWith("_sum"))?.value).toBeCloseTo(7200.603);
    expect(together.find((s) => s.name.endsWith("_count"))?.value).toBe(4);
  });

  it("renders the text format: HELP and TYPE for every family, escaped labels, a histogram's buckets in order", () => {
    const text = renderPrometheus([
      { name: "clawbot_tasks_created_total", labels: { capability: 'we"ird\\cap\n' }, value: 3 },
      { name: "clawbot_task_run_seconds_bucket", labels: { capability: "a", le: "+Inf" }, value: 2 },
      { name: "clawbot_task_run_seconds_bucket", labels: { capability: "a", le: "10" }, value: 2 },
      { name: "clawbot_task_run_seconds_bucket", labels: { capability: "a", le: "0.5" }, value: 1 },
      { name: "clawbot_task_run_seconds_count", labels: { capability: "a" }, value: 2 },
      { name: "clawbot_task_run_seconds_sum", labels: { capability: "a" }, value: 5.1234567 },
      { name: "not_ours", labels: {}, value: 1 },
    ]);
    expect(text).toContain(
      "# HELP clawbot_tasks_created_total Tasks created, by capability.\n# TYPE clawbot_tasks_created_total counter\n",
    );
    expect(text).toContain('clawbot_tasks_created_total{capability="we\\"ird\\\\cap\\n"} 3\n');
    expect(text).toContain(
      [
        "# TYPE clawbot_task_run_seconds histogram",
        'clawbot_task_run_seconds_bucket{capability="a",le="0.5"} 1',
        'clawbot_task_run_seconds_bucket{capability="a",le="10"} 2',
        'clawbot_task_run_seconds_bucket{capability="a",le="+Inf"} 2',
        'clawbot_task_run_seconds_sum{capability="a"} 5.123457',
        'clawbot_task_run_seconds_count{capability="a"} 2',
      ].join("\n"),
    );
    expect(text).toContain("# TYPE clawbot_queue_depth gauge\n");
    expect(text).not.toContain("not_ours");
    expect(text.endsWith("\n")).toBe(true);
    expect(labelText({ b: "2", a: "1" })).toBe('a="1",b="2"');
  });
});
