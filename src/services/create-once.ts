/**
 * Idempotent create, one way for every resource: with a key, the resource
 * already stored under it is returned; otherwise it is inserted, and an insert
 * that loses a race on the key's unique index re-reads the winner's resource.
 * So N parallel creates with one key make exactly one resource.
 */
export interface CreateOnce<T> {
  /** From `Idempotency-Key` or the body's `idempotency_key`; none means always create. */
  key: string | undefined;
  find: (key: string) => Promise<T | undefined>;
  /** Inserts and returns the new resource; throws on a unique-key violation. */
  insert: () => Promise<T>;
}

export async function createOnce<T>({ key, find, insert }: CreateOnce<T>): Promise<{ resource: T; created: boolean }> {
  if (key) {
    const existing = await find(key);
    if (existing !== undefined) return { resource: existing, created: false };
  }
  try {
    return { resource: await insert(), created: true };
  } catch (err) {
    const winner = key ? await find(key) : undefined;
    if (winner !== undefined) return { resource: winner, created: false };
    throw err;
  }
}
