// Typed, defaulted, validated options: each option is a zod schema plus its default, a one-line doc
// and a human description of what is allowed, so a bad value is refused with name, value and rule.
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { YggError } from './errors.js';

export interface OptionDef<T> {
  schema: z.ZodType<T>;
  default: T;
  /** What values are allowed, in words (used in error messages and the README table). */
  allowed: string;
  doc: string;
}

type Raw = string | number | boolean | undefined;

const fromText = (v: unknown) => (typeof v === 'string' ? v.trim() : v);

export function int(min: number, max: number, def: number, doc: string): OptionDef<number> {
  const schema = z.preprocess((v) => {
    const t = fromText(v);
    return typeof t === 'string' && /^-?\d+$/.test(t) ? Number(t) : t;
  }, z.number().int().min(min).max(max));
  return { schema, default: def, allowed: `an integer from ${min} to ${max}`, doc };
}

export function num(min: number, max: number, def: number, doc: string): OptionDef<number> {
  const schema = z.preprocess((v) => {
    const t = fromText(v);
    return typeof t === 'string' && /^-?\d+(\.\d+)?$/.test(t) ? Number(t) : t;
  }, z.number().min(min).max(max));
  return { schema, default: def, allowed: `a number from ${min} to ${max}`, doc };
}

const UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };

/** A size in bytes, written as a number or with a K/M/G suffix (binary units, like Docker's 512M). */
export function bytes(min: number, max: number, def: number, doc: string): OptionDef<number> {
  const schema = z.preprocess((v) => {
    const t = fromText(v);
    if (typeof t !== 'string') return t;
    const m = /^(\d+(?:\.\d+)?)\s*([kmg]?)i?b?$/i.exec(t);
    return m ? Math.round(Number(m[1]) * UNITS[m[2]!.toLowerCase()]!) : t;
  }, z.number().int().min(min).max(max));
  return {
    schema,
    default: def,
    allowed: `a size in bytes from ${min} to ${max} (K, M, G suffixes allowed)`,
    doc,
  };
}

export function oneOf<const T extends readonly [string, ...string[]]>(
  values: T,
  def: T[number],
  doc: string,
): OptionDef<T[number]> {
  return {
    schema: z.preprocess(fromText, z.enum(values)),
    default: def,
    allowed: `one of ${values.join(', ')}`,
    doc,
  };
}

export function bool(def: boolean, doc: string): OptionDef<boolean> {
  const schema = z.preprocess((v) => {
    const t = fromText(v);
    if (t === 'true' || t === '1' || t === 'on' || t === 'yes') return true;
    if (t === 'false' || t === '0' || t === 'off' || t === 'no') return false;
    return t;
  }, z.boolean());
  return { schema, default: def, allowed: 'true or false', doc };
}

export function text(def: string, doc: string, allowed = 'any text', pattern?: RegExp): OptionDef<string> {
  const base = z.string();
  return { schema: z.preprocess(fromText, pattern ? base.regex(pattern) : base), default: def, allowed, doc };
}

export type OptionTable = Record<string, OptionDef<unknown>>;
export type ValuesOf<T extends OptionTable> = {
  -readonly [K in keyof T]: T[K] extends OptionDef<infer V> ? V : never;
};

export function configError(message: string, details?: unknown): YggError {
  return new YggError('YGG_ERR_CONFIG', message, { details });
}

/** Reads an optional JSON config file whose keys are the option names; unknown keys are refused. */
export function readConfigFile(path: string, table: OptionTable): Record<string, Raw> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw configError(`YGG_CONFIG=${path}: cannot read a JSON object from it (${(err as Error).message})`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw configError(`YGG_CONFIG=${path}: expected a JSON object of option names to values`);
  }
  for (const key of Object.keys(parsed)) {
    if (!(key in table)) {
      throw configError(
        `YGG_CONFIG=${path}: unknown option ${key}; allowed: ${Object.keys(table).join(', ')}`,
      );
    }
  }
  return parsed as Record<string, Raw>;
}

/**
 * Resolves every option from the environment, then the config file, then its default.
 * An empty environment variable counts as unset. Throws YGG_ERR_CONFIG naming the first bad value.
 */
export function resolveOptions<T extends OptionTable>(
  table: T,
  env: NodeJS.ProcessEnv,
  file: Record<string, Raw> = {},
): ValuesOf<T> {
  const out: Record<string, unknown> = {};
  for (const [name, def] of Object.entries(table)) {
    const fromEnv = env[name];
    const raw: Raw = fromEnv !== undefined && fromEnv !== '' ? fromEnv : file[name];
    if (raw === undefined) {
      out[name] = def.default;
      continue;
    }
    const result = def.schema.safeParse(raw);
    if (!result.success) {
      throw configError(`${name}=${JSON.stringify(raw)} is not allowed: expected ${def.allowed}`, {
        variable: name,
        value: raw,
        allowed: def.allowed,
      });
    }
    out[name] = result.data;
  }
  return out as ValuesOf<T>;
}
