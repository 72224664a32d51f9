// A signed-in pusher-js 8.6.0 user (Node build) for rtctl's end-to-end tests of Pusher's user
// features: pusher.signin(), events sent to the user (pusher.user.bind), and terminate.
//
// Usage: node user_receiver.mjs '<json config>'
//   {host, port, key, userId, events: ["name", ...], count, timeoutMs,
//    rtctl: ["python", "-m", "rtctl", "--env-file", "..."]}
// User authentication runs `rtctl auth --user --socket-id ID --user-id USER` in a
// userAuthentication.customHandler and hands its JSON to pusher-js unchanged.
// Prints JSON lines: {"type":"signed_in",user_data} once signed in, {"type":"event",event,data}
// for each event bound with pusher.user.bind, {"type":"closed",code} when the server closes the
// connection, then {"type":"done"} after `count` events (exit 0) or {"type":"timeout"} (exit 3).
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
  process.stdout.write("", () => process.exit(code));
}

function authenticate(params, callback) {
  const [cmd, ...base] = config.rtctl;
  const args = [...base, "auth", "--user", "--socket-id", params.socketId, "--user-id", config.userId];
  execFile(cmd, args, (error, stdout, stderr) => {
    if (error) {
      callback(new Error(`rtctl auth --user failed: ${stderr}`), null);
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
  userAuthentication: { customHandler: authenticate },
});

pusher.connection.bind("message", (message) => {
  if (message.event === "pusher:signin_success") out({ type: "signed_in", user_data: message.data.user_data });
});
pusher.connection.bind("error", (err) => {
  const code = err && err.data && err.data.code;
  if (code) out({ type: "closed", code });
});
pusher.user.bind("pusher:signin_error", (err) => finish({ type: "signin_error", error: err }, 4));

for (const name of config.events || []) {
  pusher.user.bind(name, (data) => {
    received += 1;
    out({ type: "event", event: name, data });
    if (received >= config.count) finish({ type: "done" }, 0);
  });
}

pusher.signin();
setTimeout(() => finish({ type: "timeout", received }, 3), config.timeoutMs);
