// The console's shell: routing between pages (#/page/arg), the login
// form, and the live feed that drives every page's refresh.
import { live, setCredentials, clearCredentials, setUnauthorizedHandler, authorization, Unauthorized } from './api.js';
import { h, toast } from './dom.js';
import overview from './overview.js';
import streams from './streams.js';
import queues from './queues.js';
import groups from './groups.js';
import { exchanges, connectors } from './exchanges.js';

const pages = { overview, streams, queues, groups, exchanges, connectors };

// points holds the live feed's samples, newest last (see overview.js).
export const points = [];
const maxPoints = 300;

let current = null; // { page, view }
let refreshing = false;
let stopLive = null;

function route() {
  const [name = 'overview', ...args] = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  const page = pages[name] || overview;
  if (current && current.view.unmount) current.view.unmount();
  const main = document.getElementById('main');
  main.replaceChildren();
  document.getElementById('toast').hidden = true;
  main.dataset.page = name;
  for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', a.dataset.page === (pages[name] ? name : 'overview'));
  current = { page, view: page.mount(main, args.filter(Boolean)) };
  if (current.view.point) current.view.point(points);
  refresh();
}

// refresh asks the page to reload what it shows; a refresh still running
// is not doubled.
let again = false; // a refresh was asked for while one ran

async function refresh() {
  if (!current || !current.view.refresh) return;
  if (refreshing) { again = true; return; }
  refreshing = true;
  again = false;
  const view = current.view;
  try {
    await view.refresh();
    if (view.error) { view.error.remove(); view.error = null; }
  } catch (err) {
    if (!(err instanceof Unauthorized)) {
      console.warn(err);
      if (!view.error && view.root) {
        view.error = h('p', { class: 'error banner' }, String(err.message || err));
        view.root.prepend(view.error);
      } else if (view.error) view.error.textContent = String(err.message || err);
    }
  } finally {
    refreshing = false;
  }
  if (again) refresh(); // the page changed, or a point came, meanwhile
}

function onLive(event, data) {
  if (event === 'history') points.splice(0, points.length, ...data);
  else if (event === 'point') {
    points.push(data);
    if (points.length > maxPoints) points.splice(0, points.length - maxPoints);
  }
  if (current && current.view.point) current.view.point(points);
  if (event === 'point') refresh();
}

function startLive() {
  if (stopLive) stopLive();
  stopLive = live(onLive, (on) => {
    const el = document.getElementById('live');
    el.classList.toggle('off', !on);
    el.title = on ? 'live updates on' : 'live updates reconnecting';
  });
}

function showLogin(message) {
  const dialog = document.getElementById('login');
  const error = document.getElementById('login-error');
  error.hidden = !message;
  error.textContent = message || '';
  if (!dialog.open) dialog.showModal();
}

let loginShown = false;
setUnauthorizedHandler(() => {
  if (stopLive) { stopLive(); stopLive = null; }
  const hadCredentials = !!authorization();
  if (!loginShown) {
    loginShown = true;
    showLogin(hadCredentials ? 'Those credentials were refused.' : '');
  }
});

document.getElementById('login-form').addEventListener('submit', (e) => {
  const form = new FormData(e.target);
  const user = form.get('user').trim(), password = form.get('password'), token = form.get('token').trim();
  if (!token && !user) {
    e.preventDefault();
    showLogin('Give a user and password, or a token.');
    return;
  }
  setCredentials({ user, password, token });
  e.target.reset();
  loginShown = false;
  document.getElementById('logout').hidden = false;
  startLive();
  route();
});
document.getElementById('login').addEventListener('cancel', (e) => e.preventDefault());

document.getElementById('logout').addEventListener('click', () => {
  clearCredentials();
  toast('Logged out');
  location.reload();
});

document.getElementById('logout').hidden = !authorization();
window.addEventListener('hashchange', route);
startLive();
route();
