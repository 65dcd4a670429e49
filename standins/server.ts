/**
 * Local stand-ins for the services a deployment talks to, on one HTTP port:
 *   /hetzner/v1/…      Hetzner Cloud API (Bearer token)
 *   /ovh/1.0/…         OVHcloud API (signed requests)
 *   /openrouter/api/v1/…  OpenRouter key management (Bearer provisioning key)
 *   /_standin/state    what was bought and created (for tests: exactly one VPS, one key)
 * They follow the providers' documented request and response shapes, check
 * auth, and "deliver" servers whose IP is a configured local address (where
 * a real SSH server listens in dev and e2e). Used by `npm start` and by the
 * adapter tests.
 */
import { createHash } from "node:crypto";
import { appendFileSync, existsSync, readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { StateStore } from "./state";

export interface StandinOptions {
  port?: number;
  host?: string;
  stateFile?: string | null;
  /** IP the delivered VPSes get (127.0.0.1 where a local sshd plays the VPS). */
  vpsIp?: string;
  hetznerToken?: string;
  ovh?: { appKey: string; appSecret: string; consumerKey: string };
  openrouterKey?: string;
  /** Where "delivered" servers get their SSH keys installed (the local SSH server's authorized_keys). */
  authorizedKeysFile?: string;
  /** How long OVH takes to deliver an order and a rebuild/Hetzner action takes to finish. */
  deliveryDelayMs?: number;
  actionDelayMs?: number;
}

export const STANDIN_DEFAULTS = {
  hetznerToken: "standin-hetzner-token",
  ovh: { appKey: "standin-app-key", appSecret: "standin-app-secret", consumerKey: "standin-consumer-key" },
  openrouterKey: "standin-openrouter-provisioning-key",
};

type Handler = (
  req: IncomingMessage,
  // biome-ignore lint/suspicious/noExplicitAny: a stand-in reads whatever JSON its client sent, as the real API would
  body: any,
  params: Record<string, string>,
  url: URL,
) => { status: number; body: unknown } | Promise<{ status: number; body: unknown }>;

const json = (status: number, body: unknown) => ({ status, body });
const notFound = (what: string) => json(404, { error: { code: "not_found", message: `${what} not found` } });

export interface RunningStandins {
  url: string;
  server: Server;
  store: StateStore;
  close(): Promise<void>;
}

export async function startStandins(opts: StandinOptions = {}): Promise<RunningStandins> {
  const store = new StateStore(opts.stateFile ?? null);
  const s = () => store.state;
  const vpsIp = opts.vpsIp ?? "127.0.0.1";
  const hetznerToken = opts.hetznerToken ?? STANDIN_DEFAULTS.hetznerToken;
  const ovhCreds = opts.ovh ?? STANDIN_DEFAULTS.ovh;
  const openrouterKey = opts.openrouterKey ?? STANDIN_DEFAULTS.openrouterKey;
  const deliveryDelayMs = opts.deliveryDelayMs ?? 0;
  const installKey = (publicKey: string | undefined) => {
    if (!opts.authorizedKeysFile || !publicKey) return;
    const existing = existsSync(opts.authorizedKeysFile) ? readFileSync(opts.authorizedKeysFile, "utf8") : "";
    if (!existing.includes(publicKey.trim())) appendFileSync(opts.authorizedKeysFile, `${publicKey.trim()}\n`, { mode: 0o600 });
  };
  const actionDelayMs = opts.actionDelayMs ?? 0;
  const routes: { method: string; pattern: RegExp; keys: string[]; auth: "hetzner" | "ovh" | "openrouter" | "none"; handler: Handler }[] =
    [];
  const route = (method: string, path: string, auth: "hetzner" | "ovh" | "openrouter" | "none", handler: Handler) => {
    const keys: string[] = [];
    const pattern = new RegExp(
      `^${path.replace(/\{(\w+)\}/g, (_, k: string) => {
        keys.push(k);
        return "([^/]+)";
      })}$`,
    );
    routes.push({ method, pattern, keys, auth, handler });
  };

  // ---- Hetzner Cloud
  const hServer = (x: StandinState["hetzner"]["servers"][number]) => ({
    id: x.id,
    name: x.name,
    status: x.status,
    created: x.created,
    server_type: { name: x.server_type },
    datacenter: { location: { name: x.location } },
    public_net: { ipv4: { ip: x.ip } },
    labels: {},
  });
  const hAction = (a: { id: number; command: string; status: string; startedAtMs?: number }) => ({
    id: a.id,
    command: a.command,
    status: a.status,
    progress: a.status === "success" ? 100 : 0,
    started: new Date(a.startedAtMs ?? 0).toISOString(),
  });
  /** A running action finishes once its time has come (read on every look, like Hetzner's own progress). */
  const settle = (action: StandinState["hetzner"]["actions"][number]) => {
    if (action.status === "running" && Date.now() >= action.readyAtMs) {
      action.status = "success";
      store.save();
    }
    return action;
  };
  route("GET", "/hetzner/v1/server_types", "hetzner", (_r, _b, _p, url) => {
    const all = [
      { id: 104, name: "cx22", description: "CX22", prices: [{ location: "fsn1" }, { location: "nbg1" }, { location: "hel1" }] },
      { id: 105, name: "cx32", description: "CX32", prices: [{ location: "fsn1" }, { location: "nbg1" }] },
    ];
    const name = url.searchParams.get("name");
    return json(200, { server_types: name ? all.filter((t) => t.name === name) : all });
  });
  route("GET", "/hetzner/v1/ssh_keys", "hetzner", (_r, _b, _p, url) => {
    const name = url.searchParams.get("name");
    return json(200, { ssh_keys: s().hetzner.sshKeys.filter((k) => !name || k.name === name) });
  });
  route("POST", "/hetzner/v1/ssh_keys", "hetzner", (_r, body) => {
    if (!body?.name || !body?.public_key)
      return json(400, { error: { code: "invalid_input", message: "name and public_key are required" } });
    if (s().hetzner.sshKeys.some((k) => k.name === body.name))
      return json(409, { error: { code: "uniqueness_error", message: "SSH key with the same name already exists" } });
    const key = { id: store.nextId(), name: body.name, public_key: body.public_key };
    s().hetzner.sshKeys.push(key);
    store.save();
    return json(201, { ssh_key: key });
  });
  route("DELETE", "/hetzner/v1/ssh_keys/{id}", "hetzner", (_r, _b, p) => {
    const i = s().hetzner.sshKeys.findIndex((k) => String(k.id) === p.id);
    if (i < 0) return json(404, { error: { code: "not_found", message: "ssh key not found" } });
    s().hetzner.sshKeys.splice(i, 1);
    store.save();
    return json(204, undefined);
  });
  route("GET", "/hetzner/v1/servers", "hetzner", (_r, _b, _p, url) => {
    const name = url.searchParams.get("name");
    return json(200, {
      servers: s()
        .hetzner.servers.filter((x) => !name || x.name === name)
        .map(hServer),
    });
  });
  route("POST", "/hetzner/v1/servers", "hetzner", (_r, body) => {
    for (const field of ["name", "server_type", "image"])
      if (!body?.[field]) return json(400, { error: { code: "invalid_input", message: `${field} is required` } });
    if (s().hetzner.servers.some((x) => x.name === body.name))
      return json(409, { error: { code: "uniqueness_error", message: "server name is already used" } });
    const server = {
      id: store.nextId(),
      name: body.name,
      server_type: body.server_type,
      location: body.location ?? "fsn1",
      status: "running",
      ip: vpsIp,
      ssh_keys: body.ssh_keys ?? [],
      created: new Date().toISOString(),
    };
    s().hetzner.servers.push(server);
    for (const keyId of server.ssh_keys) installKey(s().hetzner.sshKeys.find((k) => k.id === keyId)?.public_key);
    const action = {
      id: store.nextId(),
      command: "create_server",
      server: server.id,
      startedAtMs: Date.now(),
      readyAtMs: Date.now() + actionDelayMs,
      status: "running" as const,
    };
    s().hetzner.actions.push(action);
    store.save();
    return json(201, { server: hServer(server), action: hAction(action), root_password: null });
  });
  route("GET", "/hetzner/v1/servers/{id}", "hetzner", (_r, _b, p) => {
    const server = s().hetzner.servers.find((x) => String(x.id) === p.id);
    return server ? json(200, { server: hServer(server) }) : notFound("server");
  });
  route("DELETE", "/hetzner/v1/servers/{id}", "hetzner", (_r, _b, p) => {
    const i = s().hetzner.servers.findIndex((x) => String(x.id) === p.id);
    if (i < 0) return notFound("server");
    s().hetzner.servers.splice(i, 1);
    store.save();
    return json(200, { action: hAction({ id: store.nextId(), command: "delete_server", status: "success" }) });
  });
  route("POST", "/hetzner/v1/servers/{id}/actions/rebuild", "hetzner", (_r, body, p) => {
    const server = s().hetzner.servers.find((x) => String(x.id) === p.id);
    if (!server) return notFound("server");
    if (!body?.image) return json(400, { error: { code: "invalid_input", message: "image is required" } });
    // A rebuild reinstalls the OS with the server's SSH keys.
    for (const keyId of server.ssh_keys) installKey(s().hetzner.sshKeys.find((k) => k.id === keyId)?.public_key);
    const action = {
      id: store.nextId(),
      command: "rebuild_server",
      server: server.id,
      startedAtMs: Date.now(),
      readyAtMs: Date.now() + actionDelayMs,
      status: "running" as const,
    };
    s().hetzner.actions.push(action);
    store.save();
    return json(201, { action: hAction(action), root_password: null });
  });
  route("GET", "/hetzner/v1/actions/{id}", "hetzner", (_r, _b, p) => {
    const action = s().hetzner.actions.find((a) => String(a.id) === p.id);
    if (!action) return notFound("action");
    return json(200, { action: hAction(settle(action)) });
  });
  // The server's actions, newest first with sort=id:desc (what a resumed rebuild looks for).
  route("GET", "/hetzner/v1/servers/{id}/actions", "hetzner", (_r, _b, p, url) => {
    if (!s().hetzner.servers.some((x) => String(x.id) === p.id)) return notFound("server");
    const actions = s()
      .hetzner.actions.filter((a) => String(a.server) === p.id)
      .map(settle)
      .sort((a, b) => (url.searchParams.get("sort") === "id:desc" ? b.id - a.id : a.id - b.id));
    return json(200, { actions: actions.map(hAction), meta: { pagination: { page: 1, per_page: 25, total_entries: actions.length } } });
  });

  // ---- OVHcloud
  const vpsOf = (name: string) => s().ovh.orders.find((o) => o.vps === name && !s().ovh.terminated.includes(name));
  route("GET", "/ovh/1.0/auth/time", "none", () => json(200, Math.floor(Date.now() / 1000)));
  route("GET", "/ovh/1.0/order/catalog/public/vps", "ovh", () =>
    json(200, {
      plans: [
        {
          planCode: "vps-le-2-2-40",
          invoiceName: "VPS Le 2-2-40",
          configurations: [{ name: "vps_datacenter", values: ["GRA", "SBG", "BHS"] }],
        },
        { planCode: "vps-2025-model1", invoiceName: "VPS-1", configurations: [{ name: "vps_datacenter", values: ["GRA", "WAW"] }] },
      ],
    }),
  );
  route("POST", "/ovh/1.0/order/cart", "ovh", (_r, body) => {
    const cartId = `cart-${store.nextId()}`;
    s().ovh.carts[cartId] = { description: body?.description ?? "", items: [] };
    store.save();
    return json(200, { cartId, description: body?.description ?? "" });
  });
  route("POST", "/ovh/1.0/order/cart/{cart}/vps", "ovh", (_r, body, p) => {
    const cart = s().ovh.carts[p.cart!];
    if (!cart) return notFound("cart");
    const itemId = store.nextId();
    cart.items.push({ itemId, planCode: body.planCode });
    store.save();
    return json(200, { itemId, cartId: p.cart });
  });
  route("POST", "/ovh/1.0/order/cart/{cart}/item/{item}/configuration", "ovh", (_r, body, p) => {
    const item = s().ovh.carts[p.cart!]?.items.find((i) => String(i.itemId) === p.item);
    if (!item) return notFound("item");
    if (body.label === "vps_datacenter") item.datacenter = body.value;
    store.save();
    return json(200, { id: store.nextId(), label: body.label, value: body.value });
  });
  route("POST", "/ovh/1.0/order/cart/{cart}/assign", "ovh", (_r, _b, p) => (s().ovh.carts[p.cart!] ? json(200, null) : notFound("cart")));
  route("POST", "/ovh/1.0/order/cart/{cart}/checkout", "ovh", (_r, _b, p) => {
    const cart = s().ovh.carts[p.cart!];
    if (!cart?.items[0]) return notFound("cart");
    const orderId = store.nextId();
    s().ovh.orders.push({
      orderId,
      description: cart.description,
      planCode: cart.items[0].planCode,
      datacenter: cart.items[0].datacenter ?? "GRA",
      createdAtMs: Date.now(),
      vps: `vps-${orderId}.vps.ovh.net`,
      cancelled: false,
    });
    delete s().ovh.carts[p.cart!];
    store.save();
    return json(200, { orderId, url: `https://www.ovh.com/cgi-bin/order/display-order.cgi?orderId=${orderId}`, prices: {} });
  });
  route("GET", "/ovh/1.0/me/order", "ovh", (_r, _b, _p, url) => {
    const description = url.searchParams.get("description");
    return json(
      200,
      s()
        .ovh.orders.filter((o) => !description || o.description === description)
        .map((o) => o.orderId),
    );
  });
  route("GET", "/ovh/1.0/me/order/{id}/status", "ovh", (_r, _b, p) => {
    const order = s().ovh.orders.find((o) => String(o.orderId) === p.id);
    if (!order) return notFound("order");
    return json(200, order.cancelled ? "cancelled" : Date.now() - order.createdAtMs >= deliveryDelayMs ? "delivered" : "delivering");
  });
  route("GET", "/ovh/1.0/me/order/{id}/associatedObject", "ovh", (_r, _b, p) => {
    const order = s().ovh.orders.find((o) => String(o.orderId) === p.id);
    if (!order || Date.now() - order.createdAtMs < deliveryDelayMs) return notFound("associated object");
    return json(200, { type: "VPS", id: order.vps });
  });
  route("GET", "/ovh/1.0/vps/{name}", "ovh", (_r, _b, p) =>
    vpsOf(p.name!) ? json(200, { name: p.name, state: "running", model: {} }) : notFound("vps"),
  );
  route("GET", "/ovh/1.0/vps/{name}/ips", "ovh", (_r, _b, p) => (vpsOf(p.name!) ? json(200, [vpsIp, "2001:db8::1"]) : notFound("vps")));
  route("GET", "/ovh/1.0/vps/{name}/images/available", "ovh", (_r, _b, p) =>
    vpsOf(p.name!) ? json(200, ["img-debian12", "img-ubuntu2404"]) : notFound("vps"),
  );
  route("GET", "/ovh/1.0/vps/{name}/images/available/{img}", "ovh", (_r, _b, p) =>
    json(200, { id: p.img, name: p.img === "img-ubuntu2404" ? "Ubuntu 24.04" : "Debian 12" }),
  );
  route("POST", "/ovh/1.0/vps/{name}/rebuild", "ovh", (_r, body, p) => {
    if (!vpsOf(p.name!)) return notFound("vps");
    if (!body?.imageId) return json(400, { message: "imageId is required" });
    installKey(body.publicSshKey);
    const task = { id: store.nextId(), vps: p.name!, type: "rebuildVm", createdAtMs: Date.now(), readyAtMs: Date.now() + actionDelayMs };
    s().ovh.tasks.push(task);
    store.save();
    return json(200, { id: task.id, type: "rebuildVm", state: "todo" });
  });
  route("GET", "/ovh/1.0/vps/{name}/tasks", "ovh", (_r, _b, p, url) => {
    if (!vpsOf(p.name!)) return notFound("vps");
    const type = url.searchParams.get("type");
    return json(
      200,
      s()
        .ovh.tasks.filter((t) => t.vps === p.name && (!type || t.type === type))
        .map((t) => t.id),
    );
  });
  route("GET", "/ovh/1.0/vps/{name}/tasks/{id}", "ovh", (_r, _b, p) => {
    const task = s().ovh.tasks.find((t) => String(t.id) === p.id && t.vps === p.name);
    if (!task) return notFound("task");
    const state = Date.now() >= task.readyAtMs ? "done" : "doing";
    return json(200, { id: task.id, type: task.type ?? "rebuildVm", state, date: new Date(task.createdAtMs ?? 0).toISOString() });
  });
  route("POST", "/ovh/1.0/vps/{name}/terminate", "ovh", (_r, _b, p) => {
    if (!vpsOf(p.name!)) return notFound("vps");
    s().ovh.terminated.push(p.name!);
    store.save();
    return json(200, null);
  });

  // ---- OpenRouter key management
  route("GET", "/openrouter/api/v1/keys", "openrouter", (_r, _b, _p, url) => {
    const offset = Number(url.searchParams.get("offset") ?? 0);
    return json(200, {
      data: s()
        .openrouter.keys.slice(offset, offset + 100)
        .map((k) => ({ ...k, label: `sk-or-v1-${k.hash.slice(0, 3)}...`, disabled: false, usage: 0 })),
    });
  });
  route("POST", "/openrouter/api/v1/keys", "openrouter", (_r, body) => {
    if (!body?.name) return json(400, { error: { code: 400, message: "name is required" } });
    const hash = createHash("sha256").update(`${body.name}:${store.nextId()}`).digest("hex");
    const key = { hash, name: body.name, limit: body.limit ?? null, created_at: new Date().toISOString() };
    s().openrouter.keys.push(key);
    store.save();
    return json(201, { data: { ...key, label: `sk-or-v1-${hash.slice(0, 3)}...`, disabled: false, usage: 0 }, key: `sk-or-v1-${hash}` });
  });
  route("DELETE", "/openrouter/api/v1/keys/{hash}", "openrouter", (_r, _b, p) => {
    const i = s().openrouter.keys.findIndex((k) => k.hash === p.hash);
    if (i < 0) return json(404, { error: { code: 404, message: "key not found" } });
    s().openrouter.keys.splice(i, 1);
    store.save();
    return json(200, { deleted: true });
  });

  route("GET", "/_standin/state", "none", () => json(200, s()));
  /** Test control: answer a route late, e.g. {"POST /hetzner/v1/servers": 4000}, to catch the caller mid-request. {} resets. */
  const latencyMs = new Map<string, number>();
  route("POST", "/_standin/latency", "none", (_r, body) => {
    latencyMs.clear();
    for (const [key, ms] of Object.entries((body ?? {}) as Record<string, number>)) latencyMs.set(key, Number(ms));
    return json(200, Object.fromEntries(latencyMs));
  });

  const checkAuth = (kind: string, req: IncomingMessage, rawBody: string, fullUrl: string): string | null => {
    if (kind === "none") return null;
    if (kind === "hetzner") return req.headers.authorization === `Bearer ${hetznerToken}` ? null : "unauthorized";
    if (kind === "openrouter") return req.headers.authorization === `Bearer ${openrouterKey}` ? null : "unauthorized";
    const ts = String(req.headers["x-ovh-timestamp"] ?? "");
    const expected = `$1$${createHash("sha1").update([ovhCreds.appSecret, ovhCreds.consumerKey, req.method, fullUrl, rawBody, ts].join("+")).digest("hex")}`;
    if (req.headers["x-ovh-application"] !== ovhCreds.appKey || req.headers["x-ovh-consumer"] !== ovhCreds.consumerKey)
      return "invalid application or consumer key";
    if (Math.abs(Number(ts) - Date.now() / 1000) > 60) return "timestamp out of range";
    return req.headers["x-ovh-signature"] === expected ? null : "invalid signature";
  };

  const server = createServer(async (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks).toString("utf8");
    const url = new URL(req.url ?? "/", `http://${req.headers.host}`);
    const reply = (status: number, body: unknown) => {
      res.writeHead(status, { "Content-Type": "application/json" });
      res.end(body === undefined ? "" : JSON.stringify(body));
    };
    for (const r of routes) {
      const m = r.method === req.method ? r.pattern.exec(url.pathname) : null;
      if (!m) continue;
      const authError = checkAuth(r.auth, req, raw, url.toString());
      if (authError) return reply(r.auth === "ovh" ? 403 : 401, { error: { code: "unauthorized", message: authError } });
      let body: unknown = null;
      try {
        body = raw ? JSON.parse(raw) : null;
      } catch {
        return reply(400, { error: { code: "invalid_json", message: "body is not JSON" } });
      }
      const params = Object.fromEntries(r.keys.map((k, i) => [k, decodeURIComponent(m[i + 1]!)]));
      const lateMs = latencyMs.get(`${req.method} ${url.pathname}`);
      if (lateMs) await new Promise((resolve) => setTimeout(resolve, lateMs));
      try {
        const out = await r.handler(req, body, params, url);
        return reply(out.status, out.body);
      } catch (err) {
        return reply(500, { error: { code: "standin_error", message: String(err) } });
      }
    }
    reply(404, { error: { code: "not_found", message: `no stand-in route for ${req.method} ${url.pathname}` } });
  });
  await new Promise<void>((resolve) => server.listen(opts.port ?? 0, opts.host ?? "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://${opts.host ?? "127.0.0.1"}:${port}`,
    server,
    store,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

type StandinState = StateStore["state"];
