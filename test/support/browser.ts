/**
 * Headless Chromium for the UI checks: Debian's `chromium` driven by playwright-core. Never
 * downloads a browser: a missing chromium is a failure that says how to install it
 * (scripts/provision-browser.sh), not a skip.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium, type BrowserContext, type Locator, type Page } from 'playwright-core';

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** Where the UI checks leave their screenshots (test-output/ is gitignored). */
export const SCREENSHOT_DIR = resolve(import.meta.dirname, '../../test-output/ui');

// The machine may have no network: without the background-networking flags Chromium keeps
// retrying refused connections (component updates, sync, safe browsing, QUIC probes).
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export interface Browser {
  context: BrowserContext;
  page: Page;
  close(): Promise<void>;
}

export async function launchChromium(options: { width?: number; height?: number } = {}): Promise<Browser> {
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(
      `chromium not found at ${CHROMIUM_PATH}: the Temporal UI check drives Debian's chromium with playwright-core ` +
        'and never downloads a browser. Install it with `scripts/provision-browser.sh` (apt-get install -y chromium), ' +
        'or set CHROMIUM_PATH to an installed Chromium.',
    );
  }
  const userDataDir = mkdtempSync(join(tmpdir(), 'hr-chromium-'));
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM_PATH,
      headless: true,
      args: ARGS,
      viewport: { width: options.width ?? 1600, height: options.height ?? 1200 },
      timeout: 60_000,
    });
  } catch (err) {
    rmSync(userDataDir, { recursive: true, force: true });
    throw new Error(`could not start ${CHROMIUM_PATH}: ${(err as Error).message}`);
  }
  const page = context.pages()[0] ?? (await context.newPage());
  // navigation and clicks on a loaded CI machine: wait, don't flake
  page.setDefaultTimeout(60_000);
  return {
    context,
    page,
    async close() {
      await context.close().catch(() => undefined);
      rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}

/**
 * Waits until the locator is visible; on timeout fails with `what` (what a person should have
 * seen on the page) rather than Playwright's selector dump alone.
 */
export async function expectVisible(locator: Locator, what: string, timeoutMs = 60_000): Promise<void> {
  try {
    await locator.first().waitFor({ state: 'visible', timeout: timeoutMs });
  } catch (err) {
    throw new Error(`not visible in the Temporal UI after ${timeoutMs / 1000}s: ${what}\n(${(err as Error).message.split('\n')[0]})`);
  }
}

export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  const path = join(SCREENSHOT_DIR, name);
  await page.screenshot({ path });
  return path;
}
