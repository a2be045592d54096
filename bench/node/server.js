// The Node peer of the benchmark: Socket.IO 4.8 with @socket.io/redis-adapter on ioredis.
//
// Deployed the way Socket.IO's documentation shows for more than one process: the
// server's adapter is the Redis adapter (a pub and a sub ioredis connection; it
// PSUBSCRIBEs to `<key>#/#*`), and a backend publishes with @socket.io/redis-emitter,
// one PUBLISH of a msgpack packet on `<key>#/#<room>#` (bench/fanout.py's
// NodeEmitterPublisher speaks that wire format). WebSocket transport only, no
// per-message-deflate (Socket.IO's default), the same as bench/sio_server.py.
//
// Authentication is the work bench/sio_server.py does at connect: the Socket.IO
// CONNECT packet carries {"token": <JWT>, "room": <room>} as its auth payload; a
// middleware verifies the HS256 token with jsonwebtoken (exp and sub required, as the
// gateway does), refuses the connection (CONNECT_ERROR, `44`) if it does not verify,
// and puts the socket into its room. Engine.IO's heartbeat runs every --ping-interval
// seconds (ping timeout 20 s), as for the others.
//
//   node bench/node/server.js --port 9002 --redis-url redis://127.0.0.1:6379/0 \
//       --key bench-node --jwt-secret SECRET
//
// Stops on SIGTERM or SIGINT (closing its sockets and Redis connections, at most 3 s).

"use strict";

const http = require("node:http");
const { parseArgs } = require("node:util");
const { Server } = require("socket.io");
const { createAdapter } = require("@socket.io/redis-adapter");
const { Redis } = require("ioredis");
const jwt = require("jsonwebtoken");

const { values: args } = parseArgs({
  options: {
    host: { type: "string", default: "127.0.0.1" },
    port: { type: "string" },
    "redis-url": { type: "string" },
    // the adapter's key (its channel prefix); --channel is sio_server.py's name for it
    key: { type: "string" },
    channel: { type: "string" },
    "jwt-secret": { type: "string" },
    "ping-interval": { type: "string", default: "30" },
  },
});
for (const name of ["port", "redis-url", "jwt-secret"]) {
  if (!args[name]) {
    console.error(`server.js: --${name} is required`);
    process.exit(2);
  }
}
const key = args.key || args.channel || "socket.io";
const secret = args["jwt-secret"];
const pingInterval = Math.round(1000 * (Number(args["ping-interval"]) || 30));

const pubClient = new Redis(args["redis-url"]);
const subClient = pubClient.duplicate();
for (const client of [pubClient, subClient]) {
  client.on("error", (err) => console.error(`redis: ${err.message}`));
}

const httpServer = http.createServer();
const io = new Server(httpServer, {
  adapter: createAdapter(pubClient, subClient, { key }),
  transports: ["websocket"],
  pingInterval,
  pingTimeout: 20000,
  maxHttpBufferSize: 65536,
  perMessageDeflate: false,
  serveClient: false,
});

io.use((socket, next) => {
  const auth = socket.handshake.auth;
  if (!auth || typeof auth.room !== "string") {
    return next(new Error("unauthorized"));
  }
  let claims;
  try {
    claims = jwt.verify(auth.token || "", secret, { algorithms: ["HS256"] });
  } catch {
    return next(new Error("unauthorized"));
  }
  // jsonwebtoken checks exp only when present: require it and sub, as PyJWT's
  // options={"require": ["exp", "sub"]} does in bench/sio_server.py
  if (typeof claims !== "object" || claims.exp === undefined || claims.sub === undefined) {
    return next(new Error("unauthorized"));
  }
  socket.join(auth.room);
  next();
});

httpServer.listen({ host: args.host, port: Number(args.port), backlog: 4096 });

let stopping = false;
function stop() {
  if (stopping) return;
  stopping = true;
  setTimeout(() => process.exit(0), 3000).unref();
  io.close(() => {
    pubClient.disconnect();
    subClient.disconnect();
    process.exit(0);
  });
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
