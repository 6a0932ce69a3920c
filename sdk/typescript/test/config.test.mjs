// Where the client finds URL and key: options, then env, then the config file, then the default.
// No server needed.
import assert from "node:assert/strict";
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, beforeEach, describe, test } from "node:test";

import { ConfigError, DEFAULT_URL, ShoalClient, ShoalError, configPath } from "../dist/index.js";

const VARS = ["SHOAL_URL", "SHOAL_API_KEY", "SHOAL_CONFIG", "XDG_CONFIG_HOME", "HOME"];
const saved = Object.fromEntries(VARS.map((v) => [v, process.env[v]]));
const dir = mkdtempSync(join(tmpdir(), "shoal-ts-config-"));

function restore() {
  for (const v of VARS) {
    if (saved[v] === undefined) delete process.env[v];
    else process.env[v] = saved[v];
  }
}

describe("client configuration", () => {
  beforeEach(() => {
    restore();
    delete process.env.SHOAL_URL;
    delete process.env.SHOAL_API_KEY;
    process.env.SHOAL_CONFIG = join(dir, "missing.json");
  });
  after(() => {
    restore();
    rmSync(dir, { recursive: true, force: true });
  });

  test("options win over env and file; trailing slashes are dropped", () => {
    process.env.SHOAL_URL = "http://10.0.0.1:1";
    process.env.SHOAL_API_KEY = "from-env";
    const c = new ShoalClient({ url: "http://127.0.0.1:9999///", apiKey: "k" });
    assert.equal(c.url, "http://127.0.0.1:9999");
  });

  test("env wins over the file; the URL defaults", () => {
    const p = join(dir, "env-vs-file.json");
    writeFileSync(p, JSON.stringify({ url: "http://127.0.0.1:1234", api_key: "from-file" }));
    process.env.SHOAL_CONFIG = p;
    process.env.SHOAL_URL = "http://127.0.0.1:4321";
    assert.equal(new ShoalClient().url, "http://127.0.0.1:4321");
    delete process.env.SHOAL_URL;
    assert.equal(new ShoalClient().url, "http://127.0.0.1:1234", "URL from the file");
    process.env.SHOAL_API_KEY = "from-env";
    process.env.SHOAL_CONFIG = join(dir, "missing.json");
    assert.equal(new ShoalClient().url, DEFAULT_URL);
  });

  test("an empty env var counts as unset", () => {
    process.env.SHOAL_URL = "";
    process.env.SHOAL_API_KEY = "k";
    assert.equal(new ShoalClient().url, DEFAULT_URL);
  });

  test("no key anywhere: a ConfigError that says what to do", () => {
    assert.throws(() => new ShoalClient(), (e) => {
      assert.ok(e instanceof ConfigError && e instanceof ShoalError);
      assert.equal(e.code, "config");
      assert.equal(e.status, 0);
      assert.match(e.message, /SHOAL_API_KEY/);
      assert.match(e.message, /missing\.json/);
      return true;
    });
  });

  test("config path: SHOAL_CONFIG, else XDG_CONFIG_HOME, else ~/.config", () => {
    assert.equal(configPath(), join(dir, "missing.json"));
    delete process.env.SHOAL_CONFIG;
    process.env.XDG_CONFIG_HOME = join(dir, "xdg");
    assert.equal(configPath(), join(dir, "xdg", "shoal", "config.json"));
    mkdirSync(join(dir, "xdg", "shoal"), { recursive: true });
    writeFileSync(configPath(), JSON.stringify({ url: "http://127.0.0.1:5555/", api_key: "xdg-key" }), { mode: 0o600 });
    assert.equal(new ShoalClient().url, "http://127.0.0.1:5555");
    delete process.env.XDG_CONFIG_HOME;
    process.env.HOME = join(dir, "home");
    assert.equal(configPath(), join(dir, "home", ".config", "shoal", "config.json"));
  });

  test("a broken config file is a ConfigError naming the file", () => {
    const p = join(dir, "broken.json");
    writeFileSync(p, "{not json");
    process.env.SHOAL_CONFIG = p;
    assert.throws(() => new ShoalClient(), (e) => e instanceof ConfigError && e.message.includes(p));
    // ...but it is not read when options and env already say everything.
    process.env.SHOAL_API_KEY = "k";
    process.env.SHOAL_URL = "http://127.0.0.1:1";
    assert.equal(new ShoalClient().url, "http://127.0.0.1:1");
  });

  test("bad options are refused", () => {
    assert.throws(() => new ShoalClient({ apiKey: "k", timeoutMs: 0 }), RangeError);
    assert.throws(() => new ShoalClient({ apiKey: "k", retries: -1 }), RangeError);
  });
});
