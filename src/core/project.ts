/**
 * Projects (seed 000), pure: types, statuses, the initialization prompt and
 * where the project lives on its bot.
 */
export const PROJECT_STATUSES = ["creating", "ready", "failed"] as const;
export type ProjectStatus = (typeof PROJECT_STATUSES)[number];

/** Seed 000's project types (`typeId`). Only websites are initialized by an OpenClaw run; the others are ready at once. */
export const PROJECT_TYPES = [
  { id: 1, name: "website", initialized: true },
  { id: 2, name: "telegrambot", initialized: false },
  { id: 3, name: "discordbot", initialized: false },
  { id: 4, name: "tradingbot", initialized: false },
  { id: 5, name: "scheduler", initialized: false },
  { id: 6, name: "custom", initialized: false },
] as const;

export const projectType = (typeId: number) => PROJECT_TYPES.find((t) => t.id === typeId);

/** Seed 000's wording without its machine-specific paths (DECISIONS). Placeholders: {name}, {description}, {domain}. */
export const DEFAULT_PROJECT_INIT_PROMPT =
  "Initialize website project. Project name: {name} Domain: {domain} Description: {description} " +
  "Select the best frontend template. Set up the backend and its database. Configure environment variables. Verify the deployment.";

export function initPrompt(template: string, p: { name: string; description: string | null; domain: string }): string {
  const values: Record<string, string> = { name: p.name, description: p.description ?? "", domain: p.domain };
  return template.replace(/\{(name|description|domain)\}/g, (_, key: string) => values[key] ?? "");
}

/** A directory name from a domain: lower case letters, digits, dots and dashes; never empty, never `.`/`..`. */
export function projectSlug(domain: string): string {
  const slug = domain
    .toLowerCase()
    .replace(/[^a-z0-9.-]+/g, "-")
    .replace(/^[.-]+|[.-]+$/g, "")
    .slice(0, 100);
  return slug && !/^\.+$/.test(slug) ? slug : "project";
}

/** What a finished initialization run makes of its project. */
export const projectStatusAfterJob = (jobStatus: "completed" | "failed" | "cancelled"): ProjectStatus =>
  jobStatus === "completed" ? "ready" : "failed";
