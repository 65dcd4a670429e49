/** Worker entry: exports only. */
import { createApp } from "./app";
import { createCtx } from "./services/context";
import { flushMetrics } from "./services/metrics";
import { sweep } from "./services/sweeper";

export { BotSession } from "./objects/bot-session";
export { D1Writer } from "./objects/d1-writer";
export { DeploymentRunner } from "./objects/deployment-runner";
export { EventStream } from "./objects/event-stream";
export { MetricsStore } from "./objects/metrics-store";
export { RateLimiter } from "./objects/rate-limiter";
export { RelayContainer } from "./objects/relay-container";
export { ScheduleRunner } from "./objects/schedule-runner";

const app = createApp();

export default {
  fetch: app.fetch,
  async scheduled(controller, env, ctx) {
    const sweepCtx = createCtx(env, { component: "sweeper", cron: controller.cron });
    ctx.waitUntil(sweep(sweepCtx).finally(() => flushMetrics(sweepCtx, true)));
  },
} satisfies ExportedHandler<Env>;
