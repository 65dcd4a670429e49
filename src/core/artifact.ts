/**
 * Artifacts' rules, without I/O: kinds, how content is served (inline or as a download), byte ranges,
 * and what a signed URL signs. Stored bytes live in R2, metadata in D1 (db/artifacts.ts).
 */

export const ARTIFACT_KINDS = ["file", "input", "result", "log", "screenshot"] as const;
export type ArtifactKind = (typeof ARTIFACT_KINDS)[number];

/** `pending`: created for a signed upload, no bytes yet; `ready`: stored and hashed. */
export const ARTIFACT_STATUSES = ["pending", "ready"] as const;

/** What a signed URL may do: one method on one artifact's content. */
export type SignedMethod = "GET" | "PUT";

/** The exact text an artifact URL's signature covers. */
export const signedText = (method: SignedMethod, artifactId: string, expiresMs: number) => `${method}\n${artifactId}\n${expiresMs}`;

/**
 * Shown in the browser only if it cannot run script there: raster images and plain text. Everything
 * else (HTML, SVG, PDF, archives, …) is a download, so an uploaded page never runs on the API's origin.
 */
export function servedInline(contentType: string): boolean {
  const type = contentType.split(";")[0]!.trim().toLowerCase();
  return type === "text/plain" || (/^image\/(png|jpeg|gif|webp|avif|bmp)$/.test(type) && type !== "image/svg+xml");
}

/** `Content-Disposition` for a download: the name as typed (RFC 5987), an ASCII fallback for old clients. */
export function contentDisposition(contentType: string, name: string): string {
  const ascii = name.replace(/[^\x20-\x7e]|["\\]/g, "_");
  return `${servedInline(contentType) ? "inline" : "attachment"}; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(name)}`;
}

export type RangeAnswer = { kind: "whole" } | { kind: "part"; offset: number; length: number } | { kind: "unsatisfiable" };

/**
 * One `Range: bytes=…` of a `size`-byte body (RFC 9110 §14.1.2): `a-b`, `a-` or `-n`. Anything this
 * does not serve as one part (several ranges, another unit, a malformed header) gets the whole body,
 * as the RFC allows; a range wholly past the end is unsatisfiable (416).
 */
export function parseRange(header: string | undefined | null, size: number): RangeAnswer {
  if (!header) return { kind: "whole" };
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === "" && m[2] === "")) return { kind: "whole" };
  if (m[1] === "") {
    const suffix = Number(m[2]);
    if (suffix === 0) return { kind: "unsatisfiable" };
    const length = Math.min(suffix, size);
    return size === 0 ? { kind: "unsatisfiable" } : { kind: "part", offset: size - length, length };
  }
  const start = Number(m[1]);
  const end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size) return { kind: "unsatisfiable" };
  if (end < start) return { kind: "whole" };
  return { kind: "part", offset: start, length: end - start + 1 };
}
