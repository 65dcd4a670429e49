// Secrets are not in wrangler.toml, so `wrangler types` cannot see them.
declare namespace Cloudflare {
  interface Env {
    /** Admin API token (secret). `npm start` writes one to .dev.vars. */
    ADMIN_TOKEN?: string;
    /** Shared with the SSH relay; signs every relay request. */
    RELAY_SECRET?: string;
  }
}
