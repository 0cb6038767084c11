// Exchanges and bindings as a graph; connectors with their lag.
import { call } from './api.js';
import { h, table, num, fmtNum, fmtBytes, fmtDuration, fmtTime } from './dom.js';
import { exchangeGraph } from './charts.js';

function mountExchanges(main) {
  const graph = h('div', { class: 'graph-box', id: 'exchange-graph' });
  const list = h('div');
  const root = h('section', {}, h('h1', {}, 'Exchanges'), graph, list);
  main.append(root);
  let drawn = '';
  async function refresh() {
    const [{ exchanges = [] }, { queues = [] }] = await Promise.all([call('ListExchanges'), call('ListQueues')]);
    const shape = JSON.stringify([exchanges.map((x) => [x.name, x.type, x.alternateExchange, x.bindings]), queues.map((q) => q.config.stream)]);
    if (shape !== drawn) { // redraw only when the topology changed
      drawn = shape;
      graph.replaceChildren(exchanges.length ? exchangeGraph(exchanges, queues) : h('p', { class: 'muted' }, 'no exchanges'));
    }
    list.replaceChildren(table(['Exchange', 'Type', 'Alternate', 'Bindings', 'Unroutable'],
      exchanges.map((x) => [x.name, x.type, x.alternateExchange || '', (x.bindings || []).length, fmtNum(x.unroutable)]),
      { numeric: ['Bindings', 'Unroutable'], empty: 'no exchanges', id: 'exchanges-table' }));
  }
  return { root, refresh };
}

function mountConnectors(main) {
  const list = h('div');
  const root = h('section', {}, h('h1', {}, 'Connectors'), list);
  main.append(root);
  async function refresh() {
    const { connectors = [] } = await call('weir.v1.Connectors/ListConnectors');
    list.replaceChildren(table(['Connector', 'Type', 'Origin', 'State', 'Events', 'Lag', 'Behind', 'Confirmed LSN', 'Server WAL', 'Last event', 'Restarts', 'Last error'],
      connectors.map((c) => [c.name, c.type, c.origin, h('span', { class: 'state ' + (c.state || '') }, c.state || ''), fmtNum(c.events), fmtBytes(c.lagBytes), fmtDuration(c.behind),
        c.confirmedLsn || '', c.serverWalLsn || '', fmtTime(c.lastEventTime), num(c.restarts), c.lastError ? `${c.lastError} (${fmtTime(c.lastErrorTime)})` : '']),
      { numeric: ['Events', 'Lag', 'Restarts'], empty: 'no connectors', id: 'connectors-table' }));
  }
  return { root, refresh };
}

export const exchanges = { mount: mountExchanges };
export const connectors = { mount: mountConnectors };
