// WebSocket clients for scripts/bench_storm.py: one Node process runs many Pusher-protocol clients,
// each speaking to Soketi as pusher-js does: connect, read pusher:connection_established,
// form-POST socket_id and channel_name to the auth endpoint with the client's bearer token, send
// pusher:subscribe with the signature, answer pusher:ping, ping after activity_timeout of silence,
// and after a close reconnect (at once on 4200-4299, after 1 s otherwise), authorize again for the
// new socket id and subscribe again.
//
// Usage: node client.mjs PLAN.json   (written by bench_storm.py)
// Commands arrive one per line on stdin, answers go one JSON line each to stdout:
//   count N  -> {"at_least": clients subscribed N times or more, "auth_sent": ..., ...}
//   times    -> the second subscriptions' timings (CLOCK_MONOTONIC seconds, as Python's
//               time.monotonic())
//   stop     -> closes every socket, answers "stopped" and exits
import { readFileSync } from 'node:fs';
import net from 'node:net';
import readline from 'node:readline';
import { Pool } from 'undici';
import { WebSocket } from 'ws';

const plan = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const now = () => Number(process.hrtime.bigint()) / 1e9; // CLOCK_MONOTONIC on Linux
const PONG = '{"event":"pusher:pong","data":{}}';
const PING = '{"event":"pusher:ping","data":{}}';

const stats = {
  auth_sent: 0,
  auth_ok: 0,
  auth_failed: 0,
  auth_errors: [],
  subscription_errors: 0,
  reconnects: 0,
  failed_clients: 0,
};
// when each client got subscribed the second time (after the restart), when that socket opened,
// and when both of its auth answers were in
const second = { at: [], opened_at: [], authorized_at: [] };
let stopping = false;

function noteAuthError(text) {
  if (stats.auth_errors.length < 5) stats.auth_errors.push(text.slice(0, 160));
}

class AuthFailed extends Error {}

// One pool of keep-alive connections to the gateway per process, as a front proxy would keep.
// Idle connections are dropped before the gateway's 5 s keep-alive closes them under a request.
const authUrl = new URL(plan.auth_url);
const authPool = new Pool(authUrl.origin, {
  connections: plan.pool,
  keepAliveTimeout: 3000,
  keepAliveMaxTimeout: 3000,
  headersTimeout: 30000,
  bodyTimeout: 30000,
  connect: { timeout: 10000 },
});

async function authorize(token, socketId, channel) {
  stats.auth_sent += 1;
  let status;
  let body;
  try {
    const response = await authPool.request({
      path: authUrl.pathname,
      method: 'POST',
      headers: {
        authorization: `Bearer ${token}`,
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: `socket_id=${encodeURIComponent(socketId)}&channel_name=${encodeURIComponent(channel)}`,
    });
    status = response.statusCode;
    body = await response.body.text();
  } catch (error) {
    // no answer at all: connection refused, reset, timeout
    stats.auth_failed += 1;
    noteAuthError(`${error.name}: ${error.message}`);
    throw new AuthFailed(error.message);
  }
  if (status !== 200) {
    stats.auth_failed += 1;
    noteAuthError(`HTTP ${status}: ${body.slice(0, 120)}`);
    throw new AuthFailed(`HTTP ${status}`);
  }
  stats.auth_ok += 1;
  return JSON.parse(body).auth;
}

// Whether a node accepts connections, as this process last saw it. While a node refuses, its
// clients wait here instead of each retrying on its own timer: one probe (a TCP connect every
// 0.1 s) stands in for thousands of refused attempts. When it gets through, every waiting client
// retries after a random 0-1 s, the spread that independent retry timers would give.
class NodeWatch {
  constructor(url) {
    const { hostname, port } = new URL(url);
    this.host = hostname;
    this.port = Number(port);
    this.up = true;
    this.waiting = [];
  }

  refused() {
    if (!this.up) return;
    this.up = false;
    setTimeout(() => this.probe(), 100);
  }

  probe() {
    if (stopping) return;
    const socket = net.connect({ host: this.host, port: this.port });
    // bounded: a SYN dropped by a full accept queue would otherwise wait for retransmissions
    const timer = setTimeout(() => {
      socket.destroy();
      setTimeout(() => this.probe(), 100);
    }, 500);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.destroy();
      this.up = true;
      const waiting = this.waiting;
      this.waiting = [];
      for (const resume of waiting) setTimeout(resume, Math.random() * 1000);
    });
    socket.once('error', () => {
      clearTimeout(timer);
      setTimeout(() => this.probe(), 100);
    });
  }

  whenUp(resume) {
    if (this.up) resume();
    else this.waiting.push(resume);
  }
}

// The first connections open at most plan.initial_connects at a time; reconnects all at once.
let opening = 0;
const openQueue = [];
function acquireOpening(start) {
  if (opening < plan.initial_connects) {
    opening += 1;
    start();
  } else openQueue.push(start);
}
function releaseOpening() {
  const next = openQueue.shift();
  if (next) next();
  else opening -= 1;
}

const watches = plan.nodes.map((url) => new NodeWatch(url));
const clients = [];

