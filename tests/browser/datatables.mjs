// A person using CKAN's DataTables view, against ckan-datastore: headless Chromium (Debian's
// package) loads the DataTables version CKAN 2.12.0 bundles (1.12.1, from npm), configured as
// CKAN's datatablesview.js configures it (server-side, POST to /datatables/ajax/<view id>), then:
// first draw, typing a search, sorting by two columns, paging to the last page. Every table the
// user sees is compared with what datastore_search says directly. A screenshot is kept.
//
//   node tests/browser/datatables.mjs <base URL of our server> <view id> <resource id> <png path>
//
// The page and its scripts are served from a made-up origin by Playwright's request routing, and
// the ajax calls are forwarded to our server, so the browser sees one origin (as on a CKAN site).
import { chromium } from 'playwright-core';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const [base, viewId, resourceId, screenshot] = process.argv.slice(2);
const here = path.dirname(fileURLToPath(import.meta.url));
const ORIGIN = 'http://ckan.test';
const COLUMNS = ['_id', 'id', 'name', 'category', 'price', 'created', 'active'];

const page_html = `<!DOCTYPE html>
<html><head><meta charset="utf-8">
<link rel="stylesheet" href="/node_modules/datatables.net-dt/css/jquery.dataTables.css">
<script src="/node_modules/jquery/dist/jquery.js"></script>
<script src="/node_modules/datatables.net/js/jquery.dataTables.js"></script>
</head><body>
<table id="dtprv" class="display"><thead><tr>${COLUMNS.map((c) => `<th>${c}</th>`).join('')}</tr></thead></table>
<script>
  window.draws = 0;
  $('#dtprv').on('draw.dt', function () { window.draws += 1; });
  window.dt = $('#dtprv').DataTable({
    paging: true,
    serverSide: true,
    processing: true,
    orderCellsTop: true,
    columns: ${JSON.stringify(COLUMNS.map((c) => ({ data: c, name: c })))},
    ajax: { url: '/datatables/ajax/${viewId}', type: 'POST', timeout: 60000,
            data: function (d) { d.filters = ''; } },
    lengthMenu: [5, 10, 20],
    searchDelay: 0
  });
</script></body></html>`;

function fail(msg) {
  console.error('FAIL: ' + msg);
  process.exit(1);
}

async function search(body) {
  const r = await fetch(`${base}/api/3/action/datastore_search`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ resource_id: resourceId, ...body })
  });
  const j = await r.json();
  if (!j.success) fail('datastore_search failed: ' + JSON.stringify(j));
  return j.result;
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu']
});
try {
  const page = await browser.newPage({ viewport: { width: 1200, height: 700 } });
  page.on('pageerror', (e) => fail('page error: ' + e.message));
  await page.route(`${ORIGIN}/**`, async (route) => {
    const url = new URL(route.request().url());
    if (url.pathname.startsWith('/datatables/ajax/')) {
      const response = await route.fetch({ url: base + url.pathname + url.search });
      return route.fulfill({ response });
    }
    if (url.pathname === '/') {
      return route.fulfill({ contentType: 'text/html', body: page_html });
    }
    if (url.pathname.startsWith('/node_modules/')) {
      const file = path.join(here, url.pathname);
      const type = file.endsWith('.css') ? 'text/css' : 'application/javascript';
      return route.fulfill({ contentType: type, body: await readFile(file) });
    }
    return route.fulfill({ status: 404, body: '' });
  });

  // What the user sees: the body rows' cells.
  const shown = () =>
    page.$$eval('#dtprv tbody tr', (trs) =>
      trs.map((tr) => Array.from(tr.querySelectorAll('td')).map((td) => td.textContent)));
  const info = () => page.textContent('#dtprv_info');
  const afterDraw = async (action) => {
    const before = await page.evaluate(() => window.draws);
    await action();
    await page.waitForFunction((n) => window.draws > n, before, { timeout: 15000 });
  };
  // The cells as CKAN's view renders them, from a direct datastore_search.
  const expect = async (label, params) => {
    const r = await search(params);
    // Python's str() as CKAN's view applies it; numbers compared as numbers (3.0 vs 3).
    const cell = (v) => (v === null ? '' : typeof v === 'boolean' ? (v ? 'True' : 'False') : String(v));
    const norm = (row) => row.map((v) => (v !== '' && !isNaN(Number(v)) ? String(Number(v)) : v));
    const want = r.records.map((rec) => norm(COLUMNS.map((c) => cell(rec[c]))));
    const got = (await shown()).map(norm);
    if (JSON.stringify(got) !== JSON.stringify(want)) {
      fail(`${label}: shown ${JSON.stringify(got)}\n      expected ${JSON.stringify(want)}`);
    }
    console.log(`ok ${label}: ${got.length} rows; ${await info()}`);
    return r;
  };

  // 1. First draw: 5 rows by _id.
  await page.goto(`${ORIGIN}/`);
  await page.waitForFunction(() => window.draws >= 1, null, { timeout: 15000 });
  const first = await expect('first draw', { limit: 5, sort: '_id asc', include_total: true });
  if (!(await info()).includes(`of ${first.total} entries`)) fail('info: ' + (await info()));

  // 2. Typing a search (a prefix, as CKAN's view sends it: `fruit:*`, simple configuration).
  await afterDraw(() => page.fill('#dtprv_filter input', 'fruit'));
  const found = await expect('search "fruit"', {
    q: 'fruit:*', plain: false, language: 'simple', limit: 5, sort: '_id asc'
  });
  if (!(await info()).includes('filtered from')) fail('no filtered info: ' + (await info()));
  if (found.records.length === 0) fail('search found nothing');

  // 3. Sorting by two columns: category, then shift-click price (twice: descending).
  await afterDraw(() => page.fill('#dtprv_filter input', ''));
  await afterDraw(() => page.click('#dtprv thead th:nth-child(4)'));
  await afterDraw(() => page.click('#dtprv thead th:nth-child(5)', { modifiers: ['Shift'] }));
  await afterDraw(() => page.click('#dtprv thead th:nth-child(5)', { modifiers: ['Shift'] }));
  await expect('sort category asc, price desc', { limit: 5, sort: 'category asc, price desc' });

  // 4. Paging to the last page.
  // DataTables' default pager shows the last page's number: click it.
  await afterDraw(() => page.locator('#dtprv_paginate .paginate_button:not(.next):not(.previous)').last().click());
  const total = first.total;
  const lastStart = Math.floor((total - 1) / 5) * 5;
  await expect('last page', { limit: 5, offset: lastStart, sort: 'category asc, price desc' });

  if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });
  console.log('PASS');
} finally {
  await browser.close();
}
