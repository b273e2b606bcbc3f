/**
 * How a release reads in a terminal, a CI log and a GitHub step summary.
 */
import { redactUrls } from '../release-spec/safe.ts';
import type { ReleaseStatus } from '../workflows/messages.ts';
import type { Output } from './output.ts';

/** Text from a release as it may be printed: URLs without credentials or query values. */
const r = (text: string) => redactUrls(text);

const show = (v: unknown) => (v === null || v === undefined ? 'none' : typeof v === 'string' ? v : JSON.stringify(v));

export function phaseText(phase: string, out: Output): string {
  if (phase === 'Succeeded') return out.green(phase);
  if (phase === 'RolledBack' || phase === 'Failed' || phase === 'RollbackFailed' || phase === 'PartiallyRolledBack') return out.red(phase);
  if (phase === 'AwaitingApproval' || phase === 'Paused' || phase === 'RollingBack' || phase === 'Queued') return out.yellow(phase);
  return phase;
}

/** The full status, for `status`. */
export function renderStatus(s: ReleaseStatus, out: Output): string {
  const lines = [
    `${out.bold(s.release)} (${s.app}${s.version ? ` ${s.version}` : ''}): ${phaseText(s.phase, out)}${s.heldBy ? ` — held by ${s.heldBy}` : ''}`,
    `started ${s.startedAt}${s.startedBy ? ` by ${s.startedBy}` : ''}${s.endedAt ? `, ended ${s.endedAt}` : ''}`,
    ...(s.waiting ? [out.yellow(r(s.waiting))] : []),
    'steps:',
    ...s.steps.map((st) => `  ${mark(st.state, out)} ${String(st.index + 1).padStart(2)}. ${r(st.summary)}`),
  ];
  if (s.warnings?.length) {
    lines.push('warnings:');
    for (const w of s.warnings) lines.push(`  ${out.yellow('!')} ${w}`);
  }
  if (s.changes.length) {
    lines.push('changes:');
    for (const c of s.changes) lines.push(`  ${r(c.summary)} [${c.state}] before: ${show(c.before)}${c.error ? ` — ${out.red(r(c.error))}` : ''}`);
  }
  if (s.gates.length) {
    lines.push('gates:');
    for (const g of s.gates) lines.push(`  ${g.ok ? out.green('pass') : out.red('fail')} ${g.gate} (${g.kind}): ${r(g.reason)}`);
  }
  if (s.decisions.length) {
    lines.push('decisions:');
    for (const d of s.decisions) lines.push(`  ${d.at} ${d.command} by ${d.by} via ${d.via}${d.accepted ? '' : ' (refused)'}${d.key ? ` [${d.key}]` : ''}${d.reason ? `: ${r(d.reason)}` : ''}${d.note ? ` — ${r(d.note)}` : ''}`);
  }
  if (s.error) lines.push(`error: ${out.red(r(s.error))}`);
  return `${lines.join('\n')}\n`;
}

function mark(state: string, out: Output): string {
  switch (state) {
    case 'done':
      return out.green('✓');
    case 'failed':
      return out.red('✗');
    case 'running':
      return out.yellow('▶');
    case 'cancelled':
      return out.red('-');
    default:
      return ' ';
  }
}

/** One line per thing that changed since the last status: the CI log of `--wait` and `watch`. */
export function progressLines(prev: ReleaseStatus | undefined, s: ReleaseStatus, out: Output): string[] {
  const t = new Date().toISOString().slice(11, 19);
  const changed = s.steps.filter((st) => st.state !== prev?.steps[st.index]?.state && st.state !== 'pending');
  const stepLine = (st: ReleaseStatus['steps'][number]) => `${t} step ${st.index + 1}/${s.steps.length} ${st.state}: ${r(st.summary)}`;
  // in the order things happened: steps that ended, what they found, the new phase, the next step
  const lines = changed.filter((st) => st.state !== 'running').map(stepLine);
  for (const g of s.gates.slice(prev?.gates.length ?? 0)) lines.push(`${t} gate ${g.gate} ${g.ok ? out.green('passed') : out.red('failed')}: ${r(g.reason)}`);
  for (const [i, c] of s.changes.entries()) {
    if (prev?.changes[i]?.state !== c.state && c.state !== 'applying' && c.state !== 'applied') lines.push(`${t} ${c.state}: ${r(c.summary)}${c.error ? ` — ${r(c.error)}` : ''}`);
  }
  for (const d of s.decisions.slice(prev?.decisions.length ?? 0)) lines.push(`${t} ${d.command} by ${d.by}${d.accepted ? '' : ' refused'}${d.note ? `: ${r(d.note)}` : ''}`);
  if (prev?.phase !== s.phase) lines.push(`${t} phase ${phaseText(s.phase, out)}${s.heldBy ? ` (held by ${s.heldBy})` : ''}`);
  lines.push(...changed.filter((st) => st.state === 'running').map(stepLine));
  return lines;
}

/**
 * Text from a server (gate reasons, Flux and Chef messages, names, values) as inert markdown: one
 * line, HTML and markdown punctuation escaped, so it cannot break the summary's tables or inject
 * links, images, headings or HTML into it.
 */
export function mdText(text: string): string {
  return r(text)
    .replace(/[\r\n]+/g, ' ')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/[\\`*_[\]#!|~]/g, (c) => `\\${c}`)
    .replace(/:\/\//g, ':&#47;&#47;') // no autolinks: GFM links bare URLs and www. names
    .replace(/\bwww\./gi, (w) => `${w.slice(0, 3)}&#46;`);
}

const icons: Record<string, string> = { Succeeded: '✅', RolledBack: '❌', Failed: '❌', RollbackFailed: '🛑', PartiallyRolledBack: '⚠️' };

/** Markdown for $GITHUB_STEP_SUMMARY. `ending` says how the wait ended when that is not the release's phase. */
export function markdownSummary(s: ReleaseStatus, link?: string, ending?: string): string {
  const icon = ending ? '⚠️' : (icons[s.phase] ?? '⏳');
  const rows = s.changes.map((c) => `| ${mdText(c.system)} | ${mdText(c.summary)} | ${mdText(show(c.before))} | ${mdText(c.state)}${c.error ? `: ${mdText(c.error)}` : ''} |`);
  const gates = s.gates.map((g) => `| ${mdText(g.gate)} | ${mdText(g.kind)} | ${g.ok ? 'pass' : 'fail'} | ${mdText(g.reason)} |`);
  return [
    `### ${icon} ${mdText(s.release)} (${mdText(s.app)}${s.version ? ` ${mdText(s.version)}` : ''}): ${mdText(s.phase)}`,
    link ? `[Open in the Temporal UI](<${link.replace(/[<>\s]/g, encodeURIComponent)}>)` : '',
    ending ? `> ${mdText(ending)}` : '',
    s.error ? `> ${mdText(s.error)}` : '',
    '',
    rows.length ? ['| system | change | before | state |', '|---|---|---|---|', ...rows].join('\n') : '',
    '',
    gates.length ? ['| gate | kind | result | reason |', '|---|---|---|---|', ...gates].join('\n') : '',
    '',
  ].filter((l, i, a) => l !== '' || a[i - 1] !== '').join('\n');
}
