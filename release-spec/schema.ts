/**
 * The release spec: the one schema that the CLI, the worker and the workflow share.
 * Every object is strict, because a typo in a release spec ("imgaes") must not pass silently.
 * Field names follow the vocabulary of the systems they drive: Flux (`images[].newTag`,
 * `digest`), Chef (`cookbooks`, `environment`, knife's `chef_server_url` as `serverUrl`) and
 * Argo Rollouts-style canary steps (`setWeight`, `pause`).
 */
import { z } from 'zod';
import { isValidConstraint } from '../activities/chef/constraints.ts';
import { parseDuration } from './duration.ts';
import { isDotSegment, isUnsafeKey, redactUrl, unsafeSegment, urlSecretProblem } from './safe.ts';

export const API_VERSION = 'hybrid-release.dev/v1alpha1';
export const KIND = 'HybridRelease';

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const show = (v: unknown) => JSON.stringify(typeof v === 'string' ? redactUrl(v) : v);

/** An http(s) URL that carries no credentials: the spec is recorded in the workflow history. */
const httpUrl = (hint: string) =>
  z
    .url({ protocol: /^https?$/, error: (i) => `${show(i.input)} is not an http(s) URL${hint}` })
    .superRefine((u, ctx) => {
      const problem = urlSecretProblem(u);
      if (problem) ctx.addIssue({ code: 'custom', message: `${show(u)} ${problem}` });
    });

const UNSAFE = `is not allowed as a name or path segment (__proto__, prototype and constructor are refused)`;

const label = (what: string) =>
  z
    .string({ error: (i) => (i.input === undefined ? 'is required' : `${what} must be a string`) })
    .max(63, { error: `${what} must be at most 63 characters` })
    .regex(DNS1123_LABEL, {
      error: (i) => `${show(i.input)} is not a valid ${what} (lower-case letters, digits and "-", starting and ending with a letter or digit)`,
    });

const objectName = z
  .string({ error: 'must be a string' })
  .max(253)
  .regex(DNS1123_SUBDOMAIN, {
    error: (i) => `${show(i.input)} is not a valid Kubernetes object name (lower-case letters, digits, "-" and ".")`,
  });

const id = z.string().regex(/^[a-z0-9]([-a-z0-9_]*[a-z0-9])?$/, {
  error: (i) => `${show(i.input)} is not a valid id (lower-case letters, digits, "-" and "_")`,
});

export const duration = z.string({ error: 'must be a duration string such as "90s", "10m" or "1h30m"' }).refine(
  (s) => (parseDuration(s) ?? 0) > 0,
  { error: (i) => `${show(i.input)} is not a duration (write e.g. "90s", "10m", "1h30m")` },
);

const kubeContext = z.string().min(1, { error: 'context must not be empty (omit it to use the current context)' });

/** Exactly one of `keys` must be present; a clear message either way. */
function exactlyOne(keys: readonly string[], what: string) {
  return (value: Record<string, unknown>, ctx: z.core.$RefinementCtx) => {
    const present = keys.filter((k) => value[k] !== undefined);
    if (present.length !== 1) {
      ctx.addIssue({
        code: 'custom',
        message:
          present.length === 0
            ? `${what} needs one of: ${keys.join(', ')}`
            : `${what} takes only one of ${keys.join(', ')} (found ${present.join(' and ')})`,
      });
    }
  };
}

// ---------------------------------------------------------------------------- references to secrets

/** A value that is resolved by the worker at run time, so the secret never enters workflow history. */
export const valueFrom = z
  .strictObject({
    env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, { error: 'env must be an environment variable name' }).optional(),
    file: z.string().min(1).optional(),
    secret: z
      .strictObject({ name: objectName, namespace: label('namespace'), key: z.string().min(1), context: kubeContext.optional() })
      .optional(),
  })
  .superRefine(exactlyOne(['env', 'file', 'secret'], 'a value reference'));
export type ValueFrom = { env: string } | { file: string } | { secret: { name: string; namespace: string; key: string; context?: string } };

const looksLikeKey = (s: string) => /-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(s);

