/**
 * `@shoal/sdk`: the TypeScript client of Shoal's HTTP API v1.
 *
 * ```ts
 * import { ShoalClient } from "@shoal/sdk";
 * const client = new ShoalClient();
 * const net = await client.networks.create({ name: "team-eval" });
 * const sb = await client.createSandbox({ rootfs: "devbox:1", networks: [{ id: net.id }] });
 * console.log((await sb.runCommand("hostname")).stdout);
 * ```
 * @module
 */

export { ShoalClient, Networks } from "./client.js";
export type { ShoalClientOptions, CreateSandboxOptions, DeleteNetworkOptions } from "./client.js";
export { Sandbox } from "./sandbox.js";
export type { CommandResult, RunCommandOptions, NetworkLike } from "./sandbox.js";
export { ProcessHandle } from "./process.js";
export type { ExecOptions, AttachOptions, StreamOptions, ExecResult, ProcessEvent, OutputEvent } from "./process.js";
export { SandboxFiles } from "./files.js";
export type { UploadData, ReadOptions, WriteOptions } from "./files.js";
export {
  ShoalError,
  ValidationError,
  AuthError,
  PermissionDeniedError,
  NotFoundError,
  ConflictError,
  UnavailableError,
  ConnectionError,
  TimeoutError,
  ConfigError,
} from "./errors.js";
export type { ShoalErrorInit } from "./errors.js";
export { DEFAULT_URL, configPath, resolveConfig } from "./config.js";
export type { ClientConfigFile, ResolvedConfig } from "./config.js";
export type * from "./types.js";
