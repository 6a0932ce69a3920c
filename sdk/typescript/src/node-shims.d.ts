// The few Node.js built-ins this package uses, declared here so that the package builds with
// `typescript` as its only dev dependency (no @types/node). Not part of the published types.
declare module "node:fs" {
  export function readFileSync(path: string, encoding: "utf8"): string;
}
declare module "node:os" {
  export function homedir(): string;
}
declare module "node:path" {
  export function join(...parts: string[]): string;
}
declare const process: { env: Record<string, string | undefined> };