class Client {
  constructor(spec) {
    this.token = spec.token;
    this.url = plan.nodes[spec.node];
    this.watch = watches[spec.node];
    this.channels = plan.bots.map((bot) => `private-${spec.user}_${bot}`);
    this.generation = 0; // how many times it has been fully subscribed
    this.refusals = 0; // auth or subscription refused, in a row
    this.ws = null;
    this.lastHeard = 0;
    this.activityTimeout = 120;
  }

  start() {
    if (this.generation === 0) acquireOpening(() => this.connect(true));
    else this.connect(false);
  }

  connect(counted) {
    if (stopping) {
      if (counted) releaseOpening();
      return;
    }
    const ws = new WebSocket(this.url, {
      perMessageDeflate: false,
      handshakeTimeout: 20000,
    });
    this.ws = ws;
    let openedAt = 0;
    let authorizedAt = 0;
    let subscribed = false;
    let refused = false;
    let authFailed = false;
    let closeCode = 0;
    const pending = new Set(this.channels);
    let release = counted;
    const released = () => {
      if (release) {
        release = false;
        releaseOpening();
      }
    };
    // connection_established must arrive within 20 s of the socket opening
    let establishTimer = null;

    ws.on('open', () => {
      released();
      openedAt = now();
      this.lastHeard = openedAt;
      establishTimer = setTimeout(() => ws.terminate(), 20000);
    });
    ws.on('message', (data) => {
      this.lastHeard = now();
      let message;
      try {
        message = JSON.parse(data);
      } catch {
        ws.terminate();
        return;
      }
      switch (message.event) {
        case 'pusher:connection_established': {
          clearTimeout(establishTimer);
          const established = JSON.parse(message.data);
          if (established.activity_timeout) this.activityTimeout = established.activity_timeout;
          Promise.all(this.channels.map((ch) => authorize(this.token, established.socket_id, ch)))
            .then((signatures) => {
              authorizedAt = now();
              if (ws.readyState !== WebSocket.OPEN) return;
              this.channels.forEach((channel, i) => {
                const data = { channel, auth: signatures[i] };
                ws.send(JSON.stringify({ event: 'pusher:subscribe', data }));
              });
            })
            .catch(() => {
              authFailed = true;
              ws.close();
            });
          break;
        }
        case 'pusher_internal:subscription_succeeded':
          pending.delete(message.channel);
          if (pending.size === 0 && !subscribed) {
            subscribed = true;
            this.refusals = 0;
            this.generation += 1;
            if (this.generation === 2) {
              second.at.push(now());
              second.opened_at.push(openedAt);
              second.authorized_at.push(authorizedAt);
            }
          }
          break;
        case 'pusher:subscription_error':
          stats.subscription_errors += 1;
          authFailed = true;
          ws.close();
          break;
        case 'pusher:ping':
          ws.send(PONG);
          break;
        default:
          break;
      }
    });
    ws.on('error', (error) => {
      if (error.code === 'ECONNREFUSED') refused = true;
    });
    ws.on('close', (code) => {
      closeCode = code;
      released();
      clearTimeout(establishTimer);
      if (this.ws === ws) this.ws = null;
      if (stopping) return;
      if (authFailed) {
        this.refusals += 1;
        if (this.refusals >= 5) {
          stats.failed_clients += 1;
          return;
        }
      }
      stats.reconnects += 1;
      if (refused) this.watch.refused();
      // pusher-js: 4200-4299 "reconnect immediately" (each client on its own tick, so spread over
      // 0-50 ms); any other close of an open connection: after 1 s; a failed connect: the next
      // attempt, here once the node accepts again
      let delay = 200;
      if (closeCode >= 4200 && closeCode < 4300) delay = Math.random() * 50;
      else if (openedAt) delay = 1000;
      setTimeout(() => this.watch.whenUp(() => this.start()), delay);
    });
  }
}

// pusher-js sends pusher:ping after activity_timeout seconds without hearing from the server
// (Soketi closes a socket it has sent nothing to for 120 s); one sweep stands in for per-socket
// timers.
setInterval(() => {
  const t = now();
  for (const client of clients) {
    const ws = client.ws;
    if (ws && ws.readyState === WebSocket.OPEN && t - client.lastHeard > client.activityTimeout) {
      client.lastHeard = t;
      ws.send(PING);
    }
  }
}, 5000).unref();

for (const spec of plan.clients) {
  const client = new Client(spec);
  clients.push(client);
  client.start();
}

function reply(value) {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

const commands = readline.createInterface({ input: process.stdin });
commands.on('line', (line) => {
  const [command, argument] = line.trim().split(/\s+/);
  if (command === 'count') {
    const generation = Number(argument);
    let atLeast = 0;
    for (const client of clients) if (client.generation >= generation) atLeast += 1;
    reply({ at_least: atLeast, ...stats });
  } else if (command === 'times') {
    reply({
      second_at: second.at,
      second_opened_at: second.opened_at,
      second_authorized_at: second.authorized_at,
    });
  } else if (command === 'stop') {
    stopping = true;
    for (const client of clients) client.ws?.terminate();
    authPool.destroy().finally(() => {
      reply('stopped');
      process.exit(0);
    });
  }
});
// the parent went away without a word: do not linger
commands.on('close', () => {
  if (!stopping) process.exit(1);
});
