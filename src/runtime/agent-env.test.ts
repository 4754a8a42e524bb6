import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseEnvFile, parseEnvNames } from '../core/env-file.js';
import { agentEnvironment } from './agent-env.js';

const parent = {
  PATH: '/usr/bin',
  HOME: '/root',
  LANG: 'C.UTF-8',
  DB_PASSWORD: 'hunter2',
  OPENAI_API_KEY: 'sk-1',
  NODE_OPTIONS: '--inspect',
};

describe('agentEnvironment', () => {
  const table: Array<{
    name: string;
    names: string[];
    file?: Record<string, string>;
    basics: boolean;
    want: Record<string, string>;
  }> = [
    {
      name: 'a process gets the basics and nothing else',
      names: [],
      basics: true,
      want: { PATH: '/usr/bin', HOME: '/root', LANG: 'C.UTF-8' },
    },
    {
      name: 'a container gets nothing of the host by default',
      names: [],
      basics: false,
      want: {},
    },
    {
      name: 'AGENT_ENV passes the named variables (a missing one is left out)',
      names: ['OPENAI_API_KEY', 'NOT_SET'],
      basics: false,
      want: { OPENAI_API_KEY: 'sk-1' },
    },
    {
      name: 'AGENT_ENV_FILE adds its variables, and wins over the same name',
      names: ['OPENAI_API_KEY'],
      file: { OPENAI_API_KEY: 'sk-file', MODEL: 'llama' },
      basics: true,
      want: { PATH: '/usr/bin', HOME: '/root', LANG: 'C.UTF-8', OPENAI_API_KEY: 'sk-file', MODEL: 'llama' },
    },
  ];
  for (const row of table) {
    it(row.name, () => {
      const got = agentEnvironment({
        parent,
        names: row.names,
        basics: row.basics,
        ...(row.file ? { file: row.file } : {}),
      });
      assert.deepEqual(got, row.want);
      assert.equal(got.DB_PASSWORD, undefined, 'never the rest of the environment');
    });
  }
});

describe('parseEnvNames', () => {
  it('reads a comma list', () => assert.deepEqual(parseEnvNames(' A, B_2 ,,C '), ['A', 'B_2', 'C']));
  it('is empty for an empty list', () => assert.deepEqual(parseEnvNames(''), []));
  for (const bad of ['A,2B', 'A-B', 'A B']) {
    it(`refuses ${JSON.stringify(bad)}`, () =>
      assert.throws(() => parseEnvNames(bad), /is not a variable name/));
  }
});

describe('parseEnvFile', () => {
  it('reads KEY=VALUE lines, comments, export, quotes and = in values', () => {
    const text = `# a comment\n\nA=1\nexport B = two words \nC="quoted # not a comment"\nD='x=y'\nE=\n`;
    assert.deepEqual(parseEnvFile(text), {
      A: '1',
      B: 'two words',
      C: 'quoted # not a comment',
      D: 'x=y',
      E: '',
    });
  });
  for (const [bad, line] of [
    ['A=1\nnot a pair\n', 2],
    ['1A=x', 1],
  ] as const) {
    it(`refuses ${JSON.stringify(bad)} naming line ${line}`, () =>
      assert.throws(() => parseEnvFile(bad), new RegExp(`line ${line} is not KEY=VALUE`)));
  }
});
