/**
 * The sweeper at fleet scale: 10,000 registered bots, 1,000 of them connected
 * (a light socket harness: raw WebSockets from this process, not 1,000 bot
 * processes; the runtime answers their heartbeats). Triggers sweeps and reads,
 * per sweep, the D1 round trips and statements (the counter of src/db/client.ts)
 * and the Durable Objects it called (its report), from /api/v1/_bench/d1.
 */
import { WebSocket } from "ws";
import { triggerCron } from "../scripts/lib/coordinator";
import { mapLimit } from "../scripts/lib/harness";

type Api = (method: string, path: string, body?: unknown) => Promise<{ status: number; body: any }>;

export interface FleetSweepOptions {
  registered: number;
  connected: number;
  sweeps: number;
}

interface Counters {
  round_trips: number;
  statements: number;
  last_sweep: { botsChecked: number; wakeUps: number; dispatched: number; failures: number } | null;
  last_sweep_finished_at_ms: number;
}

export async function fleetSweep(url: string, api: Api, o: FleetSweepOptions) {
  const bots = await mapLimit(
    Array.from({ length: o.registered }, (_, i) => i),
    32,
    async (i) => {
      const res = await api("POST", "/api/v1/bots", { name: `fleet-${i}`, capabilities: ["fleet-bench"] });
      if (res.status !== 201) throw new Error(`register bot ${i}: ${res.status}`);
      return { id: res.body.id as string, token: res.body.token as string };
    },
  );
  const wsBase = url.replace(/^http/, "ws");
  const sockets = await mapLimit(bots.slice(0, o.connected), 16, (b) => {
    return new Promise<WebSocket>((resolve, reject) => {
      const ws = new WebSocket(`${wsBase}/api/v1/ws/control?bot_id=${b.id}`, { headers: { Authorization: `Bearer ${b.token}` } });
      ws.once("message", () => resolve(ws)); // `connected`
      ws.once("error", reject);
    });
  });
  const counters = async () => (await api("GET", "/api/v1/_bench/d1")).body as Counters;
  const runs: { d1_round_trips: number; d1_statements: number; do_wake_ups: number; sockets_checked: number; seconds: number }[] = [];
  try {
    for (let i = 0; i < o.sweeps; i++) {
      const before = await counters();
      const t0 = performance.now();
      const status = await triggerCron(url);
      if (status !== 200) throw new Error(`cron trigger: ${status}`);
      let after = await counters();
      for (let wait = 0; wait < 600 && after.last_sweep_finished_at_ms === before.last_sweep_finished_at_ms; wait++) {
        await new Promise((r) => setTimeout(r, 50));
        after = await counters();
      }
      if (!after.last_sweep) throw new Error("no sweep finished");
      // The two counter reads of the bench itself are not the sweep's.
      runs.push({
        d1_round_trips: after.round_trips - before.round_trips,
        d1_statements: after.statements - before.statements,
        do_wake_ups: after.last_sweep.wakeUps,
        sockets_checked: after.last_sweep.botsChecked,
        seconds: Math.round((performance.now() - t0) / 10) / 100,
      });
    }
  } finally {
    for (const ws of sockets) ws.close();
  }
  return { registered: o.registered, connected: o.connected, sweeps: runs };
}
