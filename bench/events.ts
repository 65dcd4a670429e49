/**
 * Event latency: a bot's `task_progress` → every watcher of the job's stream
 * has it (`/api/v1/ws/jobs/{id}`), one message at a time, with 1 and 100
 * watchers. The bot is a raw control socket (its messages are the seed's).
 */
import { WebSocket } from "ws";

type Api = (method: string, path: string, body?: unknown) => Promise<{ status: number; body: any }>;

const now = () => performance.now();

/** A socket whose messages are kept from the first one on (one can come in the same read as the upgrade). */
interface Inbox {
  ws: WebSocket;
  messages: any[];
  wake: Array<() => void>;
}

function open(url: string, token: string): Promise<Inbox> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers: { Authorization: `Bearer ${token}` } });
    const inbox: Inbox = { ws, messages: [], wake: [] };
    ws.on("message", (data) => {
      inbox.messages.push(JSON.parse(data.toString()));
      for (const w of inbox.wake.splice(0)) w();
    });
    ws.once("open", () => resolve(inbox));
    ws.once("error", reject);
  });
}

/** Takes the first kept message `match` accepts, waiting for it (bounded). */
async function next(inbox: Inbox, what: string, match: (m: any) => boolean, timeoutMs = 30_000): Promise<any> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const i = inbox.messages.findIndex(match);
    if (i >= 0) return inbox.messages.splice(i, 1)[0];
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`event bench: no ${what} within ${timeoutMs} ms`);
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, left);
      inbox.wake.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}

export async function eventLatency(baseUrl: string, api: Api, adminToken: string, watchers: number, samples: number) {
  const capability = `bench-events-${Date.now().toString(36)}-${watchers}`;
  const bot = await api("POST", "/api/v1/bots", { name: "bench-events", capabilities: [capability] });
  if (bot.status !== 201) throw new Error(`register bot: ${bot.status}`);
  const wsBase = baseUrl.replace(/^http/, "ws");
  const botWs = await open(`${wsBase}/api/v1/ws/control?bot_id=${bot.body.id}`, bot.body.token);
  await next(botWs, "connected", (m) => m.type === "connected");
  const job = await api("POST", "/api/v1/jobs", { task: { capability, timeout_seconds: 3600 } });
  if (job.status !== 202) throw new Error(`create job: ${job.status}`);
  const assigned = await next(botWs, "task_assigned", (m) => m.type === "task_assigned");
  const taskId = assigned.payload.task_id as string;
  botWs.ws.send(JSON.stringify({ type: "task_started", payload: { task_id: taskId } }));
  await next(botWs, "task_ack", (m) => m.type === "task_ack");

  const sockets: Inbox[] = [];
  for (let i = 0; i < watchers; i++) {
    const ws = await open(`${wsBase}/api/v1/ws/jobs/${job.body.id}`, adminToken);
    sockets.push(ws);
  }
  const latencies: number[] = [];
  try {
    for (let i = 0; i < samples; i++) {
      const message = `m${i}`;
      const received = sockets.map((w) =>
        next(w, "progress", (m) => m.type === "progress" && m.data.message === message).then(() => now()),
      );
      const t0 = now();
      botWs.ws.send(JSON.stringify({ type: "task_progress", payload: { task_id: taskId, progress: i % 100, message } }));
      for (const at of await Promise.all(received)) latencies.push(at - t0);
    }
  } finally {
    botWs.ws.send(JSON.stringify({ type: "task_complete", payload: { task_id: taskId, success: true, result: null } }));
    for (const w of sockets) w.ws.close();
    botWs.ws.close();
  }
  return latencies;
}
