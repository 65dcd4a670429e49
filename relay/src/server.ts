/**
 * The SSH relay's HTTP surface: `POST /v1/ops` with a signed JSON body runs
 * one allow-listed operation on one VPS; `GET /health` for the container.
 * Nothing else: no free-form commands, no unsigned requests, no private
 * targets unless local dev allows them.
 */
import { createServer, type IncomingMessage, type Server } from "node:http";
import {
  checkRelayTimestamp,
  MARKER_FILES,
  type Markers,
  type RelayErrorCode,
  RelayRequest,
  type RelayResult,
  verifyRelaySignature,
} from "../../src/contracts/relay";
import { execOnce, SshError, type SshTarget } from "./ssh";
import { resolveTarget } from "./targets";

export interface RelayOptions {
  secret: string;
  port?: number;
  host?: string;
  /** Local dev and tests only: allow loopback/private VPS addresses. */
  allowPrivateTargets?: boolean;
  opTimeoutMs?: number;
  log?: (line: Record<string, unknown>) => void;
}

const MAX_BODY_BYTES = 1024 * 1024;
const STATUS: Record<RelayErrorCode, number> = {
  bad_signature: 401,
  stale_request: 401,
  replayed_request: 409,
  validation_failed: 400,
  target_refused: 403,
  host_key_mismatch: 502,
  ssh_unreachable: 502,
  ssh_auth_failed: 502,
  command_failed: 502,
  internal_error: 500,
};

