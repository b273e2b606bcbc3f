/**
 * The UI check: a canary release, seen in the Temporal Web UI that the stack's dev server embeds,
 * through headless Chromium (Debian's chromium driven by playwright-core; see test/support/browser.ts).
 * It asserts what a person on call sees: each step's summary in the event history, the pause for
 * approval while the release waits, and the approve Workflow Update once it is approved.
 *
 * The release runs the real workflow on the real Temporal dev server against the in-memory world
 * (as test/workflow/release-logic.test.ts does), so it is fast and deterministic. Screenshots go
 * to test-output/ui/.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { WorkflowHandle } from '@temporalio/client';
import type { Page } from 'playwright-core';
import { sendCommand, startRelease, uiLink } from '../../client/releases.ts';
import { type ReleaseStatus, statusQuery } from '../../workflows/messages.ts';
import { type Browser, expectVisible, launchChromium, screenshot } from '../support/browser.ts';
import { fakeActivities, newWorld, worldRelease } from '../support/fake-world.ts';
import { requireEnv, uniqueName } from '../support/env.ts';
import { startTestWorker, type TestWorker } from '../support/temporal.ts';
import { waitForPhase } from '../support/wait.ts';

const PIN = 'pin api_gateway = 2.1.0 in production';
const CANARY = 'canary 20%';
const PAUSE = 'hold canary 20% and wait for approval';

let tw: TestWorker | undefined;
let browser: Browser | undefined;
let handle: WorkflowHandle | undefined;
let page: Page;
let url: string;
let app: string;

const canaryRelease = (app: string) =>
  worldRelease(app, {
    canary: { ingress: { namespace: 'web', name: 'storefront-canary' } },
    steps: [{ chef: 'production' }, { flux: 'storefront' }, { setWeight: 20 }, { pause: {} }, { setWeight: 100 }],
  });

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

// What the UI renders, scoped so that the release's Input and Result JSON on the same page
// (which also contain the step summaries and "approve") can never satisfy an assertion.
const timelineItem = (p: Page, text: RegExp) => p.locator('#event-history-timeline-graph g[role=button]').filter({ hasText: text });
const eventRow = (p: Page, eventType: string, detail: string | RegExp) =>
  p.getByTestId('event-summary-table').getByTestId('event-summary-row').filter({ hasText: eventType }).filter({ hasText: detail });

async function openRelease(): Promise<void> {
  await page.goto(url);
  // the workflow page redirects to its run's history tab
  await expectVisible(page.locator('#event-history-timeline-graph'), `the event history timeline of ${handle!.workflowId} at ${url}`);
}

describe('the Temporal UI shows a release', { concurrency: false }, () => {
  before(async () => {
    requireEnv('TEMPORAL_UI_URL');
    tw = await startTestWorker({ activities: fakeActivities(newWorld()) });
  });

  after(async () => {
    await browser?.close();
    // a failed check must not leave a release waiting for approval on the shared dev server
    if (handle) {
      try {
        const { status } = await handle.describe();
        if (status.name === 'RUNNING') await handle.terminate('temporal-ui.test.ts ended before the release did');
      } catch {
        // already gone
      }
    }
    await tw?.stop();
  });

  // its own check, so that a missing chromium is a named failure that says how to install it
  it('headless chromium starts (Debian chromium, installed by scripts/provision-browser.sh)', async () => {
    browser = await launchChromium();
    page = browser.page;
  });

  it('while it waits for approval: every step summary so far is in the event history', async () => {
    assert.ok(browser, 'no browser: see the chromium check above');
    app = uniqueName('uicheck');
    handle = await startRelease(tw!.client, canaryRelease(app), { taskQueue: tw!.taskQueue });
    url = uiLink(tw!.namespace, handle.workflowId)!;
    await waitForPhase(handle, 'AwaitingApproval');

    await openRelease();
    await expectVisible(page.getByText('Running', { exact: true }), 'the "Running" status of the release');
    // the timeline labels each activity "<type> • <summary>"
    await expectVisible(timelineItem(page, new RegExp(`chefPin\\W+${escape(PIN)}`)), `the timeline entry "chefPin • ${PIN}"`);
    await expectVisible(timelineItem(page, new RegExp(`setCanaryWeight\\W+${escape(CANARY)}$`)), `the timeline entry "setCanaryWeight • ${CANARY}"`);
    // and the event table shows the summary on the ActivityTaskScheduled event
    await expectVisible(eventRow(page, 'Activity Task Scheduled', PIN), `an "Activity Task Scheduled" event with the summary "${PIN}"`);
    await expectVisible(eventRow(page, 'Activity Task Scheduled', new RegExp(`Summary\\s*${escape(CANARY)}`)), `an "Activity Task Scheduled" event with the summary "${CANARY}"`);
    await screenshot(page, 'awaiting-approval-history.png');
  });

  it('while it waits for approval: the pause is visible (current details, call stack)', async () => {
    assert.ok(browser && handle, 'no browser or no release: see the checks above');
    await page.getByTestId('user-metadata-tab').click();
    // the workflow's setCurrentDetails markdown, rendered in an iframe under "Current Details"
    const details = page.getByRole('heading', { name: 'Current Details' }).locator('xpath=ancestor::div[.//iframe][1]').locator('iframe').contentFrame();
    await expectVisible(details.getByText('AwaitingApproval', { exact: true }), 'the phase "AwaitingApproval" under Current Details');
    await expectVisible(details.getByText(PAUSE), `the pause step "${PAUSE}" under Current Details`);
    // the release's static summary, and the per-call summaries listed under "Events with Metadata"
    const summary = page.getByRole('heading', { name: 'Summary', exact: true }).locator('xpath=ancestor::div[.//iframe][1]').locator('iframe').contentFrame();
    await expectVisible(summary.getByText(`release ${app}-2-1-0 of ${app} (2.1.0)`), `the summary "release ${app}-2-1-0 of ${app} (2.1.0)" under Summary`);
    await expectVisible(page.getByRole('heading', { name: 'Events with Metadata' }), 'the "Events with Metadata" list');
    await expectVisible(page.getByText(PIN, { exact: true }), `"${PIN}" under Events with Metadata`);
    await expectVisible(page.getByText(CANARY, { exact: true }), `"${CANARY}" under Events with Metadata`);
    await screenshot(page, 'awaiting-approval.png');

    // the Call Stack tab (answered by the running worker) shows where the workflow waits: the pause step
    await page.getByTestId('call-stack-tab').click();
    await expectVisible(page.getByText(/at pause \(/), 'the workflow waiting in its pause step ("at pause (…)") on the Call Stack tab');
    await screenshot(page, 'awaiting-approval-call-stack.png');
  });

  it('after approve: the approve update is in the event history', async () => {
    assert.ok(browser && handle, 'no browser or no release: see the checks above');
    assert.match(await sendCommand(handle, 'approve', { by: 'alice', reason: 'dashboards green' }), /approved by alice/);
    const status = (await handle.result()) as ReleaseStatus;
    assert.equal(status.phase, 'Succeeded');

    // a taller window, so that one screenshot shows the release's header, its timeline and the update events
    await page.setViewportSize({ width: 1600, height: 1900 });
    await openRelease();
    await expectVisible(page.getByText('Completed', { exact: true }), 'the "Completed" status of the release');
    const accepted = eventRow(page, 'Workflow Execution Update Accepted', /Name\s*approve\b/);
    await expectVisible(accepted, 'a "Workflow Execution Update Accepted" event named "approve"');
    await expectVisible(eventRow(page, 'Workflow Execution Update Completed', 'approved by alice'), 'a "Workflow Execution Update Completed" event with the outcome "approved by alice"');
    await expectVisible(timelineItem(page, /^\s*approve\s*$/), 'the "approve" update on the timeline');
    await expectVisible(timelineItem(page, /setCanaryWeight\W+canary 100%/), 'the step after the pause ("setCanaryWeight • canary 100%") on the timeline');
    const box = await accepted.first().boundingBox();
    if (!box || box.y + box.height > 1900) await accepted.first().scrollIntoViewIfNeeded();
    await screenshot(page, 'approved.png');
  });
});
