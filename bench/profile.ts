/**
 * `BENCH_PROFILE=1 npm run bench`: a CPU profile of the coordinator (every
 * Worker and Durable Object of `wrangler dev` runs in one workerd isolate)
 * during its round with the most bots, taken through workerd's inspector, and
 * the functions that used the most of it by self time, written to
 * bench/profile.txt. Loopback only.
 */
import { WebSocket } from "ws";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface CpuProfiler {
  /** Stops and answers with the top functions by self time, one line each. */
  stop(): Promise<string>;
}

export async function startCpuProfile(inspectorPort: number): Promise<CpuProfiler> {
  const targets = (await (await fetch(`http://127.0.0.1:${inspectorPort}/json`)).json()) as { webSocketDebuggerUrl: string }[];
  const ws = new WebSocket(targets[0]!.webSocketDebuggerUrl);
  await new Promise((resolve, reject) => ws.once("open", resolve).once("error", reject));
  let nextId = 0;
  const waiting = new Map<number, (result: unknown) => void>();
  ws.on("message", (data) => {
    const msg = JSON.parse(String(data)) as { id?: number; result?: unknown };
    if (msg.id !== undefined) waiting.get(msg.id)?.(msg.result);
  });
  const call = (method: string, params: Record<string, unknown> = {}) =>
    new Promise<unknown>((resolve, reject) => {
      const id = ++nextId;
      const timer = setTimeout(() => reject(new Error(`${method}: no answer from the inspector`)), 30_000);
      waiting.set(id, (result) => {
        clearTimeout(timer);
        resolve(result);
      });
      ws.send(JSON.stringify({ id, method, params }));
    });
  await call("Profiler.enable");
  await call("Profiler.setSamplingInterval", { interval: 200 });
  await call("Profiler.start");
  return {
    async stop() {
      const { profile } = (await call("Profiler.stop")) as { profile: Profile };
      ws.close();
      return summarize(profile);
    },
  };
}

/** Self time per function, the busiest first, as a share of the time the isolate was not idle. */
function summarize(profile: Profile, top = 30): string {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<string, number>();
  profile.samples.forEach((nodeId, i) => {
    const frame = byId.get(nodeId)!.callFrame;
    const name = `${frame.functionName || "(anonymous)"} ${frame.url.split("/").pop() ?? ""}:${frame.lineNumber}`;
    selfUs.set(name, (selfUs.get(name) ?? 0) + (profile.timeDeltas[i] ?? 0));
  });
  const idle = [...selfUs].filter(([name]) => name.startsWith("(idle)")).reduce((sum, [, us]) => sum + us, 0);
  const busy = [...selfUs.values()].reduce((sum, us) => sum + us, 0) - idle;
  const rows = [...selfUs].filter(([name]) => !name.startsWith("(idle)")).sort((a, b) => b[1] - a[1]);
  return [
    `busy ${(busy / 1000).toFixed(0)} ms (idle ${(idle / 1000).toFixed(0)} ms)`,
    ...rows.slice(0, top).map(([name, us]) => `${((100 * us) / busy).toFixed(1).padStart(5)} %  ${name}`),
  ].join("\n");
}
