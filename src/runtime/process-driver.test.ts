import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { shellScript } from './process-driver.js';

describe('shellScript', () => {
  const table = [
    { cmd: 'node agent.js', want: 'exec node agent.js' },
    { cmd: '/usr/bin/python3 -m my_agent --port 1', want: 'exec /usr/bin/python3 -m my_agent --port 1' },
    { cmd: 'COUNT_LOG=/tmp/x node agent.js', want: 'COUNT_LOG=/tmp/x node agent.js' },
    { cmd: 'cd app && node agent.js', want: 'cd app && node agent.js' },
    { cmd: 'node a.js | tee log', want: 'node a.js | tee log' },
    { cmd: 'node -e "console.log(1)"', want: 'exec node -e "console.log(1)"' },
    { cmd: '$HOME/bin/agent', want: '$HOME/bin/agent' },
  ];
  for (const { cmd, want } of table) it(cmd, () => assert.equal(shellScript(cmd), want));
});
