/**
 * Prometheus metrics without I/O: what is counted (names, help, types, histogram buckets), how a sample's
 * series is keyed, and the text exposition format (version 0.0.4) of what the store holds plus the
 * gauges read at scrape time.
 */

export type MetricType = "counter" | "histogram" | "gauge";

export interface MetricSpec {
  type: MetricType;
  help: string;
}

/** Seconds; the bucket bounds of every histogram here (tasks run from milliseconds to the hour). */
export const DURATION_BUCKETS_S = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600];

export const METRICS = {
  clawbot_tasks_created_total: { type: "counter", help: "Tasks created, by capability." },
  clawbot_tasks_completed_total: { type: "counter", help: "Tasks completed, by capability." },
  clawbot_tasks_failed_total: { type: "counter", help: "Tasks failed for good, by capability and error code." },
  clawbot_tasks_retried_total: {
    type: "counter",
    help: "Attempts that failed with attempts left (the task went back to pending), by capability and error code.",
  },
  clawbot_task_dispatch_latency_seconds: {
    type: "histogram",
    help: "From a task being due (created, or its backoff over) to a bot being sent it.",
  },
  clawbot_task_run_seconds: { type: "histogram", help: "From a task's start to its completion, by capability." },
  clawbot_websocket_connects_total: { type: "counter", help: "Bot WebSocket connections accepted." },
  clawbot_websocket_disconnects_total: {
    type: "counter",
    help: "Bot WebSocket disconnections recorded (a reconnect within a second is not one).",
  },
  clawbot_d1_round_trips_total: { type: "counter", help: "D1 round trips (a batch is one)." },
  clawbot_d1_statements_total: { type: "counter", help: "D1 statements (each statement of a batch counts)." },
  clawbot_deployment_stage_seconds: {
    type: "histogram",
    help: "How long each deployment stage took, from its start to its completion, by stage.",
  },
  clawbot_rate_limited_total: { type: "counter", help: "Requests refused with 429 rate_limited, by limit and scope." },
  clawbot_schedule_runs_total: {
    type: "counter",
    help: "Due times of schedules, by outcome: run, skipped (overlap, a deleted workflow) or missed (passed while nothing ran).",
  },
  clawbot_bot_quarantines_total: { type: "counter", help: "Bots put in quarantine by their health score." },
  clawbot_queue_depth: { type: "gauge", help: "Pending tasks, by capability (read at scrape time)." },
  clawbot_queue_oldest_pending_age_seconds: { type: "gauge", help: "Age of the oldest pending task, by capability (read at scrape time)." },
  clawbot_bots: { type: "gauge", help: "Registered bots, by status (read at scrape time)." },
  clawbot_bots_quarantined: { type: "gauge", help: "Bots in quarantine now (read at scrape time)." },
  clawbot_deployments: { type: "gauge", help: "Deployments, by status (read at scrape time)." },
} as const satisfies Record<string, MetricSpec>;

export type MetricName = keyof typeof METRICS;
export type Labels = Record<string, string>;

/** One stored series: a counter, or one part of a histogram (`_bucket` with `le`, `_sum`, `_count`). */
export interface Series {
  name: string;
  labels: Labels;
  value: number;
}

/** Canonical label text (sorted keys): the key under which a series is stored and summed. */
export function labelText(labels: Labels): string {
  return Object.keys(labels)
    .sort()
    .map((k) => `${k}="${escapeLabel(labels[k]!)}"`)
    .join(",");
}

/** Most values need no escaping: one test instead of three replaces (this runs on every count). */
const escapeLabel = (v: string) => (/[\\\n"]/.test(v) ? v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"') : v);

/**
 * Observations of one histogram series not yet stored: how many fell in each bucket (not cumulative;
 * the last is +Inf), their sum and their count. Observing costs one increment; `histogramSeries` turns
 * it into what the store sums.
 */
export interface HistogramCounts {
  inBucket: number[];
  sum: number;
  count: number;
}

export const emptyHistogram = (): HistogramCounts => ({ inBucket: new Array(DURATION_BUCKETS_S.length + 1).fill(0), sum: 0, count: 0 });

export function observeInto(h: HistogramCounts, seconds: number): void {
  const bucket = DURATION_BUCKETS_S.findIndex((le) => seconds <= le);
  h.inBucket[bucket === -1 ? DURATION_BUCKETS_S.length : bucket]!++;
  h.sum += seconds;
  h.count++;
}

/** The series observations add to a histogram: each bucket they reached (cumulative), `_sum` and `_count`. */
export function histogramSeries(name: string, labels: Labels, h: HistogramCounts): Series[] {
  const out: Series[] = [];
  let cumulative = 0;
  h.inBucket.forEach((n, i) => {
    cumulative += n;
    const le = i < DURATION_BUCKETS_S.length ? String(DURATION_BUCKETS_S[i]) : "+Inf";
    if (cumulative > 0) out.push({ name: `${name}_bucket`, labels: { ...labels, le }, value: cumulative });
  });
  out.push({ name: `${name}_sum`, labels, value: h.sum });
  out.push({ name: `${name}_count`, labels, value: h.count });
  return out;
}

/** The base metric a stored series belongs to (`x_bucket` → `x`). */
function familyOf(seriesName: string): string {
  for (const suffix of ["_bucket", "_sum", "_count"]) {
    const base = seriesName.slice(0, -suffix.length);
    if (seriesName.endsWith(suffix) && base in METRICS) return base;
  }
  return seriesName;
}

/** The exposition text: every known family with HELP and TYPE, then its series (a histogram's in bucket order). */
export function renderPrometheus(series: Series[]): string {
  const byFamily = new Map<string, Series[]>();
  for (const s of series) {
    const family = familyOf(s.name);
    if (!(family in METRICS)) continue;
    byFamily.set(family, [...(byFamily.get(family) ?? []), s]);
  }
  const lines: string[] = [];
  for (const [name, spec] of Object.entries(METRICS)) {
    lines.push(`# HELP ${name} ${spec.help}`, `# TYPE ${name} ${spec.type}`);
    const rows = (byFamily.get(name) ?? []).sort((a, b) => seriesOrder(a).localeCompare(seriesOrder(b)) || bucketOrder(a) - bucketOrder(b));
    for (const s of rows) {
      const text = labelText(s.labels);
      lines.push(`${s.name}${text ? `{${text}}` : ""} ${formatValue(s.value)}`);
    }
  }
  return `${lines.join("\n")}\n`;
}

/** Series of one label set together; `le` is left out so a histogram's buckets sort by bound below. */
const seriesOrder = (s: Series) => {
  const { le: _le, ...rest } = s.labels;
  const part = s.name.endsWith("_bucket") ? 0 : s.name.endsWith("_sum") ? 1 : 2;
  return `${labelText(rest)}|${part}`;
};
const bucketOrder = (s: Series) =>
  s.labels.le === undefined ? 0 : s.labels.le === "+Inf" ? Number.POSITIVE_INFINITY : Number(s.labels.le);
const formatValue = (v: number) => (Number.isInteger(v) ? String(v) : String(Math.round(v * 1e6) / 1e6));
