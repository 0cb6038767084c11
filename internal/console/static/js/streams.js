// Streams: the list, one stream's partitions, the record browser and the
// publish form.
import { call, get, utf8, base64, unbase64 } from './api.js';
import { h, table, num, fmtNum, fmtBytes, fmtDuration, fmtTime, toast, asText, asHex, asJSON } from './dom.js';

function retention(cfg) {
  const parts = [];
  if (cfg.retentionAge) parts.push(fmtDuration(cfg.retentionAge));
  if (num(cfg.retentionBytes)) parts.push(fmtBytes(cfg.retentionBytes) + ' per partition');
  if (cfg.compacted) parts.push('compacted');
  return parts.join(', ') || 'forever';
}

function list(main) {
  const body = h('div');
  const root = h('section', {}, h('h1', {}, 'Streams'), body);
  main.append(root);
  async function refresh() {
    const { streams = [] } = await call('ListStreams');
    body.replaceChildren(table(
      ['Stream', 'Partitions', 'Records', 'Size', 'Retention', 'Created'],
      streams.map((s) => {
        const parts = s.partitions || [];
        return [
          h('a', { href: '#/streams/' + encodeURIComponent(s.config.name) }, s.config.name),
          parts.length,
          fmtNum(parts.reduce((a, p) => a + num(p.endOffset) - num(p.startOffset), 0)),
          fmtBytes(parts.reduce((a, p) => a + num(p.bytes), 0)),
          retention(s.config),
          fmtTime(s.createdAt),
        ];
      }),
      { numeric: ['Partitions', 'Records', 'Size'], empty: 'no streams', id: 'streams-table' }));
  }
  return { root, refresh };
}

