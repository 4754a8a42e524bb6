import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { issuedTarget, issueSessionId, sessionCookie } from './session-id.js';

describe('issued session ids', () => {
  const up = { id: 'agent-12', incarnation: '0f1e2d3c-aaaa-bbbb-cccc-000000000000' };
  it('name the instance and the first 8 characters of its run', () => {
    const id = issueSessionId(up);
    assert.deepEqual(issuedTarget(id), { instanceId: 'agent-12', incarnationPrefix: '0f1e2d3c' });
  });
  it('are unique', () => assert.notEqual(issueSessionId(up), issueSessionId(up)));
  const foreign = [
    '',
    'workflow-1',
    'agent-1.0f1e2d3c',
    'agent-1.XYZ12345.0f1e2d3c-aaaa-bbbb-cccc-000000000000',
    'a.b.c.d',
  ];
  for (const id of foreign) {
    it(`a client-chosen id "${id}" names no instance`, () => assert.equal(issuedTarget(id), undefined));
  }
  it('go into an HttpOnly, SameSite=Lax cookie for the whole site', () => {
    assert.equal(sessionCookie('x.y'), 'ygg_session=x.y; Path=/; HttpOnly; SameSite=Lax');
  });
});
