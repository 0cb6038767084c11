// Queues: depth, in flight, delayed, dead-lettered, consumers and rates;
// redrive from the dead-letter stream; purge after a confirmation.
import { call } from './api.js';
import { h, table, num, fmtNum, fmtBytes, toast, confirmAction } from './dom.js';

function mount(main) {
  const body = h('div');
  const root = h('section', {}, h('h1', {}, 'Queues'),
    h('p', { class: 'muted' }, 'Rates are measured between two refreshes: in is records appended to the queue\u2019s stream, settled is in minus the change of depth.'),
    body);
  main.append(root);
  let prev = null; // { time, per queue: { end, depth } }

  async function refresh() {
    const [{ queues = [] }, { streams = [] }] = await Promise.all([call('ListQueues'), call('ListStreams')]);
    const ends = new Map(streams.map((s) => [s.config.name, (s.partitions || []).reduce((a, p) => a + num(p.endOffset), 0)]));
    const names = new Set(ends.keys());
    const now = Date.now();
    const cur = { time: now, queues: new Map() };
    const rows = queues.map((q) => {
      const name = q.config.stream;
      const end = ends.get(name) || 0;
      const depth = num(q.depth);
      cur.queues.set(name, { end, depth });
      let inRate = '', outRate = '';
      const before = prev && prev.queues.get(name);
      if (before && now > prev.time) {
        const secs = (now - prev.time) / 1000;
        const appended = Math.max(end - before.end, 0);
        inRate = fmtNum(appended / secs) + '/s';
        outRate = fmtNum(Math.max(appended - (depth - before.depth), 0) / secs) + '/s';
      }
      const dlq = q.config.deadLetterStream || name + '.dlq';
      const dlqRecords = names.has(dlq) ? fmtNum(ends.get(dlq)) : '';
      return [
        h('a', { href: '#/streams/' + encodeURIComponent(name) }, name),
        h('span', { class: 'depth', 'data-queue': name }, String(depth)),
        fmtBytes(q.depthBytes), num(q.inFlight), num(q.waiting), num(q.delayed),
        h('span', { 'data-dead-lettered': name }, String(num(q.deadLettered))), num(q.consumers), inRate, outRate,
        names.has(dlq) ? h('a', { href: '#/streams/' + encodeURIComponent(dlq) }, dlq, ' (', dlqRecords, ')') : h('span', { class: 'muted' }, dlq),
        h('span', { class: 'actions' },
          h('button', { type: 'button', 'data-redrive': name, disabled: !names.has(dlq), title: 'move the dead-lettered records back into the queue', onclick: () => redrive(name, dlq) }, 'Redrive'),
          h('button', { type: 'button', class: 'danger', 'data-purge': name, onclick: () => purge(name, depth) }, 'Purge')),
      ];
    });
    prev = cur;
    body.replaceChildren(table(
      ['Queue', 'Depth', 'Depth bytes', 'In flight', 'Waiting', 'Delayed', 'Dead-lettered', 'Consumers', 'In', 'Settled', 'Dead-letter stream', ''],
      rows,
      { numeric: ['Depth', 'Depth bytes', 'In flight', 'Waiting', 'Delayed', 'Dead-lettered', 'Consumers', 'In', 'Settled'], empty: 'no queues', id: 'queues-table' }));
  }

  async function redrive(name, dlq) {
    if (!(await confirmAction(`Redrive queue "${name}"? The records waiting in its dead-letter stream "${dlq}" are published to "${name}" again.`, 'Redrive'))) return;
    try {
      const r = await call('Redrive', { stream: name });
      toast(`moved ${num(r.moved)} record(s) back into ${name}`);
      await refresh();
    } catch (err) { toast(err.message, true); }
  }

  async function purge(name, depth) {
    if (!(await confirmAction(`Purge queue "${name}"? Its ${depth} record(s) not yet settled are dropped; this cannot be undone.`, 'Purge'))) return;
    try {
      const r = await call('PurgeQueue', { stream: name });
      toast(`purged ${num(r.purged)} record(s) from ${name}`);
      await refresh();
    } catch (err) { toast(err.message, true); }
  }

  return { root, refresh };
}

export default { mount };
