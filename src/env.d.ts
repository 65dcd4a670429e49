// Secrets are not in wrangler.toml, so `wrangler types` cannot see them.
declare namespace Cloudflare {
  interface Env {
    /** Admin API token (secret). `npm start` writes one to .dev.vars. */
    ADMIN_TOKEN?: string;
    /** Shared with the SSH relay; signs every relay request. */
    RELAY_SECRET?: string;
    /** Seals SSH keys and OpenRouter secrets at rest; signs setup callbacks. */
    DEPLOY_SECRET_KEY?: string;
    HETZNER_TOKEN?: string;
    OVH_APP_KEY?: string;
    OVH_APP_SECRET?: string;
    OVH_CONSUMER_KEY?: string;
    OPENROUTER_PROVISIONING_KEY?: string;
    /** Optional settings (wrangler.toml [vars] or --var). */
    VPS_PROVIDER?: string;
    PROVIDER_API_URL?: string;
    OPENROUTER_API_URL?: string;
    OPENROUTER_KEY_LIMIT_USD?: string;
    STANDINS_URL?: string;
    RELAY_URL?: string;
    PUBLIC_URL?: string;
    DEPLOY_POLL_INTERVAL_S?: string;
    SETUP_TIMEOUT_S?: string;
    VPS_SSH_PORT?: string;
    VPS_SSH_USERNAME?: string;
    SETUP_MARKER_DIR?: string;
    SETUP_INSTALL_DIR?: string;
    OPENCLAW_BIN?: string;
    SETUP_HOME_DIR?: string;
    PROJECT_INIT_PROMPT?: string;
    PROJECT_INIT_TIMEOUT_S?: string;
    RETENTION_DAYS?: string;
    /** Signs artifact URLs (secret; without it, a key derived from ADMIN_TOKEN). */
    ARTIFACT_SIGNING_KEY?: string;
    /** Largest artifact accepted, in bytes (default 100 MiB). */
    ARTIFACT_MAX_BYTES?: string;
    /** How long a signed artifact URL works (default 900 s). */
    ARTIFACT_URL_TTL_S?: string;
    /** Bot health: the sliding window (default 1800 s), and the score below which a bot is quarantined (0.3). */
    BOT_HEALTH_WINDOW_S?: string;
    BOT_QUARANTINE_BELOW?: string;
    /** Default limits of every admin, viewer and metrics token without its own (`/rate-limits`); unset: none. */
    RATE_LIMIT_REQUESTS_PER_SECOND?: string;
    /** Requests a token may make at once above its rate (default: one second's worth, at least 1). */
    RATE_LIMIT_BURST?: string;
    RATE_LIMIT_TASKS_PER_MINUTE?: string;
    /** "off": guarded batches go straight to D1, not through the group-commit writer (default on; see config.ts). */
    D1_GROUP_COMMIT?: string;
    /** "1": the benchmark's D1 round-trip counter is readable at /api/v1/_bench/d1. */
    BENCH_MODE?: string;
  }
}
