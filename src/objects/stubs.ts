/** The one place each Durable Object is addressed: by name, so the object knows its own id (`ctx.id.name`). */
export const botSession = (env: Env, botId: string) => env.BOT_SESSION.getByName(botId);

export const deploymentRunner = (env: Env, deploymentId: string) => env.DEPLOYMENT_RUNNER.getByName(deploymentId);

/** `job:<id>`, `project:<id>`, `deployment:<id>` or `fleet` (core/stream.ts). */
export const eventStream = (env: Env, stream: string) => env.EVENT_STREAM.getByName(stream);

export const scheduleRunner = (env: Env, scheduleId: string) => env.SCHEDULE_RUNNER.getByName(scheduleId);

/** `token:<id>` or `capability:<name>`. */
export const rateLimiter = (env: Env, subject: string) => env.RATE_LIMITER.getByName(subject);

/** The one group-commit writer in front of D1 (objects/d1-writer.ts). */
export const d1Writer = (env: Env) => env.D1_WRITER.getByName("d1");
