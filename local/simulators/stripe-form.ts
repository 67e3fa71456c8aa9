/**
 * Request decoding for the Stripe simulator: form bodies and query strings in Stripe's
 * bracket notation (`line_items[0][price]`, `metadata[org]`, `expand[]`), typed accessors
 * that raise Stripe-shaped parameter errors, and the customer search query language.
 */

export type FormValue = string | FormObject | FormValue[];
export interface FormObject {
  [key: string]: FormValue;
}

/** A failure rendered as Stripe's `{ error: { type, code, message, param } }`. */
export class StripeApiError extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    message: string,
    readonly code?: string,
    readonly param?: string,
    readonly extra: Record<string, unknown> = {},
  ) {
    super(message);
  }

  toBody(): { error: Record<string, unknown> } {
    const error: Record<string, unknown> = { type: this.type, message: this.message };
    if (this.code !== undefined) {
      error.code = this.code;
      error.doc_url = `https://stripe.com/docs/error-codes/${this.code.replace(/_/g, "-")}`;
    }
    if (this.param !== undefined) error.param = this.param;
    return { error: { ...error, ...this.extra } };
  }
}

export function invalidRequest(message: string, code?: string, param?: string): StripeApiError {
  return new StripeApiError(400, "invalid_request_error", message, code, param);
}

export function noSuch(kind: string, id: string, param = "id", status = 404): StripeApiError {
  return new StripeApiError(
    status,
    "invalid_request_error",
    `No such ${kind}: '${id}'`,
    "resource_missing",
    param,
  );
}

const FORBIDDEN_KEYS = new Set(["__proto__", "prototype", "constructor"]);

function splitKey(key: string): string[] | null {
  const open = key.indexOf("[");
  if (open === -1) return [key];
  const head = key.slice(0, open);
  const rest = key.slice(open);
  const parts = [head];
  const re = /\[([^\]]*)\]/gy;
  let consumed = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(rest)) !== null) {
    parts.push(m[1] ?? "");
    consumed = re.lastIndex;
  }
  if (consumed !== rest.length || head === "") return null;
  return parts;
}

function isIndexed(obj: FormObject, parentKey: string | undefined): boolean {
  if (parentKey === "metadata") return false;
  const keys = Object.keys(obj);
  return keys.length > 0 && keys.every((k) => /^\d+$/.test(k));
}

function normalize(value: FormValue, parentKey?: string): FormValue {
  if (typeof value === "string" || Array.isArray(value)) return value;
  for (const [k, v] of Object.entries(value)) value[k] = normalize(v, k);
  if (!isIndexed(value, parentKey)) return value;
  return Object.keys(value)
    .map(Number)
    .sort((a, b) => a - b)
    .map((i) => value[String(i)] as FormValue);
}

/** Decodes `a[b][0][c]=v` pairs into nested objects; all-numeric keys become arrays. */
export function decodeForm(params: URLSearchParams): FormObject {
  const root: FormObject = {};
  for (const [rawKey, value] of params) {
    const parts = splitKey(rawKey);
    if (!parts || parts.some((p) => FORBIDDEN_KEYS.has(p))) {
      throw invalidRequest(`Invalid parameter name: ${rawKey}`, "parameter_unknown", rawKey);
    }
    let node: FormObject = root;
    for (let i = 0; i < parts.length; i++) {
      let part = parts[i] ?? "";
      const last = i === parts.length - 1;
      if (part === "") part = String(Object.keys(node).length);
      if (last) {
        node[part] = value;
        break;
      }
      const existing = node[part];
      if (existing === undefined || typeof existing === "string") {
        const child: FormObject = {};
        node[part] = child;
        node = child;
      } else if (Array.isArray(existing)) {
        throw invalidRequest(`Invalid parameter name: ${rawKey}`, "parameter_unknown", rawKey);
      } else {
        node = existing;
      }
    }
  }
  for (const [k, v] of Object.entries(root)) root[k] = normalize(v, k);
  return root;
}

/** Order-independent fingerprint of a form body, for idempotency comparisons. */
export function formFingerprint(text: string): string {
  return [...new URLSearchParams(text)]
    .map(([k, v]) => `${k}=${v}`)
    .sort()
    .join("&");
}

// ---- typed accessors --------------------------------------------------------------

