// The strict schema of POST /process: what a caller may ask the reference agent to do.
import { z } from 'zod';
import { YggError } from '../core/errors.js';

export const ProcessRequest = z
  .object({
    /** Any JSON; echoed back in `output`. */
    input: z.unknown().optional(),
    /** Simulated waiting (an LLM call, a tool), in milliseconds. */
    workMs: z.number().int().min(0).max(600_000).default(0),
    /** Busy CPU time, in milliseconds (blocks this instance's event loop, as real compute would). */
    cpuMs: z.number().int().min(0).max(10_000).default(0),
    /** Answer 500 instead of a result (to exercise breakers and alerts). */
    fail: z.boolean().default(false),
  })
  .strict();

export type ProcessRequest = z.infer<typeof ProcessRequest>;

export function parseProcessRequest(body: unknown): ProcessRequest {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new YggError('YGG_ERR_VALIDATION', 'request body must be a JSON object');
  }
  const result = ProcessRequest.safeParse(body);
  if (result.success) return result.data;
  const problems = result.error.issues.map((i) => {
    const field = i.path.join('.') || '(body)';
    return i.code === 'unrecognized_keys'
      ? `unknown field(s) ${i.keys.join(', ')}`
      : `${field}: ${i.message}`;
  });
  throw new YggError('YGG_ERR_VALIDATION', `invalid /process request: ${problems.join('; ')}`, {
    details: result.error.issues.map((i) => ({ path: i.path, message: i.message })),
  });
}
