/**
 * The coordinator's side of the SSH relay: signs one allow-listed operation
 * (see contracts/relay.ts) and says whether a failure is worth retrying.
 */
import { type RelayOp, type RelayResult, signRelayBody } from "../contracts/relay";
import { ProviderError } from "./http";

export class RelayError extends ProviderError {
  constructor(
    readonly code: string,
    message: string,
    transient: boolean,
  ) {
    super(message, transient);
  }
}

/** Signs and sends one relay operation. */
export class RelayClient {
  constructor(
    private readonly secret: string,
    /** Delivers one signed request to the relay (a local URL in dev, the container in production). */
    private readonly send: (init: RequestInit) => Promise<Response>,
  ) {}

  async run<R extends RelayResult>(req: RelayOp): Promise<R> {
    const body = JSON.stringify({ ...req, nonce: crypto.randomUUID() });
    const headers = await signRelayBody(this.secret, body, Math.floor(Date.now() / 1000));
    let res: Response;
    try {
      res = await this.send({
        method: "POST",
        headers: { "Content-Type": "application/json", ...headers },
        body,
        signal: AbortSignal.timeout(60_000),
      });
    } catch (err) {
      throw new RelayError("relay_unreachable", `relay unreachable: ${(err as Error).message}`, true);
    }
    // A body that is not our JSON envelope (a proxy's error page) is reported by its HTTP status below.
    const json = (await res.json().catch(() => null)) as { ok: boolean; result?: R; error?: { code: string; message: string } } | null;
    if (json?.ok && json.result) return json.result;
    const code = json?.error?.code ?? `http_${res.status}`;
    // SSH not up yet or a flaky network is worth retrying; a wrong host key or a refused request is not.
    const transient = code === "ssh_unreachable" || code === "internal_error" || (res.status >= 500 && code.startsWith("http_"));
    throw new RelayError(code, json?.error?.message ?? `relay answered ${res.status}`, transient);
  }
}