export const chefCredentials = z
  .strictObject({
    keyFile: z.string().min(1).optional(),
    clientName: z.string().min(1).optional(),
    profile: z.string().min(1).optional(),
    credentialsFile: z.string().min(1).optional(),
    secret: z.strictObject({ name: objectName, namespace: label('namespace'), context: kubeContext.optional() }).optional(),
  })
  .superRefine((c, ctx) => {
    exactlyOne(['keyFile', 'profile', 'secret'], 'credentials')(c, ctx);
    for (const [k, v] of Object.entries(c)) {
      if (typeof v === 'string' && looksLikeKey(v)) {
        ctx.addIssue({ code: 'custom', path: [k], message: 'holds key material: give a key file path, a profile or a Secret name instead — keys must never be in a release spec' });
      }
    }
    if (c.keyFile && !c.clientName) ctx.addIssue({ code: 'custom', path: ['clientName'], message: 'keyFile needs clientName (the Chef client the key belongs to)' });
    if (c.clientName && !c.keyFile) ctx.addIssue({ code: 'custom', path: ['clientName'], message: 'clientName goes with keyFile (a profile or Secret carries its own client name)' });
    if (c.credentialsFile && !c.profile) ctx.addIssue({ code: 'custom', path: ['credentialsFile'], message: 'credentialsFile goes with profile' });
  });
export type ChefCredentialsRef =
  | { keyFile: string; clientName: string }
  | { profile: string; credentialsFile?: string }
  | { secret: { name: string; namespace: string; context?: string } };

// ---------------------------------------------------------------------------- Flux targets

const imageName = z.string().regex(/^[a-z0-9]+([._\-/:][a-z0-9]+)*$/, {
  error: (i) => `${show(i.input)} is not an image name (no tag or digest here: write the tag in newTag)`,
}).refine((s) => !s.split('/').pop()!.includes(':'), { error: (i) => `${show(i.input)} carries a tag: put only the repository in name and the tag in newTag` });

export const kustomizeImage = z
  .strictObject({
    name: imageName,
    newName: imageName.optional(),
    newTag: z.string().regex(/^[\w][\w.-]{0,127}$/, { error: (i) => `${show(i.input)} is not a valid image tag` }).optional(),
    digest: z.string().regex(/^sha256:[a-f0-9]{64}$/, { error: (i) => `${show(i.input)} is not a digest (sha256: and 64 hex digits)` }).optional(),
  })
  .refine((i) => i.newTag !== undefined || i.digest !== undefined, { error: 'an image needs newTag or digest' });
export type KustomizeImage = z.infer<typeof kustomizeImage>;

const kubeRef = {
  namespace: label('namespace'),
  name: objectName,
  context: kubeContext.optional(),
};

const helmValue = z.strictObject({
  path: z
    .string()
    .regex(/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/, {
      error: (i) => `${show(i.input)} is not a values path (dotted keys, e.g. image.tag)`,
    })
    .refine((p) => unsafeSegment(p) === undefined, { error: (i) => `${show(i.input)}: "${unsafeSegment(String(i.input))}" ${UNSAFE}` }),
  value: z.union([z.string(), z.number(), z.boolean()], { error: 'value must be a string, number or boolean' }),
});

/**
 * Git mode (docs/git-mode.md): the release commits the change to the file at `path` in the
 * repository and branch the Flux source reads (a kustomization.yaml `images:` entry, a Flux
 * Kustomization's `spec.images`, or a HelmRelease's `spec.values`), instead of patching the live
 * object. The repository and branch come from the cluster (the GitRepository Flux reads), never
 * from the spec; the push credentials are a reference the worker resolves.
 */
const repoPath = z
  .string({ error: 'path must be a string' })
  .min(1)
  .max(1024)
  .regex(/^(?!\/)(?!.*\/\/)(?!.*(^|\/)\.\.?(\/|$))[^\0\\]+\.ya?ml$/, {
    error: (i) => `${show(i.input)} is not a path to a YAML file inside the repository (relative, no "." or ".." segments, ending in .yaml or .yml)`,
  });

export const gitMode = z.strictObject({
  path: repoPath,
  credentials: z
    .strictObject({
      /** the HTTP user name to push as (default "git"; many hosts ignore it for tokens) */
      username: z.string().min(1).max(256).regex(/^[^:\s]+$/, { error: 'username must not contain ":" or spaces' }).optional(),
      /** the password or token: a reference the worker resolves, never the value itself */
      passwordFrom: valueFrom.transform((v) => v as ValueFrom),
    })
    .optional(),
});
export type GitModeSpec = z.output<typeof gitMode>;

