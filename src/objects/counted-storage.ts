/**
 * A Durable Object's storage with its writes counted (put, delete, deleteAll, setAlarm, deleteAlarm: each
 * call one, however many keys it carries). A write is a commit the object's output waits for, so on a
 * bot's hot path they are counted, not estimated: the object's own count (tests read it) and this
 * isolate's (`GET /api/v1/_bench/d1` under BENCH_MODE; under wrangler dev the Worker and its objects
 * share one isolate, as for the D1 counter in db/client.ts).
 */
export interface WriteCount {
  count: number;
}

/** Storage writes made by the objects of this isolate that count theirs. */
export const storageWrites: WriteCount = { count: 0 };

const WRITES = new Set<PropertyKey>(["put", "delete", "deleteAll", "setAlarm", "deleteAlarm"]);

export function countingWrites(storage: DurableObjectStorage, own: WriteCount): DurableObjectStorage {
  // A Proxy, not Object.create: the storage's methods are the runtime's own and need it as `this`.
  // Each method is wrapped once, not on every call (the bot's hot path reads its storage through this).
  const methods = new Map<PropertyKey, (...args: unknown[]) => unknown>();
  const methodOf = (prop: PropertyKey, fn: (...args: unknown[]) => unknown) => {
    let method = methods.get(prop);
    if (!method) {
      const bound = fn.bind(storage);
      method = WRITES.has(prop)
        ? (...args: unknown[]) => {
            own.count++;
            storageWrites.count++;
            return bound(...args);
          }
        : bound;
      methods.set(prop, method);
    }
    return method;
  };
  return new Proxy(storage, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop);
      return typeof value === "function" ? methodOf(prop, value as (...args: unknown[]) => unknown) : value;
    },
  });
}
