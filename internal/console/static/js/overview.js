// Overview: traffic, fsync latency, connections and disk, from the live feed.
import { call } from './api.js';
import { h, fmtBytes, fmtNum, fmtSecs, num } from './dom.js';
import { lineChart, legend } from './charts.js';

const charts = [
  { id: 'records', title: 'Records per second', format: fmtNum, series: [['in', 'recordsInPerSec'], ['out', 'recordsOutPerSec']] },
  { id: 'bytes', title: 'Bytes per second', format: (v) => fmtBytes(v) + '/s', series: [['in', 'bytesInPerSec'], ['out', 'bytesOutPerSec']] },
  { id: 'fsync', title: 'fsync latency (mean per second)', format: fmtSecs, series: [['fsync', 'fsyncMeanSecs']] },
];

function mount(main) {
  const canvases = {};
  const cards = h('div', { class: 'cards', id: 'overview-cards' });
  const counts = h('div', { class: 'cards', id: 'overview-counts' });
  const root = h('section', {},
    h('h1', {}, 'Overview'),
    cards,
    h('div', { class: 'charts' }, charts.map((c) => {
      canvases[c.id] = h('canvas', { id: 'chart-' + c.id, class: 'chart' });
      return h('figure', {}, h('figcaption', {}, c.title), canvases[c.id], legend(c.series.map(([name]) => ({ name }))));
    })),
    h('h2', {}, 'Catalog'),
    counts);
  main.append(root);

  function card(label, value, note) {
    return h('div', { class: 'card' }, h('span', { class: 'label' }, label), h('strong', {}, value), note ? h('span', { class: 'muted' }, note) : null);
  }

  function point(points) {
    for (const c of charts) {
      const series = c.series.map(([name, field]) => ({ name, points: points.map((p) => [Date.parse(p.time), p[field] || 0]) }));
      lineChart(canvases[c.id], series, c.format);
    }
    const last = points[points.length - 1];
    if (!last) return;
    const conns = Object.entries(last.connections || {}).sort();
    cards.replaceChildren(
      card('Records in', fmtNum(last.recordsInPerSec) + '/s', fmtBytes(last.bytesInPerSec) + '/s'),
      card('Records out', fmtNum(last.recordsOutPerSec) + '/s', fmtBytes(last.bytesOutPerSec) + '/s'),
      card('Disk used', fmtBytes(last.diskUsed), 'stream data'),
      card('Disk free', fmtBytes(last.diskFree)),
      card('fsync', fmtSecs(last.fsyncMeanSecs), fmtNum(last.fsyncs) + ' flushes/s'),
      card('Connections', String(conns.reduce((s, [, n]) => s + n, 0)), conns.map(([k, n]) => `${k} ${n}`).join(' · ') || 'none'),
    );
  }

  async function refresh() {
    const [st, qs, xs, gs] = await Promise.all([call('ListStreams'), call('ListQueues'), call('ListExchanges'), call('ListGroups')]);
    const streams = st.streams || [];
    const records = streams.reduce((s, x) => s + (x.partitions || []).reduce((a, p) => a + num(p.endOffset) - num(p.startOffset), 0), 0);
    counts.replaceChildren(
      card('Streams', String(streams.length), fmtNum(records) + ' records retained'),
      card('Queues', String((qs.queues || []).length), fmtNum((qs.queues || []).reduce((s, q) => s + num(q.depth), 0)) + ' messages'),
      card('Exchanges', String((xs.exchanges || []).length)),
      card('Groups', String((gs.groups || []).length)),
    );
  }

  return { root, point, refresh };
}

export default { mount };
