// A real third-party client for rtctl's end-to-end tests: pusher-js 8.6.0 (Node build) configured
// for Soketi as the Realtime setup guide's pusher-js snippet does (wsHost/wsPort, forceTLS false, ws/wss transports, a cluster).
//
// Usage: node emit_receiver.mjs '<json config>'
//   {host, port, key, channels: [..], count, timeoutMs, quiet?,
//    rtctl: ["python", "-m", "rtctl", "--env-file", "..."],   // signs private/presence/encrypted
//    authArgs?: {"<channel>": ["--user-id", "1", ...]}}
// Private, presence and encrypted channels are authorized by a channelAuthorization.customHandler
// that runs `rtctl auth CHANNEL --socket-id ID` and hands its JSON to pusher-js unchanged.
// Prints JSON lines: {"type":"subscribed",channel} per channel, {"type":"event",channel,event,data}
// per event (unless quiet), then {"type":"done",received} and exits 0 after `count` events;
// {"type":"timeout",received} and exit 3 on timeout; {"type":"error",...} and exit 4 on errors.
import { execFile } from "node:child_process";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const Pusher = require("pusher-js");

const config = JSON.parse(process.argv[2]);
const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
let received = 0;
let finished = false;

function finish(line, code) {
  if (finished) return;
  finished = true;
  out(line);
  pusher.disconnect();
  // let stdout drain before exiting
  process.stdout.write("", () => process.exit(code));
}

function authorize(params, callback) {
  const [cmd, ...base] = config.rtctl;
  const extra = (config.authArgs || {})[params.channelName] || [];
  const args = [...base, "auth", params.channelName, "--socket-id", params.socketId, ...extra];
  execFile(cmd, args, (error, stdout, stderr) => {
    if (error) {
      callback(new Error(`rtctl auth failed: ${stderr}`), null);
      return;
    }
    callback(null, JSON.parse(stdout));
  });
}

const pusher = new Pusher(config.key, {
  cluster: "mt1",
  wsHost: config.host,
  wsPort: config.port,
  wssPort: config.port,
  forceTLS: false,
  enabledTransports: ["ws", "wss"],
  enableStats: false,
  channelAuthorization: { customHandler: authorize },
});

pusher.connection.bind("error", (err) => finish({ type: "error", error: String(err && err.error ? JSON.stringify(err.error) : err) }, 4));

for (const name of config.channels) {
  const channel = pusher.subscribe(name);
  channel.bind("pusher:subscription_succeeded", () => out({ type: "subscribed", channel: name }));
  channel.bind("pusher:subscription_error", (status) =>
    finish({ type: "error", channel: name, error: status }, 4),
  );
  channel.bind_global((event, data) => {
    if (event.startsWith("pusher:") || event.startsWith("pusher_internal:")) return;
    received += 1;
    if (!config.quiet) out({ type: "event", channel: name, event, data });
    if (received >= config.count) finish({ type: "done", received }, 0);
  });
}

setTimeout(() => finish({ type: "timeout", received }, 3), config.timeoutMs);
