/**
 * Artifacts in R2: binary round trips with hash checks (raw, multipart, one bigger than an R2 part),
 * ranges and validators, inline or download, limits and broken bodies leaving nothing behind, signed
 * URLs (expired, tampered, for another object or method refused), bots uploading only for the task
 * they hold, and deletes.
 */
import { env, SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import {
  ADMIN_TOKEN,
  BotSocket,
  del,
  eventually,
  expectError,
  get,
  post,
  registerBot,
  StreamSocket,
  uniqueCapability,
} from "../helpers/api";

const BASE = "http://coordinator.test";
const MiB = 1024 * 1024;

/** Deterministic bytes that are not all alike (a pattern a missing or shifted chunk would break). */
function bytes(size: number, seed = 7): Uint8Array {
  const out = new Uint8Array(size);
  let x = seed;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

async function sha256(data: Uint8Array | ArrayBuffer): Promise<string> {
  return [...new Uint8Array(await crypto.subtle.digest("SHA-256", data))].map((b) => b.toString(16).padStart(2, "0")).join("");
}

async function upload(body: BodyInit, query: string, headers: Record<string, string> = {}, token: string | null = ADMIN_TOKEN) {
  const res = await SELF.fetch(`${BASE}/api/v1/artifacts?${query}`, {
    method: "POST",
    headers: { ...(token ? { Authorization: `Bearer ${token}` } : {}), "Content-Type": "application/octet-stream", ...headers },
    body,
    // @ts-expect-error: a streamed request body (workerd accepts it; the DOM type lacks `duplex`)
    duplex: "half",
  });
  return { status: res.status, body: (await res.json()) as any, headers: res.headers };
}

const content = (id: string, headers: Record<string, string> = {}, token: string | null = ADMIN_TOKEN) =>
  SELF.fetch(`${BASE}/api/v1/artifacts/${id}/content`, { headers: { ...(token ? { Authorization: `Bearer ${token}` } : {}), ...headers } });

/** Everything the bucket holds (to see that a refused upload left nothing). */
async function bucketKeys(): Promise<string[]> {
  const listed = await env.ARTIFACTS.list({ prefix: "artifacts/" });
  return listed.objects.map((o) => o.key).sort();
}

/** A stream of `total` bytes in 64 KiB chunks that errors after `failAfter` bytes (a client gone mid-upload). */
function chunkedStream(data: Uint8Array, failAfter = Number.POSITIVE_INFINITY): ReadableStream<Uint8Array> {
  let sent = 0;
  return new ReadableStream({
    pull(controller) {
      if (sent >= failAfter) return controller.error(new Error("client went away"));
      if (sent >= data.byteLength) return controller.close();
      const chunk = data.subarray(sent, Math.min(sent + 64 * 1024, data.byteLength));
      sent += chunk.byteLength;
      controller.enqueue(chunk);
    },
  });
}

describe("artifacts", () => {
  it("round-trips binary bytes with their SHA-256, lists and filters them, and serves them with the right headers", async () => {
    const data = bytes(300_000);
    const stored = await upload(data, "name=dump.bin&kind=result");
    expect(stored.status).toBe(201);
    expect(stored.body).toMatchObject({
      name: "dump.bin",
      kind: "result",
      status: "ready",
      size: data.byteLength,
      sha256: await sha256(data),
    });
    expect(stored.headers.get("Location")).toBe(`/api/v1/artifacts/${stored.body.id}`);
    expect((await get(`/api/v1/artifacts/${stored.body.id}`)).body).toEqual(stored.body);

    const res = await content(stored.body.id);
    expect(res.status).toBe(200);
    expect(res.headers.get("Content-Type")).toBe("application/octet-stream");
    expect(res.headers.get("Content-Length")).toBe(String(data.byteLength));
    expect(res.headers.get("ETag")).toBe(`"${stored.body.sha256}"`);
    expect(res.headers.get("Accept-Ranges")).toBe("bytes");
    expect(res.headers.get("Content-Disposition")).toBe(`attachment; filename="dump.bin"; filename*=UTF-8''dump.bin`);
    expect(await sha256(await res.arrayBuffer())).toBe(stored.body.sha256);
    // Cached copy still good.
    expect((await content(stored.body.id, { "If-None-Match": `"${stored.body.sha256}"` })).status).toBe(304);

    // Images and plain text open in the browser; HTML and SVG (which can run script) are downloads.
    const png = await upload(bytes(100), "name=shot.png&kind=screenshot", { "Content-Type": "image/png" });
    expect((await content(png.body.id)).headers.get("Content-Disposition")).toMatch(/^inline; filename="shot.png"/);
    const svg = await upload("<svg/>", "name=x.svg", { "Content-Type": "image/svg+xml" });
    const svgRes = await content(svg.body.id);
    expect(svgRes.headers.get("Content-Disposition")).toMatch(/^attachment/);
    expect(svgRes.headers.get("Content-Security-Policy")).toContain("sandbox");
    const named = await upload("hi", `name=${encodeURIComponent('résumé "final".txt')}`, { "Content-Type": "text/plain" });
    expect((await content(named.body.id)).headers.get("Content-Disposition")).toBe(
      `inline; filename="r_sum_ _final_.txt"; filename*=UTF-8''${encodeURIComponent('résumé "final".txt')}`,
    );

    // Filters and pagination; a project's files are found by the project.
    const project = (await post("/api/v1/projects", { name: "Files", domain: "files.example", typeId: 2 })).body;
    const ofProject = (await upload("p", `name=brief.txt&project_id=${project.id}`, { "Content-Type": "text/plain" })).body;
    expect((await get(`/api/v1/artifacts?project_id=${project.id}`)).body.map((a: any) => a.id)).toEqual([ofProject.id]);
    expectError(await upload("p", "name=x&project_id=missing-project"), 404, "project_not_found");
    const kinds = (await get("/api/v1/artifacts?kind=screenshot&limit=200")).body.map((a: any) => a.id);
    expect(kinds).toContain(png.body.id);
    expect(kinds).not.toContain(stored.body.id);
    const first = await get("/api/v1/artifacts?limit=2");
    expect(first.body).toHaveLength(2);
    const next = await get(`/api/v1/artifacts?limit=200&cursor=${first.headers.get("X-Next-Cursor")}`);
    expect([...first.body, ...next.body].map((a: any) => a.id)).toEqual(
      (await get("/api/v1/artifacts?limit=200")).body.map((a: any) => a.id),
    );
  });

  it("serves single byte ranges (206), refuses one past the end (416), and gives the whole body for what it does not serve", async () => {
    const data = bytes(1000, 3);
    const { body: a } = await upload(data, "name=r.bin");
    const range = async (header: string) => {
      const res = await content(a.id, { Range: header });
      return {
        status: res.status,
        range: res.headers.get("Content-Range"),
        length: res.headers.get("Content-Length"),
        body: new Uint8Array(await res.arrayBuffer()),
      };
    };
    expect(await range("bytes=0-99")).toEqual({ status: 206, range: "bytes 0-99/1000", length: "100", body: data.slice(0, 100) });
    expect(await range("bytes=990-")).toEqual({ status: 206, range: "bytes 990-999/1000", length: "10", body: data.slice(990) });
    expect(await range("bytes=-5")).toEqual({ status: 206, range: "bytes 995-999/1000", length: "5", body: data.slice(995) });
    expect(await range("bytes=900-5000")).toMatchObject({ status: 206, range: "bytes 900-999/1000", length: "100" });
    const past = await content(a.id, { Range: "bytes=1000-1001" });
    expect(past.status).toBe(416);
    expect(past.headers.get("Content-Range")).toBe("bytes */1000");
    expect(((await past.json()) as any).error.code).toBe("range_not_satisfiable");
    for (const whole of ["bytes=0-1,5-6", "items=0-1", "bytes=5-2", "nonsense"]) expect((await range(whole)).status).toBe(200);
    // If-Range with another validator: the whole, current body.
    expect((await content(a.id, { Range: "bytes=0-1", "If-Range": '"stale"' })).status).toBe(200);
  });

  it("takes multipart/form-data uploads (the first file part, with fields before it), and the seed 003 aliases", async () => {
    const data = bytes(200_000, 11);
    const form = new FormData();
    form.append("kind", "input");
    form.append("file", new Blob([data], { type: "application/x-parquet" }), "rows.parquet");
    const res = await SELF.fetch(`${BASE}/api/v1/data/upload`, {
      method: "POST",
      headers: { Authorization: `Bearer ${ADMIN_TOKEN}` },
      body: form,
    });
    const body = (await res.json()) as any;
    expect(res.status).toBe(201);
    expect(body).toMatchObject({
      name: "rows.parquet",
      content_type: "application/x-parquet",
      size: data.byteLength,
      sha256: await sha256(data),
    });
    const down = await SELF.fetch(`${BASE}/api/v1/data/${body.id}/download`, { headers: { Authorization: `Bearer ${ADMIN_TOKEN}` } });
    expect(await sha256(await down.arrayBuffer())).toBe(body.sha256);

    const bad = await SELF.fetch(`${BASE}/api/v1/artifacts?name=x`, {
      method: "POST",
      headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, "Content-Type": "multipart/form-data; boundary=zzz" },
      body: '--zzz\r\nContent-Disposition: form-data; name="a"\r\n\r\nno file here\r\n--zzz--\r\n',
    });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as any).error.message).toContain("no file part");
  });

  it("streams an upload bigger than one R2 part (8 MiB) and hashes it whole", async () => {
    const data = bytes(20 * MiB, 5);
    const stored = await upload(chunkedStream(data), "name=big.bin");
    expect(stored.status).toBe(201);
    expect(stored.body).toMatchObject({ size: data.byteLength, sha256: await sha256(data) });
    const res = await content(stored.body.id);
    expect(await sha256(await res.arrayBuffer())).toBe(stored.body.sha256);
    const tail = await content(stored.body.id, { Range: `bytes=${16 * MiB - 3}-${16 * MiB + 2}` });
    expect(new Uint8Array(await tail.arrayBuffer())).toEqual(data.slice(16 * MiB - 3, 16 * MiB + 3));
  }, 60_000);

  it("an upload past the limit, or whose body ends early, is refused and leaves nothing behind", async () => {
    const keysBefore = await bucketKeys();
    const listed = (await get("/api/v1/artifacts?limit=200")).body.length;
    // Said up front.
    const declared = await SELF.fetch(`${BASE}/api/v1/artifacts?name=huge`, {
      method: "POST",
      headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, "Content-Type": "application/octet-stream", "Content-Length": String(25 * MiB) },
      body: chunkedStream(bytes(25 * MiB)),
      // @ts-expect-error: a streamed request body
      duplex: "half",
    });
    expect(declared.status).toBe(413);
    // Found out while streaming (no length given), past two R2 parts already written.
    const streamed = await upload(chunkedStream(bytes(25 * MiB)), "name=huge");
    expect(streamed.status).toBe(413);
    expect(streamed.body.error).toMatchObject({ code: "payload_too_large", details: { max_bytes: 24 * MiB } });
    // The client goes away after 9 MiB of the 12 it announced (one R2 part written by then).
    const broken = await upload(chunkedStream(bytes(12 * MiB), 9 * MiB), "name=broken", { "Content-Length": String(12 * MiB) }).catch(
      (err) => ({ status: 0, body: String(err) }),
    );
    expect([0, 400], JSON.stringify(broken)).toContain(broken.status);
    // A multipart form cut before its closing delimiter.
    const cut = await SELF.fetch(`${BASE}/api/v1/artifacts?name=cut`, {
      method: "POST",
      headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, "Content-Type": "multipart/form-data; boundary=b0" },
      body: `--b0\r\nContent-Disposition: form-data; name="f"; filename="a.bin"\r\n\r\n${"x".repeat(100_000)}`,
    });
    expect(cut.status).toBe(400);
    expect(await bucketKeys()).toEqual(keysBefore);
    expect((await get("/api/v1/artifacts?limit=200")).body.length).toBe(listed);
  }, 60_000);

  it("refuses bad input with a 4xx and stores nothing", async () => {
    const before = await bucketKeys();
    expectError(await upload("x", "name=a&kind=poster"), 400, "validation_failed");
    expectError(await upload("x", `name=${"n".repeat(300)}`), 400, "validation_failed");
    expectError(await upload("x", ""), 400, "validation_failed"); // no name
    expectError(await upload("x", "name=a&job_id=missing-job"), 404, "job_not_found");
    expectError(await upload("x", "name=a&task_id=missing-task"), 404, "task_not_found");
    expectError(await get("/api/v1/artifacts/missing"), 404, "artifact_not_found");
    expect((await content("missing")).status).toBe(404);
    expectError(await get("/api/v1/artifacts?kind=poster"), 400, "validation_failed");
    expect(await bucketKeys()).toEqual(before);
  });

  it("viewers read, admins write and delete; a delete removes the bytes too", async () => {
    const viewer = (await post("/api/v1/tokens", { kind: "viewer", name: "artifact-viewer" })).body.token;
    const { body: a } = await upload("secret report", "name=r.txt", { "Content-Type": "text/plain" });
    expect(await (await content(a.id, {}, viewer)).text()).toBe("secret report");
    expect((await content(a.id, {}, null)).status).toBe(401);
    expectError(await upload("x", "name=v", {}, viewer), 403, "forbidden");
    expectError(await del(`/api/v1/artifacts/${a.id}`, { token: viewer }), 403, "forbidden");
    expect((await del(`/api/v1/artifacts/${a.id}`)).body).toEqual({ id: a.id, deleted: true });
    expectError(await get(`/api/v1/artifacts/${a.id}`), 404, "artifact_not_found");
    expect(await env.ARTIFACTS.head(`artifacts/${a.id}`)).toBeNull();
  });

  it("a bot uploads for the task it holds through a signed URL; other tasks, other bots, tampered and expired URLs are refused", async () => {
    const cap = uniqueCapability("upload");
    const bot = await registerBot([cap], "uploader");
    const other = await registerBot([cap], "other-uploader");
    const sock = await BotSocket.open(bot.id, bot.token);
    await sock.next("connected");
    const job = (await post("/api/v1/jobs", { task: { capability: cap } })).body;
    const taskId = (await sock.next("task_assigned")).payload.task_id;
    const pendingTask = (await post("/api/v1/tasks", { capability: uniqueCapability("nobody") })).body;

    // Not its task, or not held: refused, nothing made.
    expectError(await post(`/api/v1/tasks/${taskId}/artifacts`, { name: "x.png" }, { token: other.token }), 403, "forbidden");
    expectError(await post(`/api/v1/tasks/${pendingTask.id}/artifacts`, { name: "x.png" }, { token: bot.token }), 403, "forbidden");
    expectError(await post(`/api/v1/tasks/${taskId}/artifacts`, { name: "" }, { token: bot.token }), 400, "validation_failed");
    expectError(
      await post(`/api/v1/tasks/${taskId}/artifacts`, { name: "x", content_type: "png" }, { token: bot.token }),
      400,
      "validation_failed",
    );

    const started = await post(
      `/api/v1/tasks/${taskId}/artifacts`,
      { name: "shot.png", content_type: "image/png", kind: "screenshot" },
      { token: bot.token },
    );
    expect(started.status).toBe(201);
    expect(started.body.artifact).toMatchObject({ status: "pending", job_id: job.id, task_id: taskId, uploaded_by: bot.id });
    const { url, method } = started.body.upload;
    expect(method).toBe("PUT");
    // Pending: not listed, no content yet.
    expect((await get(`/api/v1/artifacts?task_id=${taskId}`)).body).toEqual([]);

    const data = bytes(5000, 9);
    const put = (path: string, body: BodyInit = data) =>
      SELF.fetch(`${BASE}${path}`, { method: "PUT", body, headers: { "Content-Type": "image/png" } });
    const tampered = url.replace(/signature=([0-9a-f])/, (_: string, c: string) => `signature=${c === "0" ? "1" : "0"}`);
    expect((await put(tampered)).status).toBe(403);
    expect((await put(url.replace(/expires=\d+/, (m: string) => `${m}1`))).status).toBe(403);
    // The same signature names one method: it does not download.
    expect((await SELF.fetch(`${BASE}${url}`)).status).toBe(403);
    // Another artifact's URL does not fill this one.
    const stored = await put(url);
    expect(stored.status).toBe(200);
    expect((await stored.json()) as any).toMatchObject({ status: "ready", size: 5000, sha256: await sha256(data) });
    expect((await put(url)).status).toBe(409); // once
    expect(await sha256(await (await content(started.body.artifact.id)).arrayBuffer())).toBe(await sha256(data));
    expect((await get(`/api/v1/artifacts?job_id=${job.id}`)).body.map((a: any) => a.id)).toEqual([started.body.artifact.id]);

    // Expired: the URL stops working after ARTIFACT_URL_TTL_S (3 s in the tests).
    const late = (await post(`/api/v1/tasks/${taskId}/artifacts`, { name: "late.txt" }, { token: bot.token })).body;
    await new Promise((r) => setTimeout(r, 3200));
    const expired = await put(late.upload.url, "too late");
    expect(expired.status).toBe(403);
    expect(((await expired.json()) as any).error.details.reason).toBe("expired");
    sock.close();
  }, 20_000);
});

