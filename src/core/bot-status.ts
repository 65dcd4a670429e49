/** A bot's public status is derived, never stored (see DECISIONS: "Otherwise status is derived"). */
export const BOT_STATUSES = ["offline", "online", "busy"] as const;
export type BotStatus = (typeof BOT_STATUSES)[number];

export interface BotLiveness {
  connected: boolean;
  held: boolean;
  currentTaskId: string | null;
  lastHeartbeatAtMs: number | null;
  /** When the last socket closed: a REST heartbeat counts only if it came after. */
  disconnectedAtMs: number | null;
}

/**
 * An open socket means online (liveness comes from the socket itself); without
 * one, a REST heartbeat younger than `staleAfterMs` (and newer than the last
 * socket close, so a bot that just dropped its socket is offline at once) does. A live bot holding a
 * task, or held by an operator (`POST /bots/{id}/busy`), is busy.
 */
export function deriveBotStatus(bot: BotLiveness, nowMs: number, staleAfterMs: number): BotStatus {
  const beat = bot.lastHeartbeatAtMs;
  const freshBeat = beat !== null && nowMs - beat < staleAfterMs && (bot.disconnectedAtMs === null || beat > bot.disconnectedAtMs);
  const live = bot.connected || freshBeat;
  if (!live) return "offline";
  return bot.held || bot.currentTaskId !== null ? "busy" : "online";
}
