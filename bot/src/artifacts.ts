/**
 * A handler's files: `upload` asks the coordinator for a signed URL for the task this bot holds
 * (`POST /api/v1/tasks/{id}/artifacts`, with the bot's own token) and PUTs the bytes there — a Buffer,
 * or a stream sent as it is read; `download` fetches an input the task was given (its URL is signed).
 */
import type { Readable } from "node:stream";
import type { AssignedArtifact } from "../../src/contracts/ws";

export interface UploadedArtifact {
  id: string;
  name: string;
  content_type: string;
  size: number;
  sha256: string;
}

export type ArtifactKind = "file" | "result" | "log" | "screenshot";

/** How long one upload or download may take before it is given up. */
const TRANSFER_TIMEOUT_MS = 10 * 60_000;

export class ArtifactTransfer {
  constructor(
    private readonly baseUrl: string,
    private readonly token: string,
  ) {}

  async upload(
    taskId: string,
    name: string,
    data: Uint8Array | Readable,
    contentType = "application/octet-stream",
    kind: ArtifactKind = "file",
  ): Promise<UploadedArtifact> {
    const started = await fetch(new URL(`/api/v1/tasks/${encodeURIComponent(taskId)}/artifacts`, this.baseUrl), {
      method: "POST",
      headers: { Authorization: `Bearer ${this.token}`, "Content-Type": "application/json" },
      body: JSON.stringify({ name, content_type: contentType, kind }),
      signal: AbortSignal.timeout(30_000),
    });
    const answer = (await started.json()) as { upload?: { url: string }; error?: { message: string } };
    if (started.status !== 201 || !answer.upload)
      throw new Error(`upload of ${name} refused (${started.status}): ${answer.error?.message}`);
    const isBuffer = data instanceof Uint8Array;
    const put = await fetch(new URL(answer.upload.url, this.baseUrl), {
      method: "PUT",
      headers: { "Content-Type": contentType, ...(isBuffer ? { "Content-Length": String(data.byteLength) } : {}) },
      body: isBuffer ? data : (data as unknown as ReadableStream),
      // Node's fetch streams a body only in half-duplex mode.
      ...(isBuffer ? {} : { duplex: "half" }),
      signal: AbortSignal.timeout(TRANSFER_TIMEOUT_MS),
    } as RequestInit);
    const stored = (await put.json()) as UploadedArtifact & { error?: { message: string } };
    if (put.status !== 200) throw new Error(`upload of ${name} failed (${put.status}): ${stored.error?.message}`);
    return { id: stored.id, name: stored.name, content_type: stored.content_type, size: stored.size, sha256: stored.sha256 };
  }

  async download(artifact: AssignedArtifact): Promise<Uint8Array> {
    const res = await fetch(new URL(artifact.url, this.baseUrl), { signal: AbortSignal.timeout(TRANSFER_TIMEOUT_MS) });
    if (res.status !== 200) throw new Error(`download of ${artifact.name} failed (${res.status})`);
    return new Uint8Array(await res.arrayBuffer());
  }
}