describe("artifacts in jobs", () => {
  it("a job's inputs reach its bot as signed download URLs; its result names its outputs; a screenshot is an event of its stream", async () => {
    const cap = uniqueCapability("job-files");
    const bot = await registerBot([cap], "job-files-bot");
    const sock = await BotSocket.open(bot.id, bot.token);
    await sock.next("connected");
    const input = bytes(70_000, 21);
    const { body: stored } = await upload(input, "name=input.bin&kind=input");

    // An unknown input: refused, no job made.
    const jobsBefore = (await get("/api/v1/jobs?limit=200")).body.length;
    expectError(
      await post("/api/v1/jobs", { task: { capability: cap }, input_artifact_ids: [stored.id, "missing"] }),
      404,
      "artifact_not_found",
    );
    expectError(await post("/api/v1/jobs", { task: { capability: cap }, input_artifact_ids: "x" }), 400, "validation_failed");
    expect((await get("/api/v1/jobs?limit=200")).body.length).toBe(jobsBefore);

    const job = (await post("/api/v1/jobs", { task: { capability: cap }, input_artifact_ids: [stored.id] })).body;
    expect(job.input_artifact_ids).toEqual([stored.id]);
    const stream = await StreamSocket.open(`/api/v1/ws/jobs/${job.id}`);
    const assigned = (await sock.next("task_assigned")).payload;
    expect(assigned.input_artifacts).toHaveLength(1);
    const given = assigned.input_artifacts[0];
    expect(given).toMatchObject({ id: stored.id, name: "input.bin", size: input.byteLength, sha256: stored.sha256 });
    // The bot downloads it with no token.
    const fetched = await SELF.fetch(`${BASE}${given.url}`);
    expect(fetched.status).toBe(200);
    expect(await sha256(await fetched.arrayBuffer())).toBe(stored.sha256);
    // The signature is for this artifact only.
    const { body: other } = await upload("other", "name=o.txt");
    expect((await SELF.fetch(`${BASE}${given.url.replace(stored.id, other.id)}`)).status).toBe(403);

    // It uploads a screenshot and an output, and names the output in its result.
    const png = bytes(2048, 33);
    const shot = (
      await post(
        `/api/v1/tasks/${assigned.task_id}/artifacts`,
        { name: "page.png", content_type: "image/png", kind: "screenshot" },
        { token: bot.token },
      )
    ).body;
    expect((await SELF.fetch(`${BASE}${shot.upload.url}`, { method: "PUT", body: png })).status).toBe(200);
    const event = await stream.waitFor("the screenshot event", (m) => m.type === "screenshot");
    expect(event.data).toMatchObject({ artifact_id: shot.artifact.id, content_type: "image/png", size: 2048, task_id: assigned.task_id });
    const downloaded = await content(event.data.artifact_id);
    expect(new Uint8Array(await downloaded.arrayBuffer())).toEqual(png);

    const out = (
      await post(
        `/api/v1/tasks/${assigned.task_id}/artifacts`,
        { name: "out.csv", content_type: "text/csv", kind: "result" },
        { token: bot.token },
      )
    ).body;
    expect((await SELF.fetch(`${BASE}${out.upload.url}`, { method: "PUT", body: "a,b\n1,2\n" })).status).toBe(200);
    await sock.complete(assigned.task_id, { rows: 1, result_artifact_ids: [out.artifact.id, "not-an-artifact"] });
    await eventually(async () => (await get(`/api/v1/jobs/${job.id}`)).body.status === "completed", 5000, "the job's end");

    const result = (await get(`/api/v1/jobs/${job.id}/result`)).body;
    expect(result.result_artifacts).toEqual([
      expect.objectContaining({
        id: out.artifact.id,
        name: "out.csv",
        kind: "result",
        download_url: `/api/v1/artifacts/${out.artifact.id}/content`,
      }),
    ]);
    expect(result.result_data_id).toBe(out.artifact.id);
    expect(result.artifacts.map((a: any) => a.id)).toEqual([shot.artifact.id, out.artifact.id]);
    expect(await (await content(result.result_data_id)).text()).toBe("a,b\n1,2\n");
    sock.close();
    stream.close();
  }, 20_000);

  it("seed 003's execute?input_data_id= gives every step of the workflow the file", async () => {
    const cap = uniqueCapability("wf-files");
    const bot = await registerBot([cap], "wf-files-bot");
    const sock = await BotSocket.open(bot.id, bot.token);
    await sock.next("connected");
    const { body: data } = await upload("rows", "name=rows.txt", { "Content-Type": "text/plain" });
    const workflow = (await post("/api/v1/workflows", { name: "with data", capability: cap, task_payloads: [{ s: 1 }, { s: 2 }] })).body;
    expectError(await post(`/api/v1/workflows/${workflow.id}/execute?input_data_id=missing`, {}), 404, "artifact_not_found");
    const job = await post(`/api/v1/workflows/${workflow.id}/execute?input_data_id=${data.id}`, {});
    expect(job.status).toBe(202);
    expect(job.body.input_artifact_ids).toEqual([data.id]);
    for (let step = 0; step < 2; step++) {
      const assigned = (await sock.next("task_assigned")).payload;
      expect(assigned.input_artifacts.map((a: any) => a.id)).toEqual([data.id]);
      expect(await (await SELF.fetch(`${BASE}${assigned.input_artifacts[0].url}`)).text()).toBe("rows");
      await sock.complete(assigned.task_id);
    }
    sock.close();
  });
});
