// The Lua scripts of the shared state, each one atomic in Redis: the leader lease with its fencing
// token (the term), and the writes only the current term may make.
import type { Redis } from 'ioredis';

const ACQUIRE = `
local cur = redis.call('GET', KEYS[1])
if cur then
  local holder, term = string.match(cur, '^(.+) (%d+)$')
  if holder == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return {1, tonumber(term), holder}
  end
  return {0, tonumber(term or '0'), holder or cur}
end
local term = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. term, 'PX', ARGV[2])
return {1, term, ARGV[1]}
`;

// Renews a lease held with this term. A lease that expired while nobody took over (Redis paused, say)
// is taken again under the same term: no other leader has existed since.
const RENEW = `
local cur = redis.call('GET', KEYS[1])
local mine = ARGV[1] .. ' ' .. ARGV[2]
if cur == mine then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return 1
end
if not cur and redis.call('GET', KEYS[2]) == ARGV[2] then
  redis.call('SET', KEYS[1], mine, 'PX', ARGV[3])
  return 1
end
return 0
`;

const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] .. ' ' .. ARGV[2] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
`;

// A leader write: the pool snapshot, stored and published, only while the term is still the latest.
const FENCED_PUBLISH = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('PUBLISH', ARGV[3], ARGV[2])
return 1
`;

// Pins a session: its binding (with the TTL) and its place in its instance's set, leaving the set of
// the instance it was on before (whichever router pinned it there).
const SESSION_SET = `
local old = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
if old then
  local oldInstance = string.match(old, '^(%S+) ')
  if oldInstance and oldInstance ~= ARGV[5] then
    redis.call('ZREM', ARGV[6] .. oldInstance, ARGV[4])
  end
end
return 1
`;

// Ends a session: its binding, and its place in the set of the instance it was on.
const SESSION_DELETE = `
local old = redis.call('GET', KEYS[1])
redis.call('DEL', KEYS[1])
if old then
  local instance = string.match(old, '^(%S+) ')
  if instance then redis.call('ZREM', ARGV[1] .. instance, ARGV[2]) end
end
return 1
`;

export interface SharedScripts {
  sessionDelete(sessionKey: string, instanceSetPrefix: string, sessionId: string): Promise<number>;
  /** KEYS: the session's key, its instance's set; the set of the instance before is ZREMmed. */
  sessionSet(
    sessionKey: string,
    instanceSetKey: string,
    binding: string,
    ttlMs: number,
    now: number,
    sessionId: string,
    instanceId: string,
    instanceSetPrefix: string,
  ): Promise<number>;
  acquire(
    leaderKey: string,
    termKey: string,
    holder: string,
    leaseMs: number,
  ): Promise<[number, number, string]>;
  renew(leaderKey: string, termKey: string, holder: string, term: number, leaseMs: number): Promise<number>;
  release(leaderKey: string, holder: string, term: number): Promise<number>;
  fencedPublish(termKey: string, key: string, term: number, value: string, channel: string): Promise<number>;
}

type Defined = {
  yggAcquire(...args: Array<string | number>): Promise<[number, number, string]>;
  yggRenew(...args: Array<string | number>): Promise<number>;
  yggRelease(...args: Array<string | number>): Promise<number>;
  yggFencedPublish(...args: Array<string | number>): Promise<number>;
  yggSessionSet(...args: Array<string | number>): Promise<number>;
  yggSessionDelete(...args: Array<string | number>): Promise<number>;
};

/** Defines the scripts on a connection (EVALSHA, loaded again after a Redis restart by ioredis). */
export function sharedScripts(redis: Redis): SharedScripts {
  redis.defineCommand('yggAcquire', { numberOfKeys: 2, lua: ACQUIRE });
  redis.defineCommand('yggRenew', { numberOfKeys: 2, lua: RENEW });
  redis.defineCommand('yggRelease', { numberOfKeys: 1, lua: RELEASE });
  redis.defineCommand('yggFencedPublish', { numberOfKeys: 2, lua: FENCED_PUBLISH });
  redis.defineCommand('yggSessionSet', { numberOfKeys: 2, lua: SESSION_SET });
  redis.defineCommand('yggSessionDelete', { numberOfKeys: 1, lua: SESSION_DELETE });
  const r = redis as unknown as Defined;
  return {
    acquire: (leaderKey, termKey, holder, leaseMs) => r.yggAcquire(leaderKey, termKey, holder, leaseMs),
    renew: (leaderKey, termKey, holder, term, leaseMs) =>
      r.yggRenew(leaderKey, termKey, holder, term, leaseMs),
    release: (leaderKey, holder, term) => r.yggRelease(leaderKey, holder, term),
    fencedPublish: (termKey, key, term, value, channel) =>
      r.yggFencedPublish(termKey, key, term, value, channel),
    sessionDelete: (sessionKey, prefix, sessionId) => r.yggSessionDelete(sessionKey, prefix, sessionId),
    sessionSet: (sessionKey, setKey, binding, ttlMs, now, sessionId, instanceId, prefix) =>
      r.yggSessionSet(sessionKey, setKey, binding, ttlMs, now, sessionId, instanceId, prefix),
  };
}
