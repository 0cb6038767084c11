// Subscriptions and groups: consumer groups with their members, partition
// assignment and lag per partition over time (the server samples it and
// keeps the history: /console/api/lag), and the shared subscriptions of
// every stream.
import { call, get } from './api.js';
import { h, table, num, fmtNum, fmtDuration, fmtTime } from './dom.js';
import { lineChart, legend } from './charts.js';

// The lag history as last read: group -> [{ name, points: [[t, lag]] }].
// It is read again once the server may have taken a new sample.
let lag = { at: 0, intervalMillis: 10000, groups: new Map() };

async function lagHistory() {
  const now = Date.now();
  if (now - lag.at < lag.intervalMillis / 2) return lag;
  const ans = await get('/console/api/lag');
  const groups = new Map();
  for (const g of ans.groups || []) {
    groups.set(g.group, (g.series || []).map((s) => ({ name: `${s.stream}/${num(s.partition)}`, points: s.points || [] })));
  }
  lag = { at: now, intervalMillis: num(ans.intervalMillis) || 10000, groups };
  return lag;
}

function mount(main) {
  const groupsEl = h('div', { id: 'groups' });
  const subsEl = h('div', { id: 'subscriptions' });
  const root = h('section', {}, h('h1', {}, 'Subscriptions and groups'), h('h2', {}, 'Consumer groups'), groupsEl, h('h2', {}, 'Shared subscriptions'), subsEl);
  main.append(root);
  const canvases = new Map();
  lag.at = 0; // a page opened reads the history at once

  async function refresh() {
    const [{ groups = [] }, { streams = [] }] = await Promise.all([call('ListGroups'), call('ListStreams')]);
    const [infos, history] = await Promise.all([Promise.all(groups.map((g) => call('DescribeGroup', { group: g }))), lagHistory()]);
    const seconds = Math.round(history.intervalMillis / 1000);
    groupsEl.replaceChildren(...(infos.length ? [] : [h('p', { class: 'muted' }, 'no consumer groups')]));
    for (const g of infos) {
      const owner = new Map();
      for (const m of g.members || []) for (const p of m.assigned || []) owner.set(`${p.stream}/${num(p.partition)}`, m.clientId || m.memberId);
      let canvas = canvases.get(g.group);
      if (!canvas) { canvas = h('canvas', { class: 'chart small' }); canvases.set(g.group, canvas); }
      const series = history.groups.get(g.group) || [];
      groupsEl.append(h('article', { class: 'group', 'data-group': g.group },
        h('h3', {}, g.group, h('span', { class: 'muted' }, ` · ${g.strategy || 'range'} · generation ${num(g.generation)} · ${(g.members || []).length} member(s)`)),
        table(['Member', 'Client', 'Streams', 'Assigned', 'Session timeout', 'Last heartbeat'],
          (g.members || []).map((m) => [m.memberId, m.clientId, (m.streams || []).join(', '), (m.assigned || []).map((p) => `${p.stream}/${num(p.partition)}`).join(' '), fmtDuration(m.sessionTimeout), fmtTime(m.lastHeartbeat)]),
          { empty: 'no members' }),
        table(['Stream', 'Partition', 'Member', 'Committed', 'End', 'Lag', 'Committed at'],
          (g.offsets || []).map((o) => [o.stream, num(o.partition), owner.get(`${o.stream}/${num(o.partition)}`) || '', num(o.offset), num(o.endOffset), fmtNum(o.lag), fmtTime(o.commitTime)]),
          { numeric: ['Partition', 'Committed', 'End', 'Lag'], empty: 'no committed offsets' }),
        h('figure', { class: 'lag-history', 'data-points': String(series.reduce((n, x) => n + x.points.length, 0)) },
          h('figcaption', {}, `Lag per partition, sampled by the server every ${seconds} s`), canvas, legend(series))));
      lineChart(canvas, series, fmtNum);
    }
    const subs = (await Promise.all(streams.map((s) => call('ListSubscriptions', { stream: s.config.name }).then((r) => r.subscriptions || [])))).flat().filter((s) => !s.queue);
    subsEl.replaceChildren(table(
      ['Stream', 'Subscription', 'Filter', 'Depth', 'In flight', 'Waiting', 'Delayed', 'Dead-lettered', 'Consumers'],
      subs.map((s) => [s.config.stream, s.config.name, s.config.filter ? h('code', {}, s.config.filter) : '', num(s.depth), num(s.inFlight), num(s.waiting), num(s.delayed), num(s.deadLettered), num(s.consumers)]),
      { numeric: ['Depth', 'In flight', 'Waiting', 'Delayed', 'Dead-lettered', 'Consumers'], empty: 'no shared subscriptions besides the queues', id: 'subscriptions-table' }));
  }
  return { root, refresh };
}

export default { mount };
