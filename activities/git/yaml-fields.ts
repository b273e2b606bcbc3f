/**
 * The lines a Git-mode release changes, found and edited in the file's own text.
 *
 * A release changes single scalar values: the `newTag` (or `digest`, `newName`) of one `images:`
 * entry, or one HelmRelease values path. They are located with the `yaml` parser, which gives
 * every node its byte range in the source, and replaced by splicing only that range: every other
 * byte of the file (comments, key order, indentation, quoting elsewhere) stays as the authors
 * wrote it, so the commit's diff is exactly the changed lines and the undo can put back exactly
 * the text that was there.
 *
 * Three kinds of file, told apart by the file name, as kustomize does:
 * - `kustomization.yaml` / `kustomization.yml` / `Kustomization`: a kustomize file whose
 *   `images:` list the target Kustomization builds with (the Flux Kustomization reads it itself);
 * - any other YAML file with the Flux `Kustomization` object named like the target: its
 *   `spec.images` (a parent Kustomization applies that object, the `flux bootstrap` layout);
 * - any other YAML file with the `HelmRelease` object named like the target: its `spec.values`.
 */
import { type Document, isMap, isScalar, isSeq, parseAllDocuments, type Scalar, stringify, type YAMLMap } from 'yaml';
import type { FluxTarget, KustomizeImage } from '../flux/types.ts';

export type FileKind = 'kustomize' | 'flux-kustomization' | 'helmrelease';

const KUSTOMIZE_FILE = /(^|\/)(kustomization\.ya?ml|Kustomization)$/;

/** What kind of file the path names for this target, by its name (kustomize reads only those names). */
export function fileKindOf(target: Pick<FluxTarget, 'kind'>, path: string): FileKind {
  if (KUSTOMIZE_FILE.test(path)) return 'kustomize';
  return target.kind === 'Kustomization' ? 'flux-kustomization' : 'helmrelease';
}

/** One scalar the release changes, where it is in the file and what it holds. */
export interface LocatedField {
  /** as a person names it: `images[ghcr.io/acme/web].newTag`, `spec.values.image.tag` */
  key: string;
  /** 1-based line of the value */
  line: number;
  /** byte range of the scalar in the file (quotes included) */
  start: number;
  end: number;
  /** the scalar as written, quotes included: what an undo puts back */
  text: string;
  /** its value as YAML reads it */
  value: unknown;
  /** how it is written (PLAIN, QUOTE_DOUBLE, QUOTE_SINGLE) */
  style: string;
  /** what the release wants there */
  want: string | number | boolean;
}

/** Why the file cannot be changed as the release asks; a person can act on the message. */
export class FieldProblem extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FieldProblem';
  }
}

type TargetShape = Pick<FluxTarget, 'kind' | 'namespace' | 'name'> & ({ kind: 'Kustomization'; images: KustomizeImage[] } | { kind: 'HelmRelease'; values: Array<{ path: string; value: string | number | boolean }> });

const str = (v: unknown) => (typeof v === 'string' ? v : undefined);

