// A flood of anonymous Socket.IO connections on the public port stays bounded (issue 10: 15 000 of
// them once grew the process by hundreds of MB): at most 64 are let in from one address, and memory
// grows by at most 50 MB.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runFlood } from '../../bench/flood.js';

describe('live feed flood', () => {
  it('15 000 anonymous handshakes and CONNECTs grow RSS by at most 50 MB', { timeout: 120_000 }, async () => {
    const r = await runFlood(15_000);
    console.log(`# flood: ${r.accepted} accepted, ${r.refused} refused, RSS +${r.rssGrowthMB.toFixed(1)} MB`);
    assert.ok(r.accepted > 0 && r.accepted <= 64, `${r.accepted} accepted`);
    assert.equal(r.accepted + r.refused, 15_000);
    assert.ok(r.rssGrowthMB <= 50, `RSS grew by ${r.rssGrowthMB.toFixed(1)} MB`);
  });
});
