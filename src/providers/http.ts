/** One fetch wrapper for provider APIs: timeouts, JSON, and errors that say whether a retry may help. */

export class ProviderError extends Error {
  constructor(
    message: string,
    /** 5xx, 429 and network failures: the stage machine retries these. */
    readonly transient: boolean,
    readonly status: number | null = null,
  ) {
    super(message);
    this.name = "ProviderError";
  }
}

export interface JsonRequest {
  method: "GET" | "POST" | "PUT" | "DELETE";
  url: string;
  headers?: Record<string, string>;
  body?: unknown;
  timeoutMs?: number;
}

export async function requestJson<T>(req: JsonRequest, fetchImpl: typeof fetch = fetch): Promise<T> {
  const bodyText = req.body === undefined ? undefined : JSON.stringify(req.body);
  let res: Response;
  try {
    res = await fetchImpl(req.url, {
      method: req.method,
      headers: { Accept: "application/json", ...(bodyText !== undefined ? { "Content-Type": "application/json" } : {}), ...req.headers },
      body: bodyText,
      signal: AbortSignal.timeout(req.timeoutMs ?? 30_000),
    });
  } catch (err) {
    throw new ProviderError(`${req.method} ${new URL(req.url).pathname}: ${(err as Error).message}`, true);
  }
  const text = await res.text();
  if (!res.ok) {
    const transient = res.status >= 500 || res.status === 429;
    throw new ProviderError(`${req.method} ${new URL(req.url).pathname} → ${res.status}: ${text.slice(0, 300)}`, transient, res.status);
  }
  return (text ? JSON.parse(text) : null) as T;
}

/** Runs a delete/destroy call; a 404 means it is already gone, which is what the caller wanted. */
export async function ignoreNotFound(call: () => Promise<unknown>): Promise<void> {
  try {
    await call();
  } catch (err) {
    if (err instanceof ProviderError && err.status === 404) return;
    throw err;
  }
}
