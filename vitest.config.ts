/**
 * Two projects:
 * - `workers`: unit + integration tests inside workerd (miniflare) via the Workers pool;
 * - `e2e`: Node-pool tests that run real processes (wrangler dev, bot clients).
 */
import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-pool-workers";
import { defineConfig } from "vitest/config";

// No network beyond loopback: miniflare must not fetch the `cf` object from Cloudflare.
process.env.CLOUDFLARE_CF_FETCH_ENABLED = "false";

export const TEST_ADMIN_TOKEN = "test-admin-token-0123456789abcdef";

export default defineConfig(async () => {
  const migrations = await readD1Migrations("./migrations");
  return {
    test: {
      projects: [
        {
          plugins: [
            cloudflareTest(async ({ inject }) => ({
              main: "./src/index.ts",
              wrangler: { configPath: "./wrangler.toml" },
              miniflare: {
                bindings: {
                  // Stand-ins, relay and a local SSH "VPS" started by test/helpers/deploy-services.ts.
                  ...inject("deployEnv"),
                  TEST_MIGRATIONS: migrations,
                  ADMIN_TOKEN: TEST_ADMIN_TOKEN,
                  // Short windows so timeouts, grace and retries are observable in seconds.
                  // The reconnect tests reconnect well inside it and assert so; the lost-bot tests wait it out.
                  BOT_RECONNECT_GRACE_S: "2",
                  RETRY_BASE_DELAY_MS: "300",
                  RETRY_MAX_DELAY_MS: "600",
                  LOG_LEVEL: "warn",
                  // Small enough to test the limit with a 24 MiB body, big enough for a multipart (8 MiB parts) upload.
                  ARTIFACT_MAX_BYTES: String(24 * 1024 * 1024),
                  // Signed URLs expire in seconds, so the expiry is observable.
                  ARTIFACT_URL_TTL_S: "3",
                  // As configured by default (on); `D1_GROUP_COMMIT=off npm test` runs every suite without the writer.
                  D1_GROUP_COMMIT: process.env.D1_GROUP_COMMIT ?? "on",
                },
              },
            })),
          ],
          test: {
            name: "workers",
            globalSetup: ["./test/helpers/deploy-services.ts"],
            include: ["test/unit/**/*.test.ts", "test/integration/**/*.test.ts"],
            setupFiles: ["./test/helpers/setup.ts"],
            testTimeout: 20_000,
          },
        },
        {
          test: {
            name: "node",
            include: ["test/node/**/*.test.ts", "relay/test/**/*.test.ts", "test/e2e/**/*.test.ts"],
            environment: "node",
            pool: "forks",
            testTimeout: 60_000, // e2e tests that wait longer say so, with the sum of their waits
            hookTimeout: 120_000,
            fileParallelism: false,
          },
        },
      ],
    },
  };
});
