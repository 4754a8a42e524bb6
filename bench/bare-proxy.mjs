// The least a Node proxy can do per request, for comparison with the router (bench/proxy.ts): an
// http server that streams each request to one agent with undici's pool.stream() and the answer
// back, with no limit, queue, session, breaker, header rewriting or metrics. Not part of the product.
// Run: node bench/bare-proxy.mjs <port> <agent port>
import { createServer } from 'node:http';
import { Pool } from 'undici';

const [port, agentPort] = process.argv.slice(2).map(Number);
const pool = new Pool(`http://127.0.0.1:${agentPort}`, { connections: 128 });
createServer((req, res) => {
  pool.stream(
    { path: req.url, method: req.method, headers: req.headers, body: req },
    ({ statusCode, headers }) => {
      res.writeHead(statusCode, headers);
      return res;
    },
    (err) => {
      if (err) res.destroy();
    },
  );
}).listen(port, '127.0.0.1', () => process.stdout.write('listening\n'));