/**
 * The mode of a Flux target: `git` commits to Git; without it the live object is patched, which
 * preflight refuses when a parent Kustomization applies that field from Git (it would put the Git
 * value back) unless `acceptDrift: true` says that is understood.
 */
const fluxMode = {
  git: gitMode.optional(),
  acceptDrift: z.boolean({ error: 'acceptDrift must be true or false' }).optional(),
};

const oneMode = (t: { git?: unknown; acceptDrift?: boolean }, ctx: z.core.$RefinementCtx) => {
  if (t.git !== undefined && t.acceptDrift !== undefined) {
    ctx.addIssue({ code: 'custom', path: ['acceptDrift'], message: 'acceptDrift is for live mode: a Git-mode target changes Git, so Flux never reverts it (remove one of git and acceptDrift)' });
  }
};

export const fluxTarget = z.discriminatedUnion(
  'kind',
  [
    z.strictObject({ id: id.optional(), kind: z.literal('Kustomization'), ...kubeRef, images: z.array(kustomizeImage).min(1, { error: 'list at least one image' }), ...fluxMode }).superRefine(oneMode),
    z.strictObject({ id: id.optional(), kind: z.literal('HelmRelease'), ...kubeRef, values: z.array(helmValue).min(1, { error: 'list at least one value' }), ...fluxMode }).superRefine(oneMode),
  ],
  { error: (i) => `kind must be "Kustomization" or "HelmRelease"${i.input === undefined ? '' : ` (got ${show((i.input as { kind?: unknown })?.kind)})`}` },
);

// ---------------------------------------------------------------------------- Chef targets

export const chefTarget = z.strictObject({
  id: id.optional(),
  serverUrl: httpUrl(" (knife's chef_server_url, e.g. https://chef.example.com/organizations/acme)"),
  environment: z
    .string()
    .regex(/^[A-Za-z0-9_-]+$/, { error: (i) => `${show(i.input)} is not a Chef environment name (letters, digits, "_" and "-")` })
    .refine((e) => e !== '_default', { error: 'the _default environment cannot be modified: pin versions in a named environment' }),
  cookbooks: z
    .record(
      z
        .string()
        .regex(/^[A-Za-z0-9_.-]+$/, { error: (i) => `${show(i.input)} is not a cookbook name` })
        .refine((n) => !isDotSegment(n), { error: (i) => `${show(i.input)} is not a cookbook name ("." and ".." are path segments)` })
        .refine((n) => !isUnsafeKey(n), { error: (i) => `${show(i.input)} ${UNSAFE}` }),
      z.string({ error: 'a constraint must be a string such as "= 1.5.3" or "~> 1.5"' }).refine(isValidConstraint, {
        error: (i) => `${show(i.input)} is not a Chef version constraint (write "${suggestConstraint(String(i.input))}": an operator of = > < >= <= ~>, one space, then 1 to 3 numbers)`,
      }),
    )
    .refine((r) => Object.keys(r).length > 0, { error: 'list at least one cookbook' }),
  credentials: chefCredentials.transform((c) => c as ChefCredentialsRef),
  protocol: z.enum(['1.0', '1.1', '1.3'], { error: 'protocol must be "1.0", "1.1" or "1.3"' }).default('1.1'),
});

function suggestConstraint(s: string): string {
  const m = /^\s*(=|>=|<=|~>|>|<)?\s*(\d+(?:\.\d+){0,2})/.exec(s);
  return m ? `${m[1] ?? '='} ${m[2]}` : '~> 1.5';
}

// ---------------------------------------------------------------------------- canary, gates, steps

export const ingressRef = z.strictObject(kubeRef);

export const canary = z.strictObject({
  ingress: ingressRef,
  weightTotal: z.int().min(1).max(1_000_000).default(100),
  /**
   * Allow an Ingress that looks like the primary (no canary annotation, no other Ingress for the
   * same host and path) to be used as the canary. Preflight refuses it otherwise: marking the
   * primary as a canary would send its traffic nowhere.
   */
  allowPrimary: z.boolean().optional(),
});

const deploymentRef = z.strictObject({
  ...kubeRef,
  container: z.string().min(1).optional(),
  image: z.string().min(1).optional(),
});

