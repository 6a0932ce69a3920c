/**
 * Where the client finds the API (same order as the CLI and the Rust SDK): explicit options,
 * then `SHOAL_URL` / `SHOAL_API_KEY`, then the client config file that `shoal up` writes on
 * first start, then the default URL.
 * @module
 */

import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";

import { ConfigError } from "./errors.js";

export const DEFAULT_URL = "http://127.0.0.1:7070";

/** The client config file's contents (`{"url": …, "api_key": …}`, mode 0600). */
export interface ClientConfigFile {
  url?: string;
  api_key?: string;
}

export interface ResolvedConfig {
  url: string;
  apiKey: string;
}

function env(name: string): string | undefined {
  const v = process.env[name];
  return v === undefined || v === "" ? undefined : v;
}

/** `SHOAL_CONFIG`, else `$XDG_CONFIG_HOME/shoal/config.json`, else `~/.config/shoal/config.json`. */
export function configPath(): string {
  const explicit = env("SHOAL_CONFIG");
  if (explicit !== undefined) return explicit;
  const base = env("XDG_CONFIG_HOME") ?? join(env("HOME") ?? homedir(), ".config");
  return join(base, "shoal", "config.json");
}

/** The client config file, or `undefined` when it is missing. A file that is not valid JSON is an error. */
export function loadConfigFile(path: string = configPath()): ClientConfigFile | undefined {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === "ENOENT" || code === "ENOTDIR") return undefined;
    throw new ConfigError({ status: 0, code: "config", message: `cannot read the client config ${path}: ${(e as Error).message}`, cause: e });
  }
  try {
    const parsed: unknown = JSON.parse(text);
    if (parsed === null || typeof parsed !== "object") throw new Error("not a JSON object");
    const o = parsed as Record<string, unknown>;
    const out: ClientConfigFile = {};
    if (typeof o.url === "string" && o.url !== "") out.url = o.url;
    if (typeof o.api_key === "string" && o.api_key !== "") out.api_key = o.api_key;
    return out;
  } catch (e) {
    throw new ConfigError({
      status: 0,
      code: "config",
      message: `the client config ${path} is not valid: ${(e as Error).message}; fix it or delete it (\`shoal up\` writes a new one)`,
      cause: e,
    });
  }
}

/** Explicit values win, then the environment, then the file; the URL defaults to {@link DEFAULT_URL}. */
export function resolveConfig(opts: { url?: string | undefined; apiKey?: string | undefined } = {}): ResolvedConfig {
  let file: ClientConfigFile | undefined;
  let fileLoaded = false;
  const fromFile = (): ClientConfigFile | undefined => {
    if (!fileLoaded) {
      file = loadConfigFile();
      fileLoaded = true;
    }
    return file;
  };
  const url = opts.url || env("SHOAL_URL") || fromFile()?.url || DEFAULT_URL;
  const apiKey = opts.apiKey || env("SHOAL_API_KEY") || fromFile()?.api_key;
  if (!apiKey) {
    throw new ConfigError({
      status: 0,
      code: "config",
      message: `no Shoal API key: pass \`apiKey\`, set SHOAL_API_KEY, or start \`shoal up\` once so that it writes ${configPath()}`,
    });
  }
  return { url: url.replace(/\/+$/, ""), apiKey };
}
