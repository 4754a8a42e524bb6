import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { envValue, parseStatIds } from './orphans.js';

describe('parseStatIds', () => {
  // pid (comm) state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime stime
  // cutime cstime priority nice num_threads itrealvalue starttime …
  const stat = '4242 (node (x) y) S 1 4200 4200 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 7 0 123456 1000 50';
  it('reads pgrp and starttime past a command name with spaces and parentheses', () => {
    assert.deepEqual(parseStatIds(stat), { pgrp: 4200, startTime: '123456' });
  });
  it('refuses garbage', () => assert.equal(parseStatIds('nonsense'), undefined));
});

describe('envValue', () => {
  const environ = 'PATH=/bin\0YGGDRASIL_SUPERVISOR=10:999\0X=a=b\0';
  const table: Array<[string, string | undefined]> = [
    ['YGGDRASIL_SUPERVISOR', '10:999'],
    ['X', 'a=b'],
    ['PATH', '/bin'],
    ['MISSING', undefined],
    ['YGGDRASIL', undefined],
  ];
  for (const [name, want] of table)
    it(`${name} → ${want}`, () => assert.equal(envValue(environ, name), want));
});
