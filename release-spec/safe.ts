/**
 * Strings from a release spec that end up as object keys, URL path segments or shown URLs.
 * Pure code with no imports, so the workflow bundle, the client and the activities share it.
 *
 * - Object keys: `__proto__`, `prototype` and `constructor` are refused wherever a spec string
 *   becomes a key or a path segment (Helm values paths, JSON paths, cookbook names, labels):
 *   assigning `obj["__proto__"]` replaces an object's prototype, and a dotted path through it
 *   reaches `Object.prototype` of the long-lived worker.
 * - Path segments: `.` and `..` are refused, since a URL path resolves them.
 * - URLs: credentials (userinfo) and query values are redacted wherever a URL is shown or
 *   recorded, and a spec that puts them there is refused (the spec is in the workflow history).
 */

export const UNSAFE_KEYS: readonly string[] = ['__proto__', 'prototype', 'constructor'];

export const isUnsafeKey = (key: string) => UNSAFE_KEYS.includes(key);

/** `.` and `..` resolve in a URL path: never a name. */
export const isDotSegment = (s: string) => s === '.' || s === '..';

/** A dotted path (`image.tag`) with an unsafe segment, or undefined. */
export function unsafeSegment(path: string, separator = '.'): string | undefined {
  return path.split(separator).find(isUnsafeKey);
}

/** A map without a prototype: keys are only ever data. */
export function nullProtoMap<T = unknown>(): Record<string, T> {
  return Object.create(null) as Record<string, T>;
}

/** Query parameter names that carry a credential by convention. */
const SECRET_PARAM = /^(access[_-]?token|api[_-]?key|apikey|auth|authorization|client[_-]?secret|code|credentials?|jwt|key|password|passwd|pwd|secret|session(id)?|sig|signature|token|x-amz-signature|x-amz-credential|x-amz-security-token|x-goog-signature|x-goog-credential)$/i;

/**
 * Why a URL must not be in a release spec (or undefined): credentials in the userinfo, or a query
 * parameter whose name says it is a credential. The spec is recorded in the workflow history and
 * shown in the UI; credentials belong in a header whose value comes from a reference.
 */
export function urlSecretProblem(url: string): string | undefined {
  const m = /^[a-z][a-z0-9+.-]*:\/\/([^/?#]*)/i.exec(url);
  if (m && m[1]!.includes('@')) return 'carries credentials (user:password@): the spec is recorded in the workflow history; send them in a header whose value comes from a reference';
  const q = url.indexOf('?');
  if (q >= 0) {
    const query = url.slice(q + 1).split('#')[0]!;
    for (const part of query.split('&')) {
      const name = decodeSafe(part.split('=')[0]!);
      if (SECRET_PARAM.test(name)) return `carries a credential in its query string (${name}=…): the spec is recorded in the workflow history; send it in a header whose value comes from a reference`;
    }
  }
  return undefined;
}

function decodeSafe(s: string): string {
  try {
    return decodeURIComponent(s.replace(/\+/g, ' '));
  } catch {
    return s;
  }
}

/**
 * A URL as it may be shown or recorded: userinfo replaced by `***`, every query value replaced by
 * `***` (names kept), no fragment. Text that is not a URL is returned unchanged.
 */
export function redactUrl(url: string): string {
  return url
    .replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/?#@]*@/i, '$1***@')
    .replace(/#.*$/s, '')
    .replace(/([?&][^=&#\s]*=)[^&#\s]*/g, '$1***');
}

/** Every http(s) URL inside a text, redacted (for error messages, reasons and logs). */
export function redactUrls(text: string): string {
  return text.replace(/\bhttps?:\/\/[^\s"'<>`]+/gi, (u) => redactUrl(u));
}
