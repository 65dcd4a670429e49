/**
 * `wrangler dev` as the coordinator, the e2e tests and the benchmark run it, through wrangler's own
 * API (unstable_startWorker) instead of its CLI, for one reason: the CLI always starts the devtools
 * inspector, and wrangler's inspector proxy turns on the runtime's Network domain. Then every fetch
 * the Worker makes — and every D1 query is one (http://d1/query) — sends four inspector events over
 * loopback to wrangler's Node process, which formats each into its debug log
 * (~/.config/.wrangler/logs: about 10 MB per benchmark run). Measured here: wrangler's Node process
 * spent 1.7 s of CPU per 500 tasks through 50 bots on that alone, and GET /health (one D1 query)
 * served 216 requests/s under the CLI against 372 through this runner. Production has no inspector.
 * `--inspector-port N` turns it back on (the benchmark's CPU profile needs it).
 *
 * Arguments: --config PATH --ip HOST --port N --persist-to DIR [--inspector-port N] [--var KEY:VALUE]…
 * Runs until SIGTERM or SIGINT, then disposes of the worker (workerd stops with it). Like the CLI, it
 * rebuilds and restarts the Worker when a source file changes: wrangler's bundler always watches
 * (`watch: false` does not stop that), so nothing may edit `src/` during a bench run.
 */
import { parseArgs } from "node:util";
import { unstable_startWorker } from "wrangler";

const { values } = parseArgs({
  options: {
    config: { type: "string" },
    ip: { type: "string", default: "127.0.0.1" },
    port: { type: "string" },
    "persist-to": { type: "string" },
    "inspector-port": { type: "string" },
    var: { type: "string", multiple: true, default: [] },
  },
});

const vars = Object.fromEntries(
  values.var.map((pair) => {
    const at = pair.indexOf(":");
    return [pair.slice(0, at), { type: "plain_text", value: pair.slice(at + 1) }];
  }),
);

const worker = await unstable_startWorker({
  config: values.config,
  bindings: vars,
  dev: {
    server: { hostname: values.ip, port: Number(values.port) },
    inspector: values["inspector-port"] ? { hostname: "127.0.0.1", port: Number(values["inspector-port"]) } : false,
    persist: values["persist-to"],
    watch: false,
    liveReload: false,
    testScheduled: true,
    remote: false,
    enableContainers: false,
  },
});
await worker.ready;
console.log(`[wrangler:info] Ready on ${(await worker.url).href}`);

let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  await worker.dispose().catch(() => {});
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
