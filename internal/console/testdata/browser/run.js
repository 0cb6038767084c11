// The console's browser test, run by internal/console/browser_test.go:
// playwright-core drives Debian's chromium (headless, no sandbox) against
// the Weir the Go test started and filled.
//
//   node run.js BASE_URL
//
// Environment: CHROMIUM (the browser binary), WEIR_USER and WEIR_PASSWORD
// (the server requires a login: the console must show its form first),
// WEIR_SCREENSHOTS (a directory: save screenshots of the main pages there).
// It talks to the Go test on stdout and stdin: it prints "ack-one" when the
// queues page shows the queue "jobs", and waits for a line "acked". The Go
// test also made the queue "tasks" whose 3 records a consumer rejected
// (dead-lettered into "tasks.dlq"), and the group "billing".
// Any failure, or any error in the browser's console, exits non-zero.
'use strict';
const { chromium } = require('playwright-core');
const path = require('path');
const readline = require('readline');

const base = process.argv[2];
if (!base) {
  console.error('usage: node run.js BASE_URL');
  process.exit(2);
}
const user = process.env.WEIR_USER || '';
const password = process.env.WEIR_PASSWORD || '';
const shots = process.env.WEIR_SCREENSHOTS || '';
const timeout = 30000;

const stdinLines = readline.createInterface({ input: process.stdin });
const waiting = [];
stdinLines.on('line', (line) => { const w = waiting.shift(); if (w) w(line.trim()); });
function nextLine() { return new Promise((resolve) => waiting.push(resolve)); }

function log(msg) { process.stderr.write(`browser test: ${msg}\n`); }

