// Subscriptions and groups: consumer groups with their members, partition
// assignment and lag per partition over time (kept while the page is
// open), and the shared subscriptions of every stream.
import { call } from './api.js';
import { h, table, num, fmtNum, fmtDuration, fmtTime } from './dom.js';
import { lineChart, legend } from './charts.js';

const lagHistory = new Map(); // group -> Map(stream/partition -> [[t, lag]])
const keep = 300;

function mount(main) {
  const groupsEl = h('div', { id: 'groups' });
  const subsEl = h('div', { id: 'subscriptions' });
  const root = h('section', {}, h('h1', {}, 'Subscriptions and groups'), h('h2', {}, 'Consumer groups'), groupsEl, h('h2', {}, 'Shared subscriptions'), subsEl);
  main.append(root);
  const canvases = new Map();

  async function refresh() {
    const [{ groups = [] }, { streams = [] }] = await Promise.all([call('ListGroups'), call('ListStreams')]);
    const infos = await Promise.all(groups.map((g) => call('DescribeGroup', { group: g })));
    const now = Date.now();
    groupsEl.replaceChildren(...(infos.length ? [] : [h('p', { class: 'muted' }, 'no consumer groups')]));
    for (const g of infos) {
      const history = lagHistory.get(g.group) || new Map();
      lagHistory.set(g.group, history);
      for (const o of g.offsets || []) {
        const key = `${o.stream}/${num(o.partition)}`;
        const points = history.get(key) || [];
        points.push([now, num(o.lag)]);
        if (points.length > keep) points.splice(0, points.length - keep);
        history.set(key, points);
      }
      const owner = new Map();
      for (const m of g.members || []) for (const p of m.assigned || []) owner.set(`${p.stream}/${num(p.partition)}`, m.clientId || m.memberId);
      let canvas = canvases.get(g.group);
      if (!canvas) { canvas = h('canvas', { class: 'chart small' }); canvases.set(g.group, canvas); }
      const series = [...history.entries()].sort().map(([name, points]) => ({ name, points }));
      groupsEl.append(h('article', { class: 'group', 'data-group': g.group },
        h('h3', {}, g.group, h('span', { class: 'muted' }, ` · ${g.strategy || 'range'} · generation ${num(g.generation)} · ${(g.members || []).length} member(s)`)),
        table(['Member', 'Client', 'Streams', 'Assigned', 'Session timeout', 'Last heartbeat'],
          (g.members || []).map((m) => [m.memberId, m.clientId, (m.streams || []).join(', '), (m.assigned || []).map((p) => `${p.stream}/${num(p.partition)}`).join(' '), fmtDuration(m.sessionTimeout), fmtTime(m.lastHeartbeat)]),
          { empty: 'no members' }),
        table(['Stream', 'Partition', 'Member', 'Committed', 'End', 'Lag', 'Committed at'],
          (g.offsets || []).map((o) => [o.stream, num(o.partition), owner.get(`${o.stream}/${num(o.partition)}`) || '', num(o.offset), num(o.endOffset), fmtNum(o.lag), fmtTime(o.commitTime)]),
          { numeric: ['Partition', 'Committed', 'End', 'Lag'], empty: 'no committed offsets' }),
        h('figure', {}, h('figcaption', {}, 'Lag per partition since this page opened'), canvas, legend(series))));
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