const httpGate = z.strictObject({
  url: httpUrl(''),
  expectStatus: z.int().min(100).max(599).default(200),
  json: z
    .record(
      z
        .string()
        .regex(/^\$(\.[A-Za-z0-9_-]+|\[\d+\])*$/, { error: (i) => `${show(i.input)} is not a JSON path such as $.version` })
        .refine((p) => !p.split(/[.[\]]/).some(isUnsafeKey), { error: (i) => `${show(i.input)}: ${UNSAFE}` }),
      z.union([z.string(), z.number(), z.boolean()]),
    )
    .optional(),
  headers: z.record(z.string().regex(/^[A-Za-z0-9-]+$/), valueFrom.transform((v) => v as ValueFrom)).optional(),
  caFile: z.string().min(1).optional(),
  insecureSkipVerify: z.boolean().optional(),
  followRedirects: z.boolean().default(false),
  requestTimeout: duration.default('10s'),
});

const prometheusGate = z.strictObject({
  url: httpUrl(''),
  query: z.string().min(1, { error: 'query must be a PromQL expression' }),
  comparison: z.enum(['<', '<=', '>', '>='], { error: 'comparison must be one of <, <=, >, >=' }),
  threshold: z.number({ error: 'threshold must be a number' }),
  onEmpty: z.enum(['fail', 'pass', 'wait'], { error: 'onEmpty must be fail, pass or wait' }).default('wait'),
});

/**
 * Chef node convergence (activities/chef/convergence.ts has the rules). The percentage counts the
 * environment's nodes that use the release's cookbooks and are not stale; stale nodes (no
 * successful chef-client run within staleAfter: decommissioned or broken VMs whose node objects
 * remain) are listed apart and count only with includeStale. So the default minPercent 100 means
 * "every live node", and a dead VM neither blocks the release nor counts as converged.
 */
const chefConvergenceGate = z
  .strictObject({
    target: id,
    minPercent: z
      .number({ error: 'minPercent must be a number from 1 to 100' })
      .min(1, { error: 'minPercent must be at least 1 (percent of the live nodes that must converge)' })
      .max(100, { error: 'minPercent must be at most 100 (percent of the live nodes that must converge)' })
      .default(100),
    maxFailed: z
      .int({ error: 'maxFailed must be a whole number (failed nodes tolerated before the gate fails)' })
      .min(0, { error: 'maxFailed must be 0 or more (failed nodes tolerated before the gate fails)' })
      .default(0),
    staleAfter: duration.default('1h'),
    includeStale: z.boolean({ error: 'includeStale must be true or false' }).default(false),
    maxClockSkew: duration
      .refine((d) => parseDuration(d)! <= 15 * 60_000, {
        error: (i) => `${show(i.input)} is more than 15m: Chef servers refuse signed requests from clocks more than 15 minutes off, so no node that saves itself is further off`,
      })
      .default('5m'),
  })
  .superRefine((g, ctx) => {
    if (parseDuration(g.staleAfter)! <= parseDuration(g.maxClockSkew)!) {
      ctx.addIssue({ code: 'custom', path: ['staleAfter'], message: `staleAfter (${g.staleAfter}) must be longer than maxClockSkew (${g.maxClockSkew}): give it at least the nodes' chef-client interval plus splay` });
    }
  });

const GATE_KINDS = ['fluxReady', 'rollout', 'http', 'prometheus', 'chefConvergence'] as const;
export type GateKind = (typeof GATE_KINDS)[number];

export const gate = z
  .strictObject({
    fluxReady: z.strictObject({ target: id }).optional(),
    rollout: deploymentRef.optional(),
    http: httpGate.optional(),
    prometheus: prometheusGate.optional(),
    chefConvergence: chefConvergenceGate.optional(),
    timeout: duration.default('5m'),
    interval: duration.default('10s'),
    successes: z.int().min(1).max(1000).default(1),
  })
  .superRefine(exactlyOne(GATE_KINDS, 'a gate'));

