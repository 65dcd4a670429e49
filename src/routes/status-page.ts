/**
 * The Status Center's files (public/, embedded by scripts/embed-pages.mjs), served by the Worker itself:
 * no CDN, no separate server. The page runs under a strict Content-Security-Policy (its own scripts and
 * styles only; connections to this origin), and each file carries an ETag so a reload costs a 304.
 */
import { Hono } from "hono";
import { DEPLOYMENT_STAGES } from "../core/deployment-machine";
import { STATUS_PAGES } from "../generated/status-pages";
import type { AppEnv } from "../http";

const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self' ws: wss:",
  // Screenshots are fetched with the tab's token and shown from blob: URLs (an <img> cannot send the token).
  "img-src 'self' data: blob:",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "form-action 'self'",
].join("; ");

/** What the page shares with the Worker, from the same source (the deployment stages' order), as a module. */
const CONFIG_MODULE = `export const DEPLOYMENT_STAGES = ${JSON.stringify(DEPLOYMENT_STAGES)};\n`;
const CONFIG_PAGE = { type: "text/javascript; charset=utf-8", body: CONFIG_MODULE, etag: `"config-${hashOf(CONFIG_MODULE)}"` };

/** A short, stable fingerprint for the ETag (FNV-1a: no crypto needed for a cache validator of a constant). */
function hashOf(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return h.toString(16);
}

export const statusPageRouter = new Hono<AppEnv>();

for (const [path, page] of Object.entries({ ...STATUS_PAGES, "/assets/status-config.js": CONFIG_PAGE })) {
  statusPageRouter.get(path, (c) => {
    c.header("ETag", page.etag);
    c.header("Cache-Control", "no-cache");
    c.header("X-Content-Type-Options", "nosniff");
    if (page.type.startsWith("text/html")) {
      c.header("Content-Security-Policy", CSP);
      c.header("Referrer-Policy", "no-referrer");
    }
    if (c.req.header("If-None-Match") === page.etag) return c.body(null, 304);
    c.header("Content-Type", page.type);
    return c.body(page.body);
  });
}
