/** Worker entry: exports only. */
import { createApp } from "./app";
import { createCtx } from "./services/context";
import { sweep } from "./services/sweeper";

export { BotSession } from "./objects/bot-session";
export { DeploymentRunner } from "./objects/deployment-runner";
export { EventStream } from "./objects/event-stream";
export { RelayContainer } from "./objects/relay-container";

const app = createApp();

export default {
  fetch: app.fetch,
  async scheduled(controller, env, ctx) {
    ctx.waitUntil(sweep(createCtx(env, { component: "sweeper", cron: controller.cron })));
  },
} satisfies ExportedHandler<Env>;
