// HAProxy's Runtime API over its unix socket (the `stats socket … level admin`): one connection per
// command, as the non-interactive mode wants, and one command at a time (they take turns here).
import { createConnection } from 'node:net';
import { Serial } from '../core/serial.js';

/** How long one command may take. */
const COMMAND_TIMEOUT_MS = 5000;

export class HaproxyRuntime {
  private readonly turns = new Serial();

  constructor(private readonly socketPath: string) {}

  /** Sends one command and resolves with HAProxy's whole answer. */
  command(line: string): Promise<string> {
    return this.turns.run(() => this.send(line));
  }

  private send(line: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const socket = createConnection(this.socketPath);
      let out = '';
      const timer = setTimeout(() => {
        socket.destroy();
        reject(
          new Error(
            `haproxy did not answer \`${line.split(' ').slice(0, 3).join(' ')}\` within ${COMMAND_TIMEOUT_MS} ms`,
          ),
        );
      }, COMMAND_TIMEOUT_MS);
      socket.setEncoding('utf8');
      socket.on('data', (d: string) => {
        out += d;
      });
      socket.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      socket.on('end', () => {
        clearTimeout(timer);
        resolve(out);
      });
      socket.write(`${line}\n`);
    });
  }
}
