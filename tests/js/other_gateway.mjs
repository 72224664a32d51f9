// A second implementation of the gateway's /realtime/* contract, written as another team would
// with another stack (plain Node, no rtctl code): opaque session tokens instead of JWTs,
// Laravel-style channel names (private-App.Models.User.{id}), and an /emit that needs no token
// (it trusts its network). rtctl smoke --via-gateway must work against it.
//
// Env: PORT, APP_ID, KEY, SECRET, API_HOST, API_PORT (the Pusher-compatible HTTP API),
//      SESSIONS = JSON {"<opaque token>": "<user id>"}.
// Prints {"listening": port} once ready.
import { createHmac, createHash } from "node:crypto";
import { createServer, request } from "node:http";

const env = process.env;
const sessions = JSON.parse(env.SESSIONS || "{}");
const hmac = (text) => createHmac("sha256", env.SECRET).update(text).digest("hex");

function send(res, status, body) {
  res.writeHead(status, { "Content-Type": "application/json" });
  res.end(JSON.stringify(body));
}

function readBody(req) {
  return new Promise((resolve) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
  });
}

function trigger(event) {
  // The HTTP API's signing, written out: md5 of the body, sorted query, HMAC of the three lines.
  const body = JSON.stringify(event);
  const path = `/apps/${env.APP_ID}/events`;
  const params = {
    auth_key: env.KEY,
    auth_timestamp: String(Math.floor(Date.now() / 1000)),
    auth_version: "1.0",
    body_md5: createHash("md5").update(body).digest("hex"),
  };
  const query = Object.keys(params).sort().map((k) => `${k}=${params[k]}`).join("&");
  const signature = hmac(`POST\n${path}\n${query}`);
  return new Promise((resolve, reject) => {
    const req = request(
      { host: env.API_HOST, port: Number(env.API_PORT), method: "POST",
        path: `${path}?${query}&auth_signature=${signature}`,
        headers: { "Content-Type": "application/json" } },
      (res) => readBody(res).then((text) => resolve({ status: res.statusCode, text })),
    );
    req.on("error", reject);
    req.end(body);
  });
}

const server = createServer(async (req, res) => {
  const body = await readBody(req);
  if (req.method === "POST" && req.url === "/realtime/auth") {
    const token = (req.headers.authorization || "").replace(/^Bearer /, "");
    const user = sessions[token];
    if (!user) return send(res, 401, { message: "no such session" });
    const form = new URLSearchParams(body);
    const channel = form.get("channel_name");
    if (channel !== `private-App.Models.User.${user}`) {
      return send(res, 403, { message: `user ${user} may not join ${channel}` });
    }
    return send(res, 200, { auth: `${env.KEY}:${hmac(`${form.get("socket_id")}:${channel}`)}` });
  }
  if (req.method === "POST" && req.url === "/realtime/emit") {
    const { channel, event, data } = JSON.parse(body);
    const answer = await trigger({ name: event, channels: [channel], data });
    const parsed = JSON.parse(answer.text || "{}");
    if (answer.status !== 200 || parsed.error) return send(res, 502, { message: answer.text });
    return send(res, 200, { sent: true });
  }
  send(res, 404, { message: "not here" });
});

server.listen(Number(env.PORT), "127.0.0.1", () => {
  process.stdout.write(JSON.stringify({ listening: server.address().port }) + "\n");
});
