// PUT /scaling: new MIN_INSTANCES / MAX_INSTANCES at run time, checked like the configuration (the
// same ranges, min at most max). Pure: the current limits and the body in, new limits or an error out.
import { z } from 'zod';
import { YggError } from '../core/errors.js';

export interface ScalingLimits {
  minInstances: number;
  maxInstances: number;
}

const Body = z
  .object({
    minInstances: z.number().int().min(0).max(1000).optional(),
    maxInstances: z.number().int().min(1).max(1000).optional(),
  })
  .strict();

const RULES: Record<keyof ScalingLimits, string> = {
  minInstances: 'an integer from 0 to 1000',
  maxInstances: 'an integer from 1 to 1000',
};

/** The limits `body` asks for, or YGG_ERR_VALIDATION naming the field, the value and the rule. */
export function nextLimits(current: ScalingLimits, body: unknown): ScalingLimits | YggError {
  const r = Body.safeParse(body);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    if (issue.code === 'unrecognized_keys') {
      return new YggError(
        'YGG_ERR_VALIDATION',
        `unknown field ${issue.keys.join(', ')}: the body takes minInstances and maxInstances`,
      );
    }
    if (issue.path.length === 0) {
      return new YggError(
        'YGG_ERR_VALIDATION',
        'the body must be a JSON object {minInstances?, maxInstances?}',
      );
    }
    const field = String(issue.path[0]) as keyof ScalingLimits;
    const value = (body as Record<string, unknown>)[field];
    return new YggError(
      'YGG_ERR_VALIDATION',
      `${field}=${JSON.stringify(value)} is not allowed: expected ${RULES[field] ?? 'a known field'}`,
      { details: { field, value, allowed: RULES[field] } },
    );
  }
  if (r.data.minInstances === undefined && r.data.maxInstances === undefined) {
    return new YggError('YGG_ERR_VALIDATION', 'nothing to change: give minInstances, maxInstances or both');
  }
  const next = {
    minInstances: r.data.minInstances ?? current.minInstances,
    maxInstances: r.data.maxInstances ?? current.maxInstances,
  };
  if (next.minInstances > next.maxInstances) {
    return new YggError(
      'YGG_ERR_VALIDATION',
      `minInstances=${next.minInstances} > maxInstances=${next.maxInstances}: minInstances must be at most maxInstances`,
      { details: next },
    );
  }
  return next;
}
