/**
 * A streaming reader of `multipart/form-data` (RFC 7578) for uploads: text fields before the file are
 * read (small, bounded), the first file part is handed out as a stream that ends at its delimiter, so
 * a 100 MiB form is never held in memory (hono's and the runtime's formData() would hold it whole).
 */
import { AppError } from "../errors";

const MAX_HEADER_BYTES = 16 * 1024;
const MAX_FIELD_BYTES = 64 * 1024;
const MAX_FIELDS = 20;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

export interface MultipartFile {
  filename: string | null;
  contentType: string;
  /** Text fields that came before the file. */
  fields: Record<string, string>;
  stream: ReadableStream<Uint8Array>;
}

function indexOfBytes(hay: Uint8Array, needle: Uint8Array, from = 0): number {
  const first = needle[0];
  outer: for (let i = hay.indexOf(first!, from); i !== -1 && i <= hay.length - needle.length; i = hay.indexOf(first!, i + 1)) {
    for (let j = 1; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

const concat = (a: Uint8Array, b: Uint8Array) => {
  const out = new Uint8Array(a.byteLength + b.byteLength);
  out.set(a);
  out.set(b, a.byteLength);
  return out;
};

const malformed = (why: string) => new AppError("validation_failed", `malformed multipart/form-data: ${why}`, { field: "body" });

/** The body's bytes, with lookahead: read until a needle, or hand the rest on. */
class ByteSource {
  buf = new Uint8Array(0);
  ended = false;
  constructor(readonly reader: ReadableStreamDefaultReader<Uint8Array>) {}

  async more(): Promise<boolean> {
    if (this.ended) return false;
    const { done, value } = await this.reader.read();
    if (done) {
      this.ended = true;
      return false;
    }
    this.buf = concat(this.buf, value);
    return true;
  }

  /** The bytes before `needle` (consumed with it), at most `max`. */
  async until(needle: Uint8Array, max: number, what: string): Promise<Uint8Array> {
    for (;;) {
      const at = indexOfBytes(this.buf, needle);
      if (at >= 0) {
        const before = this.buf.slice(0, at);
        this.buf = this.buf.slice(at + needle.length);
        return before;
      }
      if (this.buf.byteLength > max + needle.length) throw malformed(`${what} is longer than ${max} bytes`);
      if (!(await this.more())) throw malformed(`the body ended inside ${what}`);
    }
  }

  async exactly(n: number): Promise<Uint8Array> {
    while (this.buf.byteLength < n) if (!(await this.more())) throw malformed("the body ended early");
    const out = this.buf.slice(0, n);
    this.buf = this.buf.slice(n);
    return out;
  }
}

function boundaryOf(contentType: string): string {
  const m = /boundary=(?:"([^"]{1,70})"|([^;\s]{1,70}))/i.exec(contentType);
  if (!m) throw malformed("no boundary in Content-Type");
  return (m[1] ?? m[2])!;
}

function partHeaders(raw: string) {
  const headers = new Map<string, string>();
  for (const line of raw.split("\r\n")) {
    const colon = line.indexOf(":");
    if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  const disposition = headers.get("content-disposition") ?? "";
  const param = (name: string) => new RegExp(`;\\s*${name}="([^"]*)"`, "i").exec(disposition)?.[1] ?? null;
  return { name: param("name"), filename: param("filename"), contentType: headers.get("content-type") ?? "application/octet-stream" };
}

export async function firstFile(body: ReadableStream<Uint8Array>, contentType: string): Promise<MultipartFile> {
  const boundary = boundaryOf(contentType);
  const dashBoundary = encoder.encode(`--${boundary}`);
  const delimiter = encoder.encode(`\r\n--${boundary}`);
  const src = new ByteSource(body.getReader());
  await src.until(dashBoundary, MAX_HEADER_BYTES, "the preamble");
  const fields: Record<string, string> = {};
  for (let part = 0; part <= MAX_FIELDS; part++) {
    const after = decoder.decode(await src.exactly(2));
    if (after === "--") throw malformed("no file part");
    if (after !== "\r\n") throw malformed("a boundary not followed by CRLF");
    const head = partHeaders(decoder.decode(await src.until(encoder.encode("\r\n\r\n"), MAX_HEADER_BYTES, "a part's headers")));
    if (head.filename === null) {
      const value = await src.until(delimiter, MAX_FIELD_BYTES, `field '${head.name}'`);
      if (head.name) fields[head.name] = decoder.decode(value);
      continue;
    }
    return { filename: head.filename || null, contentType: head.contentType, fields, stream: fileStream(src, delimiter) };
  }
  throw malformed(`more than ${MAX_FIELDS} fields before the file`);
}

/** The file part's bytes up to its delimiter; anything after (more parts, the epilogue) is not read. */
function fileStream(src: ByteSource, delimiter: Uint8Array): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      for (;;) {
        const at = indexOfBytes(src.buf, delimiter);
        if (at >= 0) {
          if (at > 0) controller.enqueue(src.buf.slice(0, at));
          src.buf = new Uint8Array(0);
          controller.close();
          src.reader.cancel().catch(() => {});
          return;
        }
        // Keep what could be the start of a delimiter split across chunks.
        const safe = src.buf.byteLength - (delimiter.byteLength - 1);
        if (safe > 0) {
          controller.enqueue(src.buf.slice(0, safe));
          src.buf = src.buf.slice(safe);
          return;
        }
        if (!(await src.more())) return controller.error(new Error("the body ended inside the file part"));
      }
    },
    cancel() {
      src.reader.cancel().catch(() => {});
    },
  });
}
