/**
 * Seed 001's Python example bot, verbatim apart from its bot id and port, runs
 * unchanged against the coordinator under AUTH_MODE=open (it sends no token,
 * no heartbeat and no `start`; it completes straight from `assigned`).
 * Needs Debian's python3-websockets (`.ci/run` installs it).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Harness, startHarness, until } from "../../scripts/lib/harness";

const SEED_BOT = `import asyncio
import websockets
import json

async def bot_worker(bot_id):
    uri = f"ws://localhost:__PORT__/api/v1/ws/control?bot_id={bot_id}"
    
    async with websockets.connect(uri) as websocket:
        # Receive connected message
        connected = await websocket.recv()
        print(f"Connected: {connected}")
        
        # Listen for task assignments
        while True:
            message = await websocket.recv()
            data = json.loads(message)
            
            if data["type"] == "task_assigned":
                task_id = data["payload"]["task_id"]
                task_payload = data["payload"]["task_payload"]
                
                # Process task...
                result = {"output": "success"}
                
                # Report completion
                completion = {
                    "type": "task_complete",
                    "payload": {
                        "task_id": task_id,
                        "success": True,
                        "result": result
                    }
                }
                await websocket.send(json.dumps(completion))

asyncio.run(bot_worker("__BOT_ID__"))
`;

describe("seed 001 Python example bot", () => {
  let h: Harness;
  let bot: ChildProcess | null = null;

  beforeAll(async () => {
    h = await startHarness({ AUTH_MODE: "open" });
  });
  afterAll(async () => {
    bot?.kill("SIGKILL");
    await h?.stop();
  });

  it("registers, connects without a token and completes tasks and a workflow", async () => {
    // Seed 001's curl examples, without any Authorization header.
    const post = async (p: string, body: unknown) => {
      const res = await fetch(`${h.coordinator.url}${p}`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
      return { status: res.status, body: (await res.json()) as any };
    };
    const reg = await post("/api/v1/bots", {
      name: "build-bot-01",
      capabilities: ["python", "docker", "build"],
      metadata: { version: "1.0", region: "us-west" },
    });
    expect(reg.status).toBe(201);
    expect(reg.body.status).toBe("offline");

    const script = path.join(h.persistDir, "seed_bot.py");
    writeFileSync(script, SEED_BOT.replace("__PORT__", String(h.port)).replace("__BOT_ID__", reg.body.id));
    bot = spawn("/usr/bin/python3", [script], { stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    bot.stdout!.on("data", (d) => (output += d));
    bot.stderr!.on("data", (d) => (output += d));
    await until("seed bot connected", 20_000, async () => output.includes("Connected:"));
    expect(output).toContain('"type":"connected"');

    const available = await fetch(`${h.coordinator.url}/api/v1/bots/available?capability=python`).then((r) => r.json() as Promise<any[]>);
    expect(available.map((b) => b.id)).toContain(reg.body.id);

    const task = await post("/api/v1/tasks", { payload: { action: "build" }, capability: "python" });
    expect(task.status).toBe(201);
    const done = await until("task completed", 15_000, async () => {
      const t = (await fetch(`${h.coordinator.url}/api/v1/tasks/${task.body.id}`).then((r) => r.json())) as any;
      return t.status === "completed" ? t : null;
    });
    expect(done.result).toEqual({ output: "success" });
    expect(done.started_at).not.toBeNull();

    const wf = await post("/api/v1/workflows", {
      name: "CI/CD Pipeline",
      description: "Build, test, and deploy application",
      task_payloads: [{ action: "build" }, { action: "test" }, { action: "deploy" }],
      metadata: { project: "my-app", branch: "main" },
    });
    expect(wf.status).toBe(201);
    expect(wf.body.task_ids).toHaveLength(3);
    expect((await post(`/api/v1/workflows/${wf.body.id}/start`, {})).status).toBe(200);
    const finished = await until("workflow completed", 20_000, async () => {
      const res = (await fetch(`${h.coordinator.url}/api/v1/workflows/${wf.body.id}/tasks`).then((r) => r.json())) as any;
      return res.workflow.status === "completed" ? res : null;
    });
    expect(finished.tasks.map((t: any) => t.result)).toEqual([{ output: "success" }, { output: "success" }, { output: "success" }]);
  }, 120_000);
});
