/** Keyset pagination, newest first, over (created_at, id). */
import { and, desc, eq, lt, or, type SQL } from "drizzle-orm";
import type { SQLiteColumn } from "drizzle-orm/sqlite-core";
import { fromBase64Url, toBase64Url } from "../crypto/encoding";
import { AppError } from "../errors";

export interface Cursor {
  createdAt: number;
  id: string;
}

function encodeCursor(c: Cursor): string {
  return toBase64Url(new TextEncoder().encode(`${c.createdAt}:${c.id}`));
}

export function decodeCursor(raw: string | undefined): Cursor | null {
  if (!raw) return null;
  try {
    const text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(fromBase64Url(raw));
    const sep = text.indexOf(":");
    const createdAt = Number(text.slice(0, sep));
    const id = text.slice(sep + 1);
    if (sep < 1 || !Number.isSafeInteger(createdAt) || !id) throw new Error("malformed");
    return { createdAt, id };
  } catch {
    throw new AppError("validation_failed", "cursor is not one this API returned", { field: "cursor" });
  }
}

export function afterCursor(cols: { createdAt: SQLiteColumn; id: SQLiteColumn }, cursor: Cursor | null): SQL | undefined {
  if (!cursor) return undefined;
  return or(lt(cols.createdAt, cursor.createdAt), and(eq(cols.createdAt, cursor.createdAt), lt(cols.id, cursor.id)));
}

export const newestFirst = (cols: { createdAt: SQLiteColumn; id: SQLiteColumn }) => [desc(cols.createdAt), desc(cols.id)];

/** Fetch `limit + 1` rows; the extra one only says whether there is a next page. */
export function page<T extends { createdAt: number; id: string }>(rows: T[], limit: number): { items: T[]; nextCursor: string | null } {
  const items = rows.slice(0, limit);
  const last = items[items.length - 1];
  return { items, nextCursor: rows.length > limit && last ? encodeCursor(last) : null };
}
