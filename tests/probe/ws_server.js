// A Node `ws` echo server started with the perMessageDeflate options and maxPayload the
// test chose: node ws_server.js PORT JSON. Prints "listening on ws://127.0.0.1:PORT".
const { WebSocketServer } = require("ws");
const port = Number(process.argv[2]);
const opts = JSON.parse(process.argv[3]);
const wss = new WebSocketServer({ host: "127.0.0.1", port, ...opts });
wss.on("connection", (ws) => {
  ws.on("message", (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on("error", () => {});
});
wss.on("listening", () => console.log(`listening on ws://127.0.0.1:${port}`));
