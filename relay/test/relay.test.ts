/** The SSH relay against a real SSH server: signed, allow-listed operations only, host key pinned. */
import { mkdtempSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RELAY_MAX_SKEW_S, type RelayRequestInput, signRelayBody } from "../../src/contracts/relay";
import { generateSshKeyPair } from "../../src/crypto/ssh-keys";
import { startTestSshServer, type TestSshServer } from "../../standins/ssh-vps";
import { type RunningRelay, startRelay } from "../src/server";

const SECRET = "relay-test-secret-0123456789";
let relay: RunningRelay;
let strictRelay: RunningRelay;
let sshd: TestSshServer;
let key: Awaited<ReturnType<typeof generateSshKeyPair>>;

beforeAll(async () => {
  key = await generateSshKeyPair("relay-test");
  sshd = await startTestSshServer(key.publicKeyLine);
  relay = await startRelay({ secret: SECRET, allowPrivateTargets: true, opTimeoutMs: 10_000, log: () => {} });
  strictRelay = await startRelay({ secret: SECRET, allowPrivateTargets: false, log: () => {} });
});
afterAll(async () => {
  await relay.close();
  await strictRelay.close();
  await sshd.close();
});

const target = (over: Partial<RelayRequestInput> = {}) => ({
  nonce: crypto.randomUUID(),
  deployment_id: "dep-1",
  host: "127.0.0.1",
  port: sshd.port,
  username: "root",
  private_key: key.privateKeyPem,
  host_key_sha256: sshd.hostKeySha256,
  ...over,
});

async function send(
  body: unknown,
  opts: { relayUrl?: string; secret?: string; timestampS?: number; headers?: Record<string, string>; raw?: string } = {},
) {
  const text = opts.raw ?? JSON.stringify(body);
  const headers = opts.headers ?? (await signRelayBody(opts.secret ?? SECRET, text, opts.timestampS ?? Math.floor(Date.now() / 1000)));
  const res = await fetch(`${opts.relayUrl ?? relay.url}/v1/ops`, {
    method: "POST",
    headers: { "Content-Type": "application/json", ...headers },
    body: text,
  });
  return { status: res.status, body: (await res.json()) as any };
}

