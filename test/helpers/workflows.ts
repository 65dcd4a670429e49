/** Workflow test helpers: a workflow of given steps on one capability, and a connected bot for it. */
import { expect } from "vitest";
import { BotSocket, post, registerBot } from "./api";

/** Creates a workflow (every step on `capability`, one attempt each) and returns its id. */
export async function createWorkflow(capability: string, steps: Record<string, unknown>[], name = "rules") {
  const res = await post("/api/v1/workflows", { name, capability, max_attempts: 1, steps });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body.id as string;
}

/** A registered bot with `capability`, connected over its WebSocket. */
export async function connectedBot(capability: string) {
  const bot = await registerBot([capability]);
  const sock = await BotSocket.open(bot.id, bot.token);
  await sock.next("connected");
  return sock;
}
