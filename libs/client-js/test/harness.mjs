// Real parts for the SDK's tests: a private redis-server, Goldwire processes from the
// project's Python environment, and a TCP proxy that plays the load balancer in front of the
// gateways. Nothing is mocked: the SDK talks to a real gateway over a real socket.
//
// GOLDWIRE_PYTHON names the Python that has goldwire installed (default: the repository's
// .venv). REDIS_SERVER names the redis-server binary (default: the one on PATH).
import { spawn } from "node:child_process";
import { createHmac, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import net from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";

import { Goldwire, memoryStorage } from "../dist/goldwire.js";

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, "..", "..", "..");
export const PYTHON = process.env.GOLDWIRE_PYTHON ?? join(repo, ".venv", "bin", "python");
const REDIS_SERVER = process.env.REDIS_SERVER ?? "redis-server";
export const SECRET = "sdk-test-secret-" + randomBytes(16).toString("hex");
export const API_KEY = "sdk-test-key";

if (!existsSync(PYTHON)) {
  throw new Error(`no Python with goldwire at ${PYTHON}: run \`make venv\` or set GOLDWIRE_PYTHON`);
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Resolve when `check()` is truthy; fail after `timeout` ms saying what was awaited. */
export async function until(check, what, timeout = 10000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** The next `event` from an emitter (`on` returns an unsubscribe function). */
export function next(emitter, event, timeout = 10000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no ${event} event in ${timeout} ms`));
    }, timeout);
    const off = emitter.on(event, (value) => {
      clearTimeout(timer);
      off();
      resolve(value);
    });
  });
}

function onExit(proc) {
  return new Promise((resolve) => {
    if (proc.exitCode !== null || proc.signalCode !== null) resolve();
    else proc.once("exit", () => resolve());
  });
}

/** A private redis-server on a free port, keeping nothing on disk. */
export async function startRedis() {
  const port = await freePort();
  const proc = spawn(REDIS_SERVER, ["--port", String(port), "--bind", "127.0.0.1", "--save", "",
    "--appendonly", "no"], { stdio: "ignore" });
  await until(() => ping(port), `redis-server on ${port}`);
  return {
    url: `redis://127.0.0.1:${port}/0`,
    async stop() {
      proc.kill("SIGKILL");
      await onExit(proc);
    },
  };
}

function ping(port) {
  return new Promise((resolve) => {
    const sock = net.connect(port, "127.0.0.1");
    sock.on("error", () => resolve(false));
    sock.on("connect", () => sock.write("PING\r\n"));
    sock.on("data", (d) => {
      sock.destroy();
      resolve(d.toString().startsWith("+PONG"));
    });
  });
}

const PORT_VARIABLE = {
  gateway: "GATEWAY_PORT", presence: "PRESENCE_PORT", sessions: "SESSIONS_PORT",
  activity: "ACTIVITY_PORT",
};

/** One Goldwire process (`python -m goldwire.cli <kind>`) on a port, until stopped. */
export class Service {
  constructor(kind, redisUrl, prefix, settings = {}, port = null) {
    this.kind = kind;
    this.port = port;
    this.env = {
      ...process.env, REDIS_URL: redisUrl, GOLDWIRE_KEY_PREFIX: prefix, JWT_SECRET: SECRET,
      API_KEYS: API_KEY, LOG_LEVEL: "warning",
      ...Object.fromEntries(Object.entries(settings).map(([k, v]) => [k.toUpperCase(), String(v)])),
    };
    this.proc = null;
  }

  get http() {
    return `http://127.0.0.1:${this.port}`;
  }

  get ws() {
    return `ws://127.0.0.1:${this.port}/ws`;
  }

  async start() {
    this.port ??= await freePort();
    this.proc = spawn(PYTHON, ["-m", "goldwire.cli", this.kind], {
      env: { ...this.env, [PORT_VARIABLE[this.kind]]: String(this.port) },
      stdio: ["ignore", "inherit", "inherit"],
    });
    const proc = this.proc;
    await until(async () => {
      if (proc.exitCode !== null) throw new Error(`${this.kind} exited with ${proc.exitCode}`);
      try {
        return (await fetch(this.http + "/readyz")).status === 200;
      } catch {
        return false;
      }
    }, `${this.kind} on ${this.port} to be ready`, 20000);
    return this;
  }

  /** SIGKILL: the process gets no chance to say goodbye to its sockets. */
  async kill() {
    if (!this.proc) return;
    this.proc.kill("SIGKILL");
    await onExit(this.proc);
  }

  /** SIGTERM: the gateway drains (4012 to every socket) and exits. */
  async stop() {
    if (!this.proc) return;
    this.proc.kill("SIGTERM");
    const timer = setTimeout(() => this.proc.kill("SIGKILL"), 20000);
    await onExit(this.proc);
    clearTimeout(timer);
  }
}

/**
 * A TCP proxy, the load balancer's part: the SDK has one URL, and the proxy sends each new
 * connection to the backend port it is pointed at now. Killing a backend kills its sockets.
 */
export async function startProxy(backendPort) {
  const port = await freePort();
  const state = { backend: backendPort };
  const sockets = new Set();
  const server = net.createServer((client) => {
    const upstream = net.connect(state.backend, "127.0.0.1");
    sockets.add(client).add(upstream);
    client.pipe(upstream).pipe(client);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on("error", drop).on("close", drop);
    upstream.on("error", drop).on("close", drop);
  });
  await new Promise((r) => server.listen(port, "127.0.0.1", r));
  return {
    url: `ws://127.0.0.1:${port}/ws`,
    point(backend) {
      state.backend = backend;
    },
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

const b64url = (data) => Buffer.from(data).toString("base64url");

/** An HS256 JWT in the shape the gateway expects (libs/cli/tokens.py). */
export function mintToken(user, { ttl = 3600, name = user, tenant, rooms = ["*"], publish = ["*"] } = {}) {
  const now = Math.floor(Date.now() / 1000);
  const claims = { sub: user, name, rooms, publish, iat: now, exp: now + ttl };
  if (tenant) claims.tenant = tenant;
  const head = b64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const body = b64url(JSON.stringify(claims));
  const sig = createHmac("sha256", SECRET).update(`${head}.${body}`).digest("base64url");
  return `${head}.${body}.${sig}`;
}

/** A backend publish over the HTTP API, the way Goldleaves' services publish. */
export async function publish(gatewayHttp, room, data, type = "document_update") {
  const res = await fetch(gatewayHttp + "/v1/publish", {
    method: "POST",
    headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
    body: JSON.stringify({ room, type, data }),
  });
  if (res.status !== 200) throw new Error(`publish answered ${res.status}: ${await res.text()}`);
  return (await res.json()).offset;
}

/** `count` backend publishes to one room in one batch call; their offsets, in order. */
export async function publishBatch(gatewayHttp, room, count, type = "document_update") {
  const items = Array.from({ length: count }, (_, n) => ({ room, type, data: { n } }));
  const res = await fetch(gatewayHttp + "/v1/publish/batch", {
    method: "POST",
    headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
    body: JSON.stringify({ items }),
  });
  if (res.status !== 200) throw new Error(`batch answered ${res.status}: ${await res.text()}`);
  return (await res.json()).results.map((r) => r.offset);
}

/** An SDK client on Node: the `ws` package as WebSocket, memory storage unless given. */
export function client(url, options) {
  return new Goldwire(url, {
    websocket: WebSocket,
    storage: memoryStorage(),
    minReconnectDelay: 200,
    maxReconnectDelay: 2000,
    ...options,
  });
}

let prefixes = 0;
export function uniquePrefix() {
  return `sdk${process.pid}x${++prefixes}`;
}