describe("SSH relay", () => {
  it("check_ready reports the host key, so the coordinator can pin it", async () => {
    const res = await send({ op: "check_ready", ...target({ host_key_sha256: null }) });
    expect(res).toEqual({
      status: 200,
      body: { ok: true, result: { op: "check_ready", ready: true, host_key_sha256: sshd.hostKeySha256 } },
    });
    expect((await send({ op: "check_ready", ...target() })).status).toBe(200);
  });

  it("a changed host key fails with host_key_mismatch and runs nothing", async () => {
    const before = sshd.commands.length;
    const res = await send({ op: "check_ready", ...target({ host_key_sha256: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" }) });
    expect(res.status).toBe(502);
    expect(res.body.error.code).toBe("host_key_mismatch");
    expect(sshd.commands.length).toBe(before);
  });

  it("uploads a script, launches it detached and reads its markers", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "cbc-relay-"));
    const script = `#!/bin/bash\nset -e\necho STARTED > ${dir}/.openclaw-setup-started\nsleep 0.2\necho tok-123 > ${dir}/.openclaw-setup-token\necho COMPLETE > ${dir}/.openclaw-setup-complete\n`;
    const up = await send({
      op: "upload_script",
      ...target(),
      path: `${dir}/setup.sh`,
      script_b64: Buffer.from(script).toString("base64"),
    });
    expect(up.body).toEqual({ ok: true, result: { op: "upload_script", bytes: script.length } });
    expect(readFileSync(`${dir}/setup.sh`, "utf8")).toBe(script);

    const launched = await send({ op: "launch_detached", ...target(), path: `${dir}/setup.sh`, log_path: `${dir}/setup.log` });
    expect(launched.body.result).toEqual({ op: "launch_detached", launched: true });

    let markers: any = null;
    for (let i = 0; i < 50; i++) {
      markers = (await send({ op: "read_markers", ...target(), marker_dir: dir })).body.result.markers;
      if (markers.complete) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(markers).toEqual({ started: "STARTED", progress: null, complete: "COMPLETE", error: null, token: "tok-123" });
    const empty = await send({ op: "read_markers", ...target(), marker_dir: "/nonexistent/markers" });
    expect(empty.body.result.markers).toEqual({ started: null, progress: null, complete: null, error: null, token: null });
  });

  it("refuses unsigned, badly signed, stale and replayed requests", async () => {
    const body = { op: "check_ready", ...target() };
    expect((await send(body, { headers: {} })).body.error.code).toBe("bad_signature");
    expect((await send(body, { secret: "another-secret-of-length" })).status).toBe(401);
    expect((await send(body, { timestampS: Math.floor(Date.now() / 1000) - 600 })).body.error.code).toBe("stale_request");
    const text = JSON.stringify(body);
    const headers = await signRelayBody(SECRET, text, Math.floor(Date.now() / 1000));
    expect((await send(null, { raw: text, headers })).status).toBe(200);
    const replay = await send(null, { raw: text, headers });
    expect(replay).toMatchObject({ status: 409, body: { error: { code: "replayed_request" } } });
  });

  it("accepts a timestamp 60 s off either way and refuses 61 s; a tampered body or host breaks the signature", async () => {
    const nowS = () => Math.floor(Date.now() / 1000);
    // check_ready on an address nothing listens on: past the signature check the relay answers ssh_unreachable.
    const probe = () => ({ op: "check_ready", ...target({ port: 1, host_key_sha256: null }) });
    const codeAt = async (offsetS: number) => (await send(probe(), { timestampS: nowS() + offsetS })).body.error?.code;
    expect(await codeAt(-RELAY_MAX_SKEW_S + 1)).toBe("ssh_unreachable");
    expect(await codeAt(RELAY_MAX_SKEW_S - 1)).toBe("ssh_unreachable");
    expect(await codeAt(-RELAY_MAX_SKEW_S - 2)).toBe("stale_request");
    expect(await codeAt(RELAY_MAX_SKEW_S + 2)).toBe("stale_request");

    const signed = JSON.stringify(probe());
    const headers = await signRelayBody(SECRET, signed, nowS());
    const tamperedBody = signed.replace('"username":"root"', '"username":"admin"');
    const tamperedHost = signed.replace('"host":"127.0.0.1"', '"host":"127.0.0.2"');
    expect(tamperedBody).not.toBe(signed);
    expect(tamperedHost).not.toBe(signed);
    expect((await send(null, { raw: tamperedBody, headers })).body.error.code).toBe("bad_signature");
    expect((await send(null, { raw: tamperedHost, headers })).body.error.code).toBe("bad_signature");
  });

  it("runs only allow-listed operations with safe arguments", async () => {
    const before = sshd.commands.length;
    expect((await send({ op: "run", ...target(), command: "id" })).body.error.code).toBe("validation_failed");
    expect((await send({ op: "check_ready", ...target({ nonce: "short" }) })).status).toBe(400);
    const injection = await send({ op: "launch_detached", ...target(), path: "/tmp/x; rm -rf /", log_path: "/tmp/log" });
    expect(injection).toMatchObject({ status: 400, body: { error: { code: "validation_failed" } } });
    expect((await send({ op: "read_markers", ...target(), marker_dir: "/tmp/../etc" })).status).toBe(400);
    expect((await send({ op: "check_ready", ...target({ username: "root;id" }) })).status).toBe(400);
    expect(sshd.commands.length).toBe(before);
  });

  it("refuses loopback and private targets unless allowed for local dev", async () => {
    for (const host of ["127.0.0.1", "10.1.2.3", "192.168.0.10", "::1", "169.254.169.254"]) {
      const res = await send({ op: "check_ready", ...target({ host }) }, { relayUrl: strictRelay.url });
      expect(res.status, host).toBe(403);
      expect(res.body.error.code).toBe("target_refused");
    }
  });

  it("refuses every target that is not global unicast, in every spelling", async () => {
    for (const host of [
      "::ffff:7f00:1",
      "0::ffff:127.0.0.1",
      "::ffff:127.0.0.1",
      "64:ff9b::7f00:1",
      "198.18.0.1",
      "192.0.2.10",
      "2001:db8::1",
      "fe80::1",
      "::1",
      "169.254.169.254",
    ]) {
      const res = await send({ op: "check_ready", ...target({ host }) }, { relayUrl: strictRelay.url });
      expect(res.body.error?.code, host).toBe("target_refused");
    }
  });

  it("every operation but the readiness check needs the pinned host key", async () => {
    for (const op of [
      { op: "upload_script", path: "/tmp/x.sh", script_b64: "ZWNobw==" },
      { op: "launch_detached", path: "/tmp/x.sh", log_path: "/tmp/x.log" },
      { op: "read_markers", marker_dir: "/tmp" },
    ]) {
      const res = await send({ ...op, ...target({ host_key_sha256: null }) });
      expect(res.body.error?.code, op.op).toBe("validation_failed");
    }
  });

  it("a stale timestamp is refused before the body is read", async () => {
    const { request } = await import("node:http");
    const url = new URL(`${relay.url}/v1/ops`);
    const headers = await signRelayBody(SECRET, "{}", Math.floor(Date.now() / 1000) - 3600);
    const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request({
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method: "POST",
        headers: { ...headers, "Content-Type": "application/json" },
      });
      req.on("response", (res) => {
        let body = "";
        res.on("data", (d) => (body += d));
        res.on("end", () => resolve({ status: res.statusCode!, body }));
      });
      req.on("error", reject);
      req.write('{"op":"check_ready",'); // …and the rest never comes
      setTimeout(() => reject(new Error("the relay waited for the body")), 5000).unref();
    });
    expect(answer.status).toBe(401);
    expect(JSON.parse(answer.body).error.code).toBe("stale_request");
  });

  it("a key the VPS does not accept fails with ssh_auth_failed", async () => {
    const other = await generateSshKeyPair("intruder");
    const res = await send({ op: "check_ready", ...target({ private_key: other.privateKeyPem }) });
    expect(res).toMatchObject({ status: 502, body: { error: { code: "ssh_auth_failed" } } });
  });
});