function lineOf(text: string, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset && i < text.length; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

function parseDocs(text: string, path: string): Document.Parsed[] {
  const docs = parseAllDocuments(text);
  if (!Array.isArray(docs)) throw new FieldProblem(`${path} is empty`);
  for (const d of docs) {
    if (d.errors.length) throw new FieldProblem(`${path} is not valid YAML: ${d.errors[0]!.message.split('\n')[0]}`);
  }
  return docs;
}

/** The document holding the Flux object of the target (kind and name; namespace when the file sets it). */
function objectDoc(docs: Document.Parsed[], target: TargetShape, group: string, path: string): Document.Parsed {
  const matches = docs.filter((d) => {
    const api = str(d.get('apiVersion'));
    return (
      d.get('kind') === target.kind &&
      api?.startsWith(`${group}/`) &&
      d.getIn(['metadata', 'name']) === target.name &&
      [undefined, target.namespace].includes(str(d.getIn(['metadata', 'namespace'])))
    );
  });
  if (matches.length === 1) return matches[0]!;
  const found = docs.map((d) => `${d.get('kind') ?? '(no kind)'} ${d.getIn(['metadata', 'name']) ?? ''}`.trim()).join(', ');
  if (matches.length === 0) throw new FieldProblem(`${path} holds no ${target.kind} ${target.namespace}/${target.name} (${group}) — it has: ${found || 'nothing'}`);
  throw new FieldProblem(`${path} holds ${matches.length} ${target.kind} objects named ${target.name}: name the namespace in each`);
}

function scalarAt(node: unknown, key: string, path: string): Scalar {
  if (!isScalar(node)) throw new FieldProblem(`${key} in ${path} is ${node === undefined || node === null ? 'absent' : 'not a single value'}`);
  const s = node as Scalar;
  if (!s.range) throw new FieldProblem(`${key} in ${path} has no position`);
  if (s.type === 'BLOCK_LITERAL' || s.type === 'BLOCK_FOLDED') throw new FieldProblem(`${key} in ${path} is a block scalar (| or >): Git mode changes one-line values only`);
  return s;
}

function located(text: string, node: Scalar, key: string, want: string | number | boolean): LocatedField {
  const [start, end] = node.range as [number, number, number];
  return { key, line: lineOf(text, start), start, end, text: text.slice(start, end), value: node.value, style: node.type ?? 'PLAIN', want };
}

/** The `images:` entries for the release's images, in a kustomize file or a Flux Kustomization's spec. */
function imageFields(text: string, images: YAMLMap | undefined | unknown, wanted: KustomizeImage[], where: string, path: string): LocatedField[] {
  if (!isSeq(images)) throw new FieldProblem(`${path} has no ${where} list: Git mode changes existing lines only; add the entries for ${wanted.map((w) => w.name).join(', ')} in Git first`);
  const out: LocatedField[] = [];
  for (const want of wanted) {
    const entry = images.items.find((i) => isMap(i) && i.get('name') === want.name) as YAMLMap | undefined;
    if (!entry) {
      const names = images.items.map((i) => (isMap(i) ? String(i.get('name')) : '?')).join(', ');
      throw new FieldProblem(`${path} has no ${where} entry for ${want.name} (entries: ${names || 'none'}): add it in Git first, with the tag that runs now`);
    }
    const base = `${where}[${want.name}]`;
    if (want.newTag !== undefined && want.digest === undefined && entry.has('digest')) {
      throw new FieldProblem(`${base} in ${path} has a digest, which kustomize uses over newTag: release a digest, or remove the digest line in Git first`);
    }
    for (const field of ['newName', 'newTag', 'digest'] as const) {
      const value = want[field];
      if (value === undefined) continue;
      const node = entry.get(field, true);
      if (node === undefined) {
        throw new FieldProblem(
          `${base} in ${path} has no ${field} line: Git mode changes existing lines only, so that its undo restores them exactly; add \`${field}: <what runs now>\` to the entry in Git first`,
        );
      }
      out.push(located(text, scalarAt(node, `${base}.${field}`, path), `${base}.${field}`, value));
    }
  }
  return out;
}

/**
 * Finds every scalar the release changes in `text` (the file at `path`); throws FieldProblem when
 * the file does not hold them as existing one-line values.
 */
export function locateFields(text: string, target: TargetShape, path: string): { kind: FileKind; fields: LocatedField[] } {
  const kind = fileKindOf(target, path);
  const docs = parseDocs(text, path);
  if (kind === 'kustomize') {
    if (target.kind !== 'Kustomization') throw new FieldProblem(`${path} is a kustomize file: a HelmRelease's values live in the HelmRelease manifest; point git.path at that file`);
    const doc = docs.find((d) => isMap(d.contents));
    if (!doc) throw new FieldProblem(`${path} is not a kustomization (no map at the top)`);
    const api = str(doc.get('apiVersion'));
    if (api && !api.startsWith('kustomize.config.k8s.io/')) throw new FieldProblem(`${path} has apiVersion ${api}, not a kustomize.config.k8s.io kustomization`);
    return { kind, fields: imageFields(text, doc.get('images', true), target.images, 'images', path) };
  }
  if (target.kind === 'Kustomization') {
    const doc = objectDoc(docs, target, 'kustomize.toolkit.fluxcd.io', path);
    return { kind, fields: imageFields(text, doc.getIn(['spec', 'images'], true), target.images, 'spec.images', path) };
  }
  const doc = objectDoc(docs, target, 'helm.toolkit.fluxcd.io', path);
  const fields = target.values.map(({ path: vpath, value }) => {
    const keys = vpath.split('.');
    const key = `spec.values.${vpath}`;
    let node: unknown = doc.getIn(['spec', 'values'], true);
    for (const k of keys) {
      if (!isMap(node)) throw new FieldProblem(`${key} in ${path} is absent: Git mode changes existing lines only; add it in Git first, with the value that runs now`);
      node = node.get(k, true);
    }
    if (node === undefined) throw new FieldProblem(`${key} in ${path} is absent: Git mode changes existing lines only; add it in Git first, with the value that runs now`);
    return located(text, scalarAt(node, key, path), key, value);
  });
  return { kind, fields };
}

/** A value as a one-line YAML scalar in the style the file used there, quoted where YAML would misread it. */
export function scalarText(value: string | number | boolean, style: string): string {
  if (typeof value !== 'string') return String(value);
  if (style === 'QUOTE_SINGLE') return `'${value.replace(/'/g, "''")}'`;
  if (style === 'QUOTE_DOUBLE') return JSON.stringify(value);
  // plain only where both YAML 1.2 (kustomize) and YAML 1.1 (Helm's reader) take it as this string
  const plain = stringify(value).trimEnd() === value && stringify(value, { version: '1.1' }).trimEnd() === value;
  return plain && !value.includes('\n') ? value : JSON.stringify(value);
}

/** Replaces the given ranges of `text` (non-overlapping), leaving every other byte as it was. */
export function spliceFields(text: string, edits: Array<{ start: number; end: number; text: string }>): string {
  let out = text;
  for (const e of [...edits].sort((a, b) => b.start - a.start)) out = out.slice(0, e.start) + e.text + out.slice(e.end);
  return out;
}

/** Two scalar values are the same when YAML reads them the same (quoting aside). */
export const sameValue = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/** Whether the located field already holds what the release wants (a string "2.0" and a number 2.0 differ). */
export const holdsWant = (f: LocatedField) => sameValue(f.value, f.want);
