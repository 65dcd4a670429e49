/** Constants of the bot control WebSocket, dependency-free so the bot client bundle stays small. */

/** The exact heartbeat frame the runtime answers without waking the bot's Durable Object. */
export const HEARTBEAT_FRAME = '{"type":"heartbeat"}';
export const HEARTBEAT_ACK_FRAME = '{"type":"heartbeat_ack"}';

/** Largest WebSocket message a bot may send (same cap as HTTP bodies). */
export const MAX_MESSAGE_BYTES = 256 * 1024;

/** Close codes the coordinator uses on a bot's socket (4000–4999 are the application's). */
export const CLOSE_CODES = {
  /** The bot opened a newer connection; this one is obsolete. The client need not reconnect it. */
  replaced: 4000,
  /** The token this socket was opened with was revoked: reconnecting with it is pointless. */
  tokenRevoked: 4001,
  /** The bot was deleted: reconnecting is pointless. */
  botDeleted: 4004,
} as const;