const pause = z
  .strictObject({
    duration: duration.optional(),
    deadline: duration.optional(),
    onTimeout: z.enum(['abort', 'promote'], { error: 'onTimeout must be abort or promote' }).optional(),
  })
  .superRefine((p, ctx) => {
    if (p.duration && (p.deadline || p.onTimeout)) {
      ctx.addIssue({ code: 'custom', message: 'a timed pause (duration) takes no deadline or onTimeout: those belong to a pause that waits for approval' });
    }
    if (p.deadline && !p.onTimeout) ctx.addIssue({ code: 'custom', path: ['onTimeout'], message: 'a deadline needs onTimeout: abort or promote (what happens when nobody answers)' });
    if (p.onTimeout && !p.deadline) ctx.addIssue({ code: 'custom', path: ['deadline'], message: 'onTimeout needs a deadline' });
  });

const STEP_KINDS = ['chef', 'flux', 'setWeight', 'pause', 'gate'] as const;
export const step = z
  .strictObject({
    chef: id.optional(),
    flux: id.optional(),
    setWeight: z.int({ error: 'setWeight must be a whole number' }).min(0).optional(),
    pause: pause.optional(),
    gate: z.union([id, z.array(id).min(1)], { error: 'gate takes a gate name or a list of gate names' }).optional(),
  })
  .superRefine(exactlyOne(STEP_KINDS, 'a step'));

// ---------------------------------------------------------------------------- the release

export const releaseSpec = z.strictObject({
  apiVersion: z.literal(API_VERSION, { error: `apiVersion must be ${API_VERSION}` }),
  kind: z.literal(KIND, { error: `kind must be ${KIND}` }),
  metadata: z.strictObject({
    name: label('release name'),
    labels: z.record(z.string().refine((k) => !isUnsafeKey(k), { error: (i) => `${show(i.input)} ${UNSAFE}` }), z.string()).optional(),
  }),
  spec: z
    .strictObject({
      app: label('app name'),
      version: z.string().min(1).max(128).optional(),
      description: z.string().max(1000).optional(),
      flux: z.array(fluxTarget).default([]),
      chef: z.array(chefTarget).default([]),
      canary: canary.optional(),
      gates: z.record(id, gate).default({}),
      steps: z.array(step).min(1, { error: 'steps, when given, lists at least one step (omit it for the default plan)' }).optional(),
      approvals: z.strictObject({ approvers: z.array(z.string().min(1)).default([]) }).default({ approvers: [] }),
      notifications: z
        .strictObject({ webhooks: z.array(z.strictObject({ urlFrom: valueFrom.transform((v) => v as ValueFrom) })).default([]) })
        .default({ webhooks: [] }),
      rollback: z
        .strictObject({
          maxAttempts: z.int().min(1).max(100).default(5),
        })
        .default({ maxAttempts: 5 }),
      /**
       * Leases on shared targets (docs/leases.md): how long the release may wait for another
       * release to free a target it needs; when it runs out the release fails with nothing changed.
       * Default 1h.
       */
      leases: z.strictObject({ timeout: duration.optional() }).optional(),
    })
    .superRefine(checkReferences),
});

type Parsed = z.output<typeof releaseSpec>;
type ParsedBody = Parsed['spec'];
/** A target's id is optional in the file and always filled in after loading. */
export type FluxTarget = ParsedBody['flux'][number] & { id: string };
export type ChefTarget = ParsedBody['chef'][number] & { id: string };
export type Body = Omit<ParsedBody, 'flux' | 'chef'> & { flux: FluxTarget[]; chef: ChefTarget[] };
/** A validated spec, as the workflow receives it. */
export type ReleaseSpec = Omit<Parsed, 'spec'> & { spec: Body };
export type ReleaseSpecInput = z.input<typeof releaseSpec>;
export type GateSpec = Body['gates'][string];
export type StepSpec = NonNullable<Body['steps']>[number];
export type IngressRef = z.output<typeof ingressRef>;
export type DeploymentRef = z.output<typeof deploymentRef>;
export type HttpGateSpec = z.output<typeof httpGate>;
export type PrometheusGateSpec = z.output<typeof prometheusGate>;

/** A target's id defaults to its object name (Flux) or environment (Chef). */
export const fluxId = (t: ParsedBody['flux'][number]) => t.id ?? t.name;
export const chefId = (t: ParsedBody['chef'][number]) => t.id ?? t.environment;

