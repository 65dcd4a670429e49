/** Relay entry point (container CMD, or `npm start` locally). */
import { startRelay } from "./server";

const secret = process.env.RELAY_SECRET ?? "";
if (secret.length < 16) {
  console.error(JSON.stringify({ level: "error", component: "relay", msg: "RELAY_SECRET (16+ characters) is required" }));
  process.exit(2);
}
const allowPrivateTargets = process.env.RELAY_ALLOW_PRIVATE_TARGETS === "1";

async function main() {
  const relay = await startRelay({
    secret,
    port: Number(process.env.RELAY_PORT ?? 8080),
    host: process.env.RELAY_HOST ?? "0.0.0.0",
    allowPrivateTargets,
  });
  console.log(
    JSON.stringify({
      level: allowPrivateTargets ? "warn" : "info",
      component: "relay",
      msg: "relay listening",
      url: relay.url,
      allow_private_targets: allowPrivateTargets,
    }),
  );
  for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => relay.close().then(() => process.exit(0)));
}

main().catch((err) => {
  console.error(JSON.stringify({ level: "error", component: "relay", msg: String(err) }));
  process.exit(1);
});
