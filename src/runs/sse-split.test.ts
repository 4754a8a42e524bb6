import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { formatEvent, splitEvents } from './sse-split.js';

describe('splitEvents', () => {
  const table: Array<[string, string, string[][], string]> = [
    ['one event, LF', 'data: a\n\n', [['data: a']], ''],
    [
      'two events and a partial one',
      'data: a\n\ndata: b\nevent: x\n\ndata: c',
      [['data: a'], ['data: b', 'event: x']],
      'data: c',
    ],
    ['CRLF line ends', 'data: a\r\n\r\n', [['data: a']], ''],
    [
      'CR line ends (a CR last waits: it may be half a CRLF)',
      'data: a\r\rdata: b\r\r',
      [['data: a']],
      'data: b\r\r',
    ],
    ['a CR at the end waits for its LF', 'data: a\r\n\r', [], 'data: a\r\n\r'],
    [
      'the agent’s id lines are dropped (the run log numbers events)',
      'id: 7\ndata: a\n\n',
      [['data: a']],
      '',
    ],
    ['comments are kept', ': keep-alive\n\n', [[': keep-alive']], ''],
    ['blank lines alone make no event', '\n\n\n', [], ''],
  ];
  for (const [name, text, events, rest] of table)
    it(name, () => assert.deepEqual(splitEvents(text), { events, rest }));

  it('cutting the stream anywhere gives the same events (property)', () => {
    const event = fc.array(fc.stringMatching(/^(data|event): [a-z ]{0,8}$/), { minLength: 1, maxLength: 3 });
    fc.assert(
      fc.property(fc.array(event, { maxLength: 6 }), fc.array(fc.nat(), { maxLength: 5 }), (evs, cuts) => {
        const stream = evs.map((lines) => `${lines.join('\n')}\n\n`).join('');
        const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b);
        const got: string[][] = [];
        let rest = '';
        let from = 0;
        for (const p of [...points, stream.length]) {
          const r = splitEvents(rest + stream.slice(from, p));
          got.push(...r.events);
          rest = r.rest;
          from = p;
        }
        assert.deepEqual(got, evs);
        assert.equal(rest, '');
      }),
    );
  });

  it('formatEvent puts the sequence id first', () => {
    assert.equal(formatEvent(3, ['event: x', 'data: y']), 'id: 3\nevent: x\ndata: y\n\n');
  });
});
