/**
 * Bounded polling shared by the tests (Workers and Node pools), the e2e harness and the benchmark.
 * Runtime-agnostic: no Node imports, so workerd tests can use it too.
 */
export async function until<T>(
  what: string,
  timeoutMs: number,
  check: () => Promise<T | null | undefined | false>,
  intervalMs = 200,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value) return value;
    } catch (err) {
      lastError = err;
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}${lastError ? ` (${String(lastError)})` : ""}`);
}