async function main() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
  });
  const errors = [];
  let page;
  try {
    page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    page.setDefaultTimeout(timeout);
    let badFilterSent = false;
    page.on('console', (msg) => {
      if (msg.type() === 'warning') log(`console warning: ${msg.text()}`);
      if (msg.type() !== 'error') return;
      // Refusals (401) are checked below, by the credentials they were
      // sent with: before the login, and with a wrong password, they are
      // what makes the console show its form.
      if (user && /status of 401/.test(msg.text())) return;
      // The request with a bad filter is refused on purpose.
      if (badFilterSent && /400/.test(msg.text())) { badFilterSent = false; return; }
      errors.push(`console error on ${page.url()}: ${msg.text()}`);
    });
    const good = 'Basic ' + Buffer.from(`${user}:${password}`).toString('base64');
    page.on('response', async (resp) => {
      if (resp.status() !== 401) return;
      const sent = (await resp.request().allHeaders()).authorization;
      if (!user || sent === good) errors.push(`refused with the right credentials: ${resp.url()}`);
    });
    page.on('pageerror', (err) => errors.push(`uncaught exception on ${page.url()}: ${err.message}`));
    page.on('requestfailed', (req) => {
      const failure = req.failure();
      // Leaving a page aborts its live feed; that is not an error.
      if (failure && !/ERR_ABORTED/.test(failure.errorText)) errors.push(`request failed: ${req.url()}: ${failure.errorText}`);
    });

    const root = await page.goto(base + '/');
    if (!page.url().endsWith('/console/')) throw new Error(`/ led to ${page.url()}, want /console/`);
    if (!root.ok()) throw new Error(`/console/ answered ${root.status()}`);

    if (user) {
      log('logging in');
      await page.locator('#login[open]').waitFor();
      // A wrong password is refused and the form comes back saying so.
      await page.fill('#login input[name=user]', user);
      await page.fill('#login input[name=password]', password + '-wrong');
      await page.click('#login button[type=submit]');
      await page.locator('#login[open] #login-error', { hasText: 'refused' }).waitFor();
      await page.fill('#login input[name=user]', user);
      await page.fill('#login input[name=password]', password);
      await page.click('#login button[type=submit]');
      await page.locator('#login[open]').waitFor({ state: 'detached' }).catch(() => {});
      await page.waitForFunction(() => !document.querySelector('#login').open);
    }

    // Every page loads and shows its data.
    const pages = [
      ['overview', '#overview-counts .card'],
      ['streams', '#streams-table a[href="#/streams/orders"]'],
      ['streams/orders', '#partitions-table tbody tr'],
      ['queues', '#queues-table [data-queue="jobs"]'],
      ['groups', 'article.group[data-group="billing"]'],
      ['exchanges', '#exchange-graph svg .node.exchange'],
      ['connectors', '#connectors-table'],
    ];
    for (const [route, selector] of pages) {
      log(`page ${route}`);
      await page.goto(`${base}/console/#/${route}`);
      await page.locator(selector).first().waitFor();
      const banner = await page.locator('.error.banner').count();
      if (banner) throw new Error(`page ${route} shows an error: ${await page.locator('.error.banner').first().textContent()}`);
    }
    await page.locator('#live:not(.off)').waitFor();

    // The overview's charts fill from the live feed.
    await page.goto(`${base}/console/#/overview`);
    await page.locator('#overview-cards .card').first().waitFor();
    await page.waitForFunction(() => document.querySelectorAll('#overview-cards .card').length >= 6);
    if (shots) {
      await page.waitForTimeout(8000); // a few live points on the charts
      await page.screenshot({ path: path.join(shots, 'overview.png') });
    }

    // The publish form publishes a record, which the record browser shows.
    log('publish form');
    const marker = `from-the-browser-${Date.now()}`;
    await page.goto(`${base}/console/#/streams/orders`);
    await page.locator('#records-table tbody tr').first().waitFor();
    await page.fill('#publish-key', 'customer-42');
    await page.fill('#publish-headers', 'type=order.created\nsource=console-test');
    await page.fill('#publish-value', JSON.stringify({ id: marker, total: 99.5, items: ['tea', 'scones'] }));
    await page.click('#publish-form button[type=submit]');
    await page.locator('#records-table tbody tr', { hasText: marker }).waitFor();

    // The record browser seeks from the earliest offset and applies a filter.
    log('record browser filter');
    await page.selectOption('#browse-seek', 'earliest');
    await page.fill('#browse-filter', `value_string.contains('${marker}') && headers['source'] == 'console-test'`);
    await page.click('#browse-form button[type=submit]');
    await page.waitForFunction((m) => {
      const rows = document.querySelectorAll('#records-table tbody tr');
      return rows.length === 1 && rows[0].textContent.includes(m);
    }, marker);
    await page.selectOption('#browse-view', 'json');
    await page.locator('#records-table pre.value', { hasText: '"total": 99.5' }).waitFor();
    await page.selectOption('#browse-view', 'hex');
    await page.locator('#records-table pre.value', { hasText: '00000000  7b 22 69 64' }).waitFor();
    // A bad filter is refused with the compiler's message.
    await page.fill('#browse-filter', 'value_string.contains(');
    badFilterSent = true;
    await page.click('#browse-form button[type=submit]');
    await page.locator('#browse-status.error', { hasText: 'filter' }).waitFor();
    await page.fill('#browse-filter', '');
    await page.selectOption('#browse-view', 'json');
    await page.selectOption('#browse-seek', 'earliest');
    await page.click('#browse-form button[type=submit]');
    await page.waitForFunction(() => document.querySelectorAll('#records-table tbody tr').length > 1);
    if (shots) await page.screenshot({ path: path.join(shots, 'streams.png') });

    // A queue's depth changes when a consumer acknowledges a record.
    log('queue depth');
    await page.goto(`${base}/console/#/queues`);
    const depth = page.locator('#queues-table [data-queue="jobs"]');
    await depth.waitFor();
    const before = Number(await depth.textContent());
    if (!(before > 0)) throw new Error(`queue jobs shows depth ${before}, want records`);
    if (shots) {
      await page.waitForTimeout(2500); // two refreshes: the rates
      await page.screenshot({ path: path.join(shots, 'queues.png') });
    }
    process.stdout.write('ack-one\n');
    const answer = await nextLine();
    if (answer !== 'acked') throw new Error(`the Go test answered ${JSON.stringify(answer)}`);
    await page.waitForFunction((want) => {
      const el = document.querySelector('#queues-table [data-queue="jobs"]');
      return el && Number(el.textContent) === want;
    }, before - 1);
    log(`queue jobs went from ${before} to ${before - 1} without a reload`);

    // Purge asks first: cancelled, nothing happens; confirmed, it purges.
    log('purge');
    await page.click('#queues-table [data-purge="emails"]');
    await page.locator('#confirm[open]', { hasText: 'Purge queue "emails"' }).waitFor();
    await page.click('#confirm button[value=cancel]');
    await page.locator('#confirm[open]').waitFor({ state: 'detached' }).catch(() => {});
    await page.waitForFunction(() => !document.querySelector('#confirm').open);
    if (await page.locator('#toast:not([hidden])', { hasText: 'purged' }).count()) throw new Error('a cancelled purge purged');
    await page.click('#queues-table [data-purge="emails"]');
    await page.click('#confirm button[value=ok]');
    await page.locator('#toast:not([hidden])', { hasText: /purged \d+ record\(s\) from emails/ }).waitFor();

    // The records a consumer rejected show dead-lettered; redrive asks
    // first (cancelled, nothing moves), then moves them back into their
    // queue, and both depths change without a reload.
    log('redrive');
    const depths = (want) => page.waitForFunction((w) => {
      const n = (sel) => { const el = document.querySelector(sel); return el ? Number(el.textContent) : NaN; };
      return n('#queues-table [data-queue="tasks"]') === w.tasks && n('#queues-table [data-queue="tasks.dlq"]') === w.dlq &&
        n('#queues-table [data-dead-lettered="tasks"]') === 3;
    }, want);
    await depths({ tasks: 0, dlq: 3 });
    await page.click('#queues-table [data-redrive="tasks"]');
    await page.locator('#confirm[open]', { hasText: 'Redrive queue "tasks"' }).waitFor();
    await page.click('#confirm button[value=cancel]');
    await page.waitForFunction(() => !document.querySelector('#confirm').open);
    await page.waitForTimeout(1500); // a refresh or more: nothing may have moved
    if (await page.locator('#toast:not([hidden])', { hasText: 'moved' }).count()) throw new Error('a cancelled redrive moved records');
    await depths({ tasks: 0, dlq: 3 });
    await page.click('#queues-table [data-redrive="tasks"]');
    await page.locator('#confirm[open]', { hasText: 'Redrive queue "tasks"' }).waitFor();
    await page.click('#confirm button[value=ok]');
    await page.locator('#toast:not([hidden])', { hasText: 'moved 3 record(s) back into tasks' }).waitFor();
    await depths({ tasks: 3, dlq: 0 });
    log('queue tasks went from 0 to 3 records, tasks.dlq from 3 to 0');

    // The groups page charts the lag history the server keeps: a page
    // reloaded shows it at once.
    log('lag history');
    const lagFigure = 'article.group[data-group="billing"] figure.lag-history';
    const hasHistory = (sel) => { const f = document.querySelector(sel); return !!f && Number(f.dataset.points) > 0; };
    await page.goto(`${base}/console/#/groups`);
    await page.waitForFunction(hasHistory, lagFigure, { timeout: 60000 }); // the server samples every 10 s
    await page.reload();
    await page.locator(lagFigure).waitFor();
    if (!(await page.evaluate(hasHistory, lagFigure))) throw new Error('the reloaded groups page shows no lag history');

    if (shots) {
      await page.goto(`${base}/console/#/exchanges`);
      await page.locator('#exchange-graph svg').waitFor();
      await page.screenshot({ path: path.join(shots, 'exchanges.png') });
    }
    if (errors.length) throw new Error(errors.join('\n'));
    log('ok');
  } catch (err) {
    // What the page showed, to tell why.
    if (page) {
      const state = await page.evaluate(() => ({
        url: location.href,
        live: document.querySelector('#live').className,
        main: document.querySelector('#main').innerText.slice(0, 2000),
      })).catch((e) => String(e));
      log(`the page when it failed: ${JSON.stringify(state, null, 1)}`);
    }
    if (errors.length) log(`errors seen: ${errors.join('\n')}`);
    throw err;
  } finally {
    await browser.close();
    stdinLines.close();
  }
}

main().catch((err) => {
  console.error(`browser test failed: ${err.stack || err}`);
  process.exit(1);
});