function detail(main, name) {
  const partitions = h('div');
  const partitionSelect = h('select', { name: 'partition', id: 'browse-partition' });
  const seek = h('select', { name: 'seek', id: 'browse-seek' },
    h('option', { value: 'earliest' }, 'earliest'), h('option', { value: 'latest' }, 'latest'),
    h('option', { value: 'offset' }, 'offset'), h('option', { value: 'time' }, 'time'));
  const position = h('input', { name: 'position', id: 'browse-position', placeholder: 'offset, or 2026-11-23T01:30:00Z', disabled: true });
  seek.addEventListener('change', () => { position.disabled = seek.value === 'earliest' || seek.value === 'latest'; });
  const filter = h('input', { name: 'filter', id: 'browse-filter', class: 'wide', placeholder: "filter, e.g. headers['type'] == 'order' && value_string.contains('paid')" });
  const view = h('select', { name: 'view', id: 'browse-view' },
    h('option', { value: 'text' }, 'text'), h('option', { value: 'json' }, 'JSON'), h('option', { value: 'hex' }, 'hex'));
  const results = h('div', { id: 'records' });
  const status = h('p', { class: 'muted', id: 'browse-status' });
  const more = h('button', { type: 'button', hidden: true, id: 'browse-more' }, 'Next page');
  let last = null; // the last answer, for paging and re-rendering
  let shown = [];

  const browseForm = h('form', { id: 'browse-form', class: 'toolbar', onsubmit: (e) => { e.preventDefault(); browse(false); } },
    h('label', {}, 'Partition ', partitionSelect), h('label', {}, 'From ', seek), position, filter,
    h('label', {}, 'Show ', view), h('button', { type: 'submit' }, 'Browse'));
  view.addEventListener('change', render);
  more.addEventListener('click', () => browse(true));

  const pubKey = h('input', { name: 'key', id: 'publish-key', placeholder: 'key (optional)' });
  const pubHeaders = h('textarea', { name: 'headers', id: 'publish-headers', rows: 2, placeholder: 'headers, one name=value a line' });
  const pubValue = h('textarea', { name: 'value', id: 'publish-value', rows: 4, placeholder: 'value' });
  const pubPartition = h('input', { name: 'partition', id: 'publish-partition', placeholder: 'partition (optional)', size: 10 });
  const publishForm = h('form', { id: 'publish-form', class: 'stack', onsubmit: publish },
    h('div', { class: 'toolbar' }, pubKey, pubPartition), pubHeaders, pubValue, h('div', {}, h('button', { type: 'submit' }, 'Publish')));

  const root = h('section', {},
    h('h1', {}, h('a', { href: '#/streams' }, 'Streams'), ' / ', name),
    h('p', { class: 'muted', id: 'stream-config' }),
    partitions,
    h('h2', {}, 'Records'), browseForm, status, results, more,
    h('h2', {}, 'Publish'), publishForm);
  main.append(root);

  async function refresh() {
    const s = await call('DescribeStream', { name });
    root.querySelector('#stream-config').textContent =
      `id ${s.id} · retention ${retention(s.config)} · dedup window ${s.config.dedupWindow ? fmtDuration(s.config.dedupWindow) : 'default'} · created ${fmtTime(s.createdAt)}`;
    const parts = s.partitions || [];
    partitions.replaceChildren(table(
      ['Partition', 'Start offset', 'End offset', 'Durable offset', 'Records', 'Size', 'Segments'],
      parts.map((p) => [num(p.partition), num(p.startOffset), num(p.endOffset), num(p.durableOffset), fmtNum(num(p.endOffset) - num(p.startOffset)), fmtBytes(p.bytes), num(p.segments)]),
      { numeric: ['Partition', 'Start offset', 'End offset', 'Durable offset', 'Records', 'Size', 'Segments'], id: 'partitions-table' }));
    if (partitionSelect.options.length !== parts.length) {
      const keep = partitionSelect.value;
      partitionSelect.replaceChildren(...parts.map((p) => h('option', { value: num(p.partition) }, String(num(p.partition)))));
      if (keep) partitionSelect.value = keep;
    }
    if (!last && !browsing) await browse(false); // the first page, until one was read
  }

  let browsing = false;
  async function browse(next) {
    browsing = true;
    try { await browseOnce(next); } finally { browsing = false; }
  }

  async function browseOnce(next) {
    const params = { stream: name, partition: partitionSelect.value || 0, filter: filter.value.trim(), limit: 50 };
    if (next && last) params.offset = last.nextOffset;
    else if (seek.value === 'offset') params.offset = position.value.trim();
    else if (seek.value === 'time') {
      const v = position.value.trim();
      const t = Date.parse(v);
      params.time = /^\d+$/.test(v) || isNaN(t) ? v : new Date(t).toISOString();
    } else params.from = seek.value;
    try {
      last = await get('/console/api/records', params);
    } catch (err) {
      status.textContent = err.message;
      status.className = 'error';
      return;
    }
    shown = last.records.map((r) => ({ ...r, key: unbase64(r.key), value: unbase64(r.value), headers: (r.headers || []).map((x) => ({ key: x.key, value: unbase64(x.value) })) }));
    status.className = 'muted';
    status.textContent = `${shown.length} record(s) from offset ${last.from} (${last.scanned} read); partition holds ${last.startOffset}–${last.endOffset}`;
    more.hidden = last.nextOffset >= last.endOffset;
    render();
  }

  function render() {
    const show = { text: asText, json: asJSON, hex: asHex }[view.value];
    results.replaceChildren(table(
      ['Offset', 'Time', 'Key', 'Headers', 'Value'],
      shown.map((r) => [
        String(r.offset), fmtTime(r.timestamp),
        r.key == null ? h('span', { class: 'muted' }, 'none') : asText(r.key),
        h('div', { class: 'headers' }, r.headers.map((x) => h('div', {}, h('b', {}, x.key), '=', asText(x.value)))),
        r.value == null ? h('span', { class: 'muted' }, 'tombstone') : h('pre', { class: 'value' }, show(r.value)),
      ]),
      { numeric: ['Offset'], empty: 'no records here', id: 'records-table' }));
  }

  async function publish(e) {
    e.preventDefault();
    const record = { value: base64(utf8(pubValue.value)), headers: [] };
    if (pubKey.value) record.key = base64(utf8(pubKey.value));
    for (const line of pubHeaders.value.split('\n')) {
      if (!line.trim()) continue;
      const i = line.indexOf('=');
      if (i <= 0) { toast(`header line "${line}": want name=value`, true); return; }
      record.headers.push({ key: line.slice(0, i).trim(), value: base64(utf8(line.slice(i + 1))) });
    }
    const req = { stream: name, records: [record] };
    if (pubPartition.value.trim()) {
      const p = Number(pubPartition.value.trim());
      if (!Number.isInteger(p) || p < 0) { toast('partition: want a partition number', true); return; }
      req.partition = p;
    }
    try {
      const { results: [r] = [] } = await call('Publish', req);
      toast(`published to partition ${num(r.partition)} at offset ${num(r.offset)}${r.duplicate ? ' (a duplicate: not stored again)' : ''}`);
      pubValue.value = '';
      partitionSelect.value = String(num(r.partition));
      seek.value = 'offset';
      position.disabled = false;
      position.value = String(num(r.offset));
      await browse(false);
    } catch (err) {
      toast(err.message, true);
    }
  }

  return { root, refresh };
}

export default { mount: (main, [name]) => (name ? detail(main, name) : list(main)) };
