// A Node.js ws client with no wslab code: offers permessage-deflate, sends the messages
// given on the command line, prints the negotiated extensions and the echoes as JSON.
const WebSocket = require("ws");
const [url, ...messages] = process.argv.slice(2);
const ws = new WebSocket(url, { perMessageDeflate: { clientMaxWindowBits: true } });
const echoes = [];
ws.on("upgrade", (res) => { ws._negotiated = res.headers["sec-websocket-extensions"] || null; });
ws.on("open", () => { for (const m of messages) ws.send(m); });
ws.on("message", (data) => {
  echoes.push(data.toString());
  if (echoes.length === messages.length) ws.close(1000);
});
const timer = setTimeout(() => { console.error("timeout"); process.exit(2); }, 10000);
ws.on("close", () => {
  clearTimeout(timer);
  console.log(JSON.stringify({ extensions: ws._negotiated, echoes }));
});
ws.on("error", (err) => { console.error(String(err)); process.exit(1); });
