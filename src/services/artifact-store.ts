/**
 * Streams an upload into R2 without holding it whole: the body is read chunk by chunk, hashed as it
 * goes (SHA-256), and written in fixed 8 MiB parts of an R2 multipart upload (a body that fits one part
 * is one plain put). Memory stays about one part whatever the size. Past `maxBytes`, or if the body
 * ends early (the client went away), the upload is aborted and nothing is left in the bucket.
 */
import { AppError } from "../errors";

/** R2 wants every part but the last of one size, at least 5 MiB. */
export const PART_BYTES = 8 * 1024 * 1024;

export interface Stored {
  size: number;
  sha256: string;
  /** The most bytes held at once (about one part: the proof that nothing was held whole). */
  bufferedPeakBytes: number;
}

/** Collects chunks until a part's worth is there, then hands out exact parts. */
class PartBuffer {
  private chunks: Uint8Array[] = [];
  bytes = 0;

  push(chunk: Uint8Array): void {
    this.chunks.push(chunk);
    this.bytes += chunk.byteLength;
  }

  /** The first `size` bytes (or all, if fewer), removed from the buffer. */
  take(size: number): Uint8Array {
    const out = new Uint8Array(Math.min(size, this.bytes));
    let filled = 0;
    while (filled < out.byteLength) {
      const head = this.chunks[0]!;
      const need = out.byteLength - filled;
      if (head.byteLength <= need) {
        out.set(head, filled);
        filled += head.byteLength;
        this.chunks.shift();
      } else {
        out.set(head.subarray(0, need), filled);
        this.chunks[0] = head.subarray(need);
        filled += need;
      }
    }
    this.bytes -= out.byteLength;
    return out;
  }
}

const hex = (buf: ArrayBuffer) => [...new Uint8Array(buf)].map((b) => b.toString(16).padStart(2, "0")).join("");

export async function storeStream(
  bucket: R2Bucket,
  key: string,
  body: ReadableStream<Uint8Array>,
  opts: {
    maxBytes: number;
    contentType: string /** `Content-Length`, when the client said it: fewer bytes is an upload cut short. */;
    expectedBytes?: number;
  },
): Promise<Stored> {
  const digest = new crypto.DigestStream("SHA-256");
  const hashWriter = digest.getWriter();
  const buffer = new PartBuffer();
  const httpMetadata = { contentType: opts.contentType };
  let upload: R2MultipartUpload | null = null;
  const parts: R2UploadedPart[] = [];
  let size = 0;
  let bufferedPeakBytes = 0;
  const reader = body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read().catch(() => {
        throw new AppError("bad_request", "the upload's body ended before it was complete", { received_bytes: size });
      });
      if (done) break;
      size += value.byteLength;
      if (size > opts.maxBytes) {
        throw new AppError("payload_too_large", `artifacts are limited to ${opts.maxBytes} bytes`, { max_bytes: opts.maxBytes });
      }
      await hashWriter.write(value);
      buffer.push(value);
      bufferedPeakBytes = Math.max(bufferedPeakBytes, buffer.bytes);
      while (buffer.bytes >= PART_BYTES) {
        upload ??= await bucket.createMultipartUpload(key, { httpMetadata });
        parts.push(await upload.uploadPart(parts.length + 1, buffer.take(PART_BYTES)));
      }
    }
    if (opts.expectedBytes !== undefined && size !== opts.expectedBytes) {
      throw new AppError("bad_request", "the upload's body ended before it was complete", {
        received_bytes: size,
        expected_bytes: opts.expectedBytes,
      });
    }
    await hashWriter.close();
    const sha256 = hex(await digest.digest);
    if (upload) {
      if (buffer.bytes > 0) parts.push(await upload.uploadPart(parts.length + 1, buffer.take(buffer.bytes)));
      await upload.complete(parts);
    } else {
      await bucket.put(key, buffer.take(buffer.bytes), { httpMetadata, sha256 });
    }
    return { size, sha256, bufferedPeakBytes };
  } catch (err) {
    reader.cancel().catch(() => {});
    await upload?.abort().catch(() => {});
    throw err;
  }
}
