import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseAddressList, unmapped } from './address-list.js';

describe('parseAddressList', () => {
  const cases: Array<{ name: string; list: string; address: string; want: boolean }> = [
    { name: 'empty list matches nothing', list: '', address: '127.0.0.1', want: false },
    { name: 'single address', list: '127.0.0.1', address: '127.0.0.1', want: true },
    { name: 'single address, other', list: '127.0.0.1', address: '127.0.0.2', want: false },
    { name: 'IPv4 range', list: '10.0.0.0/8', address: '10.20.30.40', want: true },
    { name: 'IPv4 range, outside', list: '10.0.0.0/8', address: '11.0.0.1', want: false },
    {
      name: 'IPv4-mapped peer matches its IPv4',
      list: '127.0.0.0/8',
      address: '::ffff:127.0.0.9',
      want: true,
    },
    { name: 'IPv6 address', list: '::1', address: '::1', want: true },
    { name: 'IPv6 range', list: 'fd00::/8', address: 'fd12::1', want: true },
    {
      name: 'spaces and several entries',
      list: ' 192.168.0.0/16 , ::1 ',
      address: '192.168.3.4',
      want: true,
    },
    { name: 'unknown peer', list: '127.0.0.1', address: '', want: false },
  ];
  for (const c of cases) {
    it(c.name, () => assert.equal(parseAddressList(c.list).has(c.address), c.want));
  }

  for (const bad of ['localhost', '10.0.0.0/33', '::1/129', '1.2.3.4/8/9', '1.2.3', '10.0.0.0/x']) {
    it(`refuses ${JSON.stringify(bad)} naming it`, () => {
      assert.throws(
        () => parseAddressList(bad),
        (err: Error) => err.message.includes(`"${bad}"`),
      );
    });
  }

  it('unmaps only IPv4-mapped addresses', () => {
    assert.equal(unmapped('::ffff:10.0.0.1'), '10.0.0.1');
    assert.equal(unmapped('::1'), '::1');
    assert.equal(unmapped('10.0.0.1'), '10.0.0.1');
  });
});