class RelayFailure extends Error {
  constructor(
    readonly code: RelayErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** Runs `cmd` as root: directly when we log in as root, else through passwordless sudo. */
const asRoot = (username: string, cmd: string) => (username === "root" ? cmd : `sudo -n bash -c '${cmd}'`);

function commandFor(req: RelayRequest): { command: string; stdin: Buffer | null } {
  switch (req.op) {
    case "check_ready":
      return { command: "true", stdin: null };
    case "upload_script": {
      const dir = req.path.slice(0, req.path.lastIndexOf("/")) || "/";
      return {
        command: asRoot(
          req.username,
          `umask 077 && mkdir -p ${dir} && base64 -d > ${req.path}.tmp && chmod 700 ${req.path}.tmp && mv ${req.path}.tmp ${req.path}`,
        ),
        stdin: Buffer.from(req.script_b64, "utf8"),
      };
    }
    case "launch_detached":
      // Detached from the SSH session: it survives the connection (and the coordinator) going away.
      return {
        command: asRoot(req.username, `setsid nohup bash ${req.path} > ${req.log_path} 2>&1 < /dev/null & echo launched`),
        stdin: null,
      };
    case "read_markers": {
      const names = Object.values(MARKER_FILES).join(" ");
      return {
        command: asRoot(
          req.username,
          `cd ${req.marker_dir} 2>/dev/null || exit 0; for f in ${names}; do if [ -f "$f" ]; then echo "$f $(head -c 65536 "$f" | base64 -w0)"; fi; done`,
        ),
        stdin: null,
      };
    }
  }
}

function parseMarkers(stdout: string): Markers {
  const found = new Map<string, string>();
  for (const line of stdout.split("\n")) {
    const [file, b64 = ""] = line.trim().split(" ");
    if (file) found.set(file, Buffer.from(b64, "base64").toString("utf8").trim());
  }
  return Object.fromEntries(Object.entries(MARKER_FILES).map(([k, file]) => [k, found.get(file) ?? null])) as Markers;
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new RelayFailure("validation_failed", "body too large");
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString("utf8");
}

export interface RunningRelay {
  url: string;
  server: Server;
  close(): Promise<void>;
}

export async function startRelay(opts: RelayOptions): Promise<RunningRelay> {
  if (opts.secret.length < 16) throw new Error("RELAY_SECRET must be at least 16 characters");
  const log = opts.log ?? ((line) => console.log(JSON.stringify({ time: new Date().toISOString(), component: "relay", ...line })));
  const opTimeoutMs = opts.opTimeoutMs ?? 30_000;
  /** Signatures seen recently: a captured request cannot be replayed inside the skew window. */
  const seen = new Map<string, number>();

  async function handle(req: IncomingMessage): Promise<RelayResult> {
    const timestamp = req.headers["x-relay-timestamp"] as string | undefined;
    if (checkRelayTimestamp(timestamp, Math.floor(Date.now() / 1000)) === "stale_request") {
      throw new RelayFailure("stale_request", "request timestamp is too far from now"); // before reading a byte of the body
    }
    const body = await readBody(req);
    const nowS = Math.floor(Date.now() / 1000);
    const signature = req.headers["x-relay-signature"] as string | undefined;
    const sigError = await verifyRelaySignature(opts.secret, body, req.headers["x-relay-timestamp"] as string | undefined, signature, nowS);
    if (sigError)
      throw new RelayFailure(sigError, sigError === "stale_request" ? "request timestamp is too far from now" : "bad or missing signature");
    for (const [sig, at] of seen) if (at < nowS - 120) seen.delete(sig);
    if (seen.has(signature!)) throw new RelayFailure("replayed_request", "this signed request was already used");
    seen.set(signature!, nowS);

    let json: unknown;
    try {
      json = JSON.parse(body);
    } catch {
      throw new RelayFailure("validation_failed", "body is not JSON");
    }
    const parsed = RelayRequest.safeParse(json);
    if (!parsed.success)
      throw new RelayFailure("validation_failed", parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; "));
    const op = parsed.data;

    let address: string;
    try {
      address = await resolveTarget(op.host, opts.allowPrivateTargets ?? false);
    } catch (err) {
      throw new RelayFailure("target_refused", (err as Error).message);
    }
    const target: SshTarget = {
      address,
      port: op.port,
      username: op.username,
      privateKey: op.private_key,
      hostKeySha256: op.host_key_sha256,
    };
    const { command, stdin } = commandFor(op);
    const started = Date.now();
    const res = await execOnce(target, command, stdin, opTimeoutMs).catch((err) => {
      if (err instanceof SshError) throw new RelayFailure(err.code, err.message);
      throw err;
    });
    log({
      level: "info",
      msg: "relay op",
      op: op.op,
      deployment_id: op.deployment_id,
      host: op.host,
      exit_code: res.code,
      duration_ms: Date.now() - started,
    });
    if (res.code !== 0) throw new RelayFailure("command_failed", `exit ${res.code}: ${res.stderr.slice(0, 500)}`);
    switch (op.op) {
      case "check_ready":
        return { op: "check_ready", ready: true, host_key_sha256: res.hostKeySha256 };
      case "upload_script":
        return { op: "upload_script", bytes: Buffer.from(op.script_b64, "base64").length };
      case "launch_detached":
        return { op: "launch_detached", launched: true };
      case "read_markers":
        return { op: "read_markers", markers: parseMarkers(res.stdout) };
    }
  }

  const server = createServer((req, res) => {
    const reply = (status: number, body: unknown) => {
      res.writeHead(status, { "Content-Type": "application/json" });
      res.end(JSON.stringify(body));
    };
    if (req.method === "GET" && req.url === "/health") return reply(200, { status: "ok" });
    if (req.method !== "POST" || req.url !== "/v1/ops")
      return reply(404, { ok: false, error: { code: "not_found", message: "POST /v1/ops only" } });
    handle(req).then(
      (result) => reply(200, { ok: true, result }),
      (err) => {
        const failure = err instanceof RelayFailure ? err : new RelayFailure("internal_error", "relay failed");
        if (!(err instanceof RelayFailure)) log({ level: "error", msg: "relay internal error", error: String(err) });
        else log({ level: "warn", msg: "relay op refused or failed", code: failure.code, error: failure.message });
        reply(STATUS[failure.code], { ok: false, error: { code: failure.code, message: failure.message } });
      },
    );
  });
  await new Promise<void>((resolve) => server.listen(opts.port ?? 0, opts.host ?? "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  return { url: `http://${opts.host ?? "127.0.0.1"}:${port}`, server, close: () => new Promise((r) => server.close(() => r())) };
}