/** Checks that need the whole spec: ids are unique, and every reference points at something. */
function checkReferences(s: z.output<z.ZodObject<any>> & Record<string, any>, ctx: z.core.$RefinementCtx) {
  const body = s as ParsedBody;
  const targets = new Map<string, { kind: 'flux' | 'chef'; path: (string | number)[] }>();
  const addTarget = (tid: string, kind: 'flux' | 'chef', path: (string | number)[]) => {
    const seen = targets.get(tid);
    if (seen) {
      ctx.addIssue({ code: 'custom', path: [...path, 'id'], message: `id "${tid}" is already used by spec.${seen.path[0]}[${seen.path[1]}]: give each target a distinct id` });
    } else targets.set(tid, { kind, path });
  };
  body.flux.forEach((t, i) => addTarget(fluxId(t), 'flux', ['flux', i]));
  body.chef.forEach((t, i) => addTarget(chefId(t), 'chef', ['chef', i]));
  if (body.flux.length === 0 && body.chef.length === 0) {
    ctx.addIssue({ code: 'custom', path: ['flux'], message: 'a release changes something: list at least one flux or chef target' });
  }
  const known = (kind: 'flux' | 'chef') => [...targets].filter(([, t]) => t.kind === kind).map(([k]) => `"${k}"`).join(', ') || 'none';
  const refTarget = (tid: string, kind: 'flux' | 'chef', path: (string | number)[]) => {
    if (targets.get(tid)?.kind !== kind) {
      ctx.addIssue({ code: 'custom', path, message: `no ${kind} target has id "${tid}" (known: ${known(kind)})` });
      return false;
    }
    return true;
  };

  for (const [name, g] of Object.entries(body.gates)) {
    if (g.fluxReady) refTarget(g.fluxReady.target, 'flux', ['gates', name, 'fluxReady', 'target']);
    if (g.chefConvergence) refTarget(g.chefConvergence.target, 'chef', ['gates', name, 'chefConvergence', 'target']);
  }

  if (!body.steps) return;
  const applied = new Map<string, number>();
  const usedGates = new Set<string>();
  body.steps.forEach((st, i) => {
    const at = ['steps', i];
    for (const kind of ['chef', 'flux'] as const) {
      const tid = st[kind];
      if (tid === undefined) continue;
      if (!refTarget(tid, kind, [...at, kind])) continue;
      if (applied.has(tid)) ctx.addIssue({ code: 'custom', path: [...at, kind], message: `target "${tid}" is already applied by steps[${applied.get(tid)}]` });
      else applied.set(tid, i);
    }
    if (st.setWeight !== undefined) {
      if (!body.canary) ctx.addIssue({ code: 'custom', path: [...at, 'setWeight'], message: 'setWeight needs spec.canary.ingress (the canary Ingress whose weight it sets)' });
      else if (st.setWeight > body.canary.weightTotal) ctx.addIssue({ code: 'custom', path: [...at, 'setWeight'], message: `weight ${st.setWeight} is above canary.weightTotal (${body.canary.weightTotal})` });
    }
    if (st.gate !== undefined) {
      const names = Array.isArray(st.gate) ? st.gate : [st.gate];
      names.forEach((g, j) => {
        const gpath = Array.isArray(st.gate) ? [...at, 'gate', j] : [...at, 'gate'];
        const def = body.gates[g];
        if (!def) {
          ctx.addIssue({ code: 'custom', path: gpath, message: `no gate named "${g}" in spec.gates (known: ${Object.keys(body.gates).map((k) => `"${k}"`).join(', ') || 'none'})` });
          return;
        }
        usedGates.add(g);
        const dep = def.fluxReady?.target ?? def.chefConvergence?.target;
        if (dep !== undefined && targets.has(dep) && !(applied.get(dep)! < i)) {
          ctx.addIssue({ code: 'custom', path: gpath, message: `gate "${g}" checks target "${dep}", which no earlier step applies` });
        }
      });
    }
  });
  for (const [tid, t] of targets) {
    if (!applied.has(tid)) ctx.addIssue({ code: 'custom', path: t.path, message: `target "${tid}" is never applied: add a step \`- ${t.kind}: ${tid}\`` });
  }
  for (const g of Object.keys(body.gates)) {
    if (!usedGates.has(g)) ctx.addIssue({ code: 'custom', path: ['gates', g], message: `gate "${g}" is never checked: add it to a \`- gate:\` step` });
  }
}