export function optString(form: FormObject, key: string, param = key): string | undefined {
  const v = form[key];
  if (v === undefined) return undefined;
  if (typeof v !== "string")
    throw invalidRequest(`Invalid string: ${param}`, "parameter_invalid_string", param);
  return v;
}

export function reqString(form: FormObject, key: string, param = key): string {
  const v = optString(form, key, param);
  if (v === undefined || v === "") {
    throw invalidRequest(`Missing required param: ${param}.`, "parameter_missing", param);
  }
  return v;
}

export function optInt(form: FormObject, key: string, param = key, min = 0): number | undefined {
  const v = optString(form, key, param);
  if (v === undefined) return undefined;
  if (!/^-?\d+$/.test(v)) {
    throw invalidRequest(`Invalid integer: ${v}`, "parameter_invalid_integer", param);
  }
  const n = Number(v);
  if (n < min) {
    throw invalidRequest(
      `This value must be greater than or equal to ${min}.`,
      "parameter_invalid_integer",
      param,
    );
  }
  return n;
}

export function optBool(form: FormObject, key: string, param = key): boolean | undefined {
  const v = optString(form, key, param);
  if (v === undefined) return undefined;
  if (v === "true") return true;
  if (v === "false") return false;
  throw invalidRequest(`Invalid boolean: ${v}`, "parameter_invalid_boolean", param);
}

export function optObject(form: FormObject, key: string, param = key): FormObject | undefined {
  const v = form[key];
  if (v === undefined) return undefined;
  if (v === "") return {};
  if (typeof v === "string" || Array.isArray(v)) {
    throw invalidRequest(`Invalid object: ${param}`, "parameter_invalid_object", param);
  }
  return v;
}

export function optArray(form: FormObject, key: string, param = key): FormValue[] | undefined {
  const v = form[key];
  if (v === undefined) return undefined;
  if (v === "") return [];
  if (!Array.isArray(v)) {
    throw invalidRequest(`Invalid array: ${param}`, "parameter_invalid_array", param);
  }
  return v;
}

export function arrayOfObjects(form: FormObject, key: string): FormObject[] {
  const items = optArray(form, key) ?? [];
  return items.map((item, i) => {
    if (typeof item === "string" || Array.isArray(item)) {
      throw invalidRequest(
        `Invalid object: ${key}[${i}]`,
        "parameter_invalid_object",
        `${key}[${i}]`,
      );
    }
    return item;
  });
}

export function stringArray(form: FormObject, key: string): string[] {
  return (optArray(form, key) ?? []).filter((v): v is string => typeof v === "string");
}

/** Rejects top-level parameters the real endpoint does not know, like Stripe does. */
export function assertKnownParams(form: FormObject, allowed: ReadonlySet<string>): void {
  for (const key of Object.keys(form)) {
    if (!allowed.has(key)) {
      throw invalidRequest(`Received unknown parameter: ${key}`, "parameter_unknown", key);
    }
  }
}

/**
 * Applies a `metadata[...]` update the way Stripe does: keys merge, an empty value unsets a
 * key, and `metadata=""` clears everything.
 */
export function mergeMetadata(
  current: Record<string, string>,
  form: FormObject,
  key = "metadata",
): Record<string, string> {
  const v = form[key];
  if (v === undefined) return current;
  if (v === "") return {};
  if (typeof v === "string" || Array.isArray(v)) {
    throw invalidRequest(`Invalid object: ${key}`, "parameter_invalid_object", key);
  }
  const next = new Map(Object.entries(current));
  for (const [k, val] of Object.entries(v)) {
    const param = `${key}[${k}]`;
    if (typeof val !== "string") throw invalidRequest(`Invalid string: ${param}`, undefined, param);
    if (k.length > 40) {
      throw invalidRequest(
        `Metadata keys can have up to 40 characters.`,
        "parameter_invalid_string",
        param,
      );
    }
    if (val.length > 500) {
      throw invalidRequest(
        `Metadata values can have up to 500 characters.`,
        "parameter_invalid_string",
        param,
      );
    }
    if (val === "") next.delete(k);
    else next.set(k, val);
  }
  if (next.size > 50) {
    throw invalidRequest("Metadata can have up to 50 keys.", undefined, key);
  }
  return Object.fromEntries(next);
}
