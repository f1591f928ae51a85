// The operator dashboard: log in, calls (filters, transcript, recording),
// analytics charts, agent editing, and the desk (WhatsApp conversations a
// person takes over, kept live by the API's event feed). Plain JS over the control API (/v1);
// the login token stays in this tab's sessionStorage. Data is only ever
// put in the page as text, never as HTML.
'use strict';

const $ = (sel) => document.querySelector(sel);
const el = (tag, text, attrs = {}) => {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
};
const SVG = 'http://www.w3.org/2000/svg';
const svgEl = (tag, attrs = {}, text) => {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = String(text);
  return e;
};

let token = sessionStorage.getItem('voxgate-token');
let cursor = null;

async function api(path, options = {}) {
  const headers = { Authorization: `Bearer ${token}`, ...(options.body ? { 'Content-Type': 'application/json' } : {}) };
  const r = await fetch(path, { ...options, headers });
  if (r.status === 401) {
    showLogin();
    throw new Error('logged out');
  }
  const body = r.status === 204 ? null : await r.json();
  if (!r.ok) throw new Error(body && body.error ? body.error : `HTTP ${r.status}`);
  return body;
}

function showLogin() {
  sessionStorage.removeItem('voxgate-token');
  token = null;
  $('#app').hidden = true;
  $('#login').hidden = false;
}

$('#login').addEventListener('submit', async (e) => {
  e.preventDefault();
  $('#login-error').textContent = '';
  const r = await fetch('/v1/auth/login', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ email: $('#email').value, password: $('#password').value }),
  });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) {
    $('#login-error').textContent = body.error || `Login failed (${r.status})`;
    return;
  }
  token = body.token;
  sessionStorage.setItem('voxgate-token', token);
  start();
});

$('#logout').addEventListener('click', showLogin);

for (const b of document.querySelectorAll('nav button')) {
  b.addEventListener('click', () => show(b.dataset.view));
}

function show(view) {
  for (const b of document.querySelectorAll('nav button')) b.classList.toggle('on', b.dataset.view === view);
  for (const v of ['calls', 'analytics', 'agents', 'desk']) $(`#view-${v}`).hidden = v !== view;
  if (view === 'analytics') loadAnalytics().catch(report);
  if (view === 'agents') loadAgents().catch(report);
  if (view === 'desk') loadDesk().catch(report);
}

function report(e) {
  if (e.message !== 'logged out') console.error(e);
}

async function start() {
  $('#login').hidden = true;
  $('#app').hidden = false;
  const me = await api('/v1/me');
  $('#who').textContent = me.email || me.tenant_id || '';
  const agents = await api('/v1/agents');
  const select = $('#call-filters [name=agent]');
  select.replaceChildren(el('option', 'Any', { value: '' }));
  for (const a of agents.agents) select.append(el('option', a.name, { value: a.id }));
  await listCalls(true);
  follow();
  countWaiting().catch(report);
}

// ---- Calls -----------------------------------------------------------------

function filters() {
  const f = new FormData($('#call-filters'));
  const q = new URLSearchParams({ limit: '25' });
  for (const k of ['agent', 'channel', 'status']) if (f.get(k)) q.set(k, f.get(k));
  if (f.get('from')) q.set('from', new Date(`${f.get('from')}T00:00`).getTime());
  if (f.get('to')) q.set('to', new Date(`${f.get('to')}T00:00`).getTime() + 86400000);
  return q;
}

async function listCalls(reset) {
  const q = filters();
  if (!reset && cursor) q.set('cursor', cursor);
  const page = await api(`/v1/calls?${q}`);
  const body = $('#calls tbody');
  if (reset) body.replaceChildren();
  for (const c of page.calls) {
    const row = el('tr', undefined, { 'data-id': c.id });
    row.append(
      el('td', new Date(c.started_at).toLocaleString()),
      el('td', c.channel),
      el('td', c.status),
      el('td', `${Math.round(c.duration_ms / 1000)} s`),
      el('td', c.caller || c.callee || ''),
    );
    row.addEventListener('click', () => showCall(c.id).catch(report));
    body.append(row);
  }
  cursor = page.next_cursor;
  $('#more').hidden = !cursor;
}

$('#call-filters').addEventListener('submit', (e) => {
  e.preventDefault();
  listCalls(true).catch(report);
});
$('#more').addEventListener('click', () => listCalls(false).catch(report));

async function showCall(id) {
  const call = await api(`/v1/calls/${encodeURIComponent(id)}`);
  $('#call').hidden = false;
  $('#call-title').textContent = `${call.channel} call, ${new Date(call.started_at).toLocaleString()}`;
  const a = call.analytics;
  $('#call-analytics').textContent = a
    ? `${a.category} · sentiment ${a.sentiment.toFixed(2)} · ${a.summary}`
    : 'Not analysed yet.';
  const lines = (call.transcript || []).map((l) => {
    const line = el('div', undefined, { class: `line ${l.speaker}${l.interrupted ? ' interrupted' : ''}` });
    line.append(el('b', l.speaker === 'caller' ? 'Caller' : 'Agent'), document.createTextNode(l.text));
    return line;
  });
  $('#transcript').replaceChildren(...lines);
  const player = $('#player');
  player.removeAttribute('src');
  player.hidden = !call.recording;
  if (call.recording) {
    const link = await api(`/v1/calls/${encodeURIComponent(id)}/recording`);
    player.src = link.url;
  }
}

// ---- Analytics --------------------------------------------------------------

async function loadAnalytics() {
  const q = new URLSearchParams({ tz: Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC' });
  const [calls, sentiment, categories, phrases] = await Promise.all(
    ['calls', 'sentiment', 'categories', 'top-phrases'].map((r) => api(`/v1/analytics/${r}?${q}`)),
  );
  const n = calls.total.calls;
  $('#range').textContent = `The last 30 days: ${n} call${n === 1 ? '' : 's'}, ${Math.round(calls.total.completion_rate * 100)} % completed, ` +
    `average ${Math.round(calls.total.average_duration_s)} s.`;
  $('#chart-calls').replaceChildren(bars(calls.days.map((d) => [d.date.slice(5), d.calls])));
  $('#chart-sentiment').replaceChildren(
    line(sentiment.days.filter((d) => d.average !== null).map((d) => [d.date.slice(5), d.average]), -1, 1),
  );
  $('#chart-categories').replaceChildren(stacked(categories.days), legend(categories.total));
  $('#phrases').replaceChildren(...phrases.phrases.map((p) => el('li', `${p.phrase} (${p.calls})`)));
}

const W = 360;
const H = 180;
const PAD = 28;

function frame() {
  const svg = svgEl('svg', { viewBox: `0 0 ${W} ${H}`, width: '100%', role: 'img', class: 'chart' });
  svg.append(svgEl('line', { x1: PAD, y1: H - PAD, x2: W - 4, y2: H - PAD, stroke: '#ccd' }));
  return svg;
}

/// A bar per [label, value].
function bars(data) {
  const svg = frame();
  const max = Math.max(1, ...data.map((d) => d[1]));
  const step = (W - PAD - 4) / Math.max(1, data.length);
  data.forEach(([label, value], i) => {
    const h = ((H - 2 * PAD) * value) / max;
    const x = PAD + i * step + step * 0.15;
    svg.append(svgEl('rect', { x, y: H - PAD - h, width: step * 0.7, height: h, fill: '#2456d6', class: 'bar' }));
    svg.append(svgEl('text', { x: x + step * 0.35, y: H - PAD - h - 3, 'text-anchor': 'middle' }, value));
    svg.append(svgEl('text', { x: x + step * 0.35, y: H - 10, 'text-anchor': 'middle' }, label.length > 10 ? `${label.slice(0, 9)}…` : label));
  });
  return svg;
}

const COLOURS = ['#2456d6', '#6b9bf2', '#a9c4f7', '#e8833a', '#98a2b3'];

/// A bar per day, stacked by category (in the API's order of the five).
function stacked(days) {
  const svg = frame();
  const totals = days.map((d) => d.categories.reduce((sum, c) => sum + c.calls, 0));
  const max = Math.max(1, ...totals);
  const step = (W - PAD - 4) / Math.max(1, days.length);
  days.forEach((d, i) => {
    const x = PAD + i * step + step * 0.15;
    let top = H - PAD;
    d.categories.forEach((c, k) => {
      if (!c.calls) return;
      const h = ((H - 2 * PAD) * c.calls) / max;
      top -= h;
      const bar = svgEl('rect', { x, y: top, width: step * 0.7, height: h, fill: COLOURS[k], class: 'bar' });
      bar.append(svgEl('title', {}, `${c.category}: ${c.calls}`));
      svg.append(bar);
    });
    svg.append(svgEl('text', { x: x + step * 0.35, y: H - 10, 'text-anchor': 'middle' }, d.date.slice(5)));
  });
  return svg;
}

/// The categories' colours and totals.
function legend(total) {
  const list = el('ul', undefined, { class: 'legend' });
  total.forEach((c, k) => {
    const swatch = el('span', undefined, { class: 'swatch' });
    swatch.style.background = COLOURS[k];
    const item = el('li');
    item.append(swatch, document.createTextNode(`${c.category} (${c.calls})`));
    list.append(item);
  });
  return list;
}

/// A line through [label, value] points, values between lo and hi.
function line(data, lo, hi) {
  const svg = frame();
  const y = (v) => H - PAD - ((H - 2 * PAD) * (v - lo)) / (hi - lo);
  svg.append(svgEl('line', { x1: PAD, y1: y(0), x2: W - 4, y2: y(0), stroke: '#eee' }));
  svg.append(svgEl('text', { x: 2, y: y(hi) + 4 }, hi), svgEl('text', { x: 2, y: y(lo) }, lo));
  const step = (W - PAD - 8) / Math.max(1, data.length - 1);
  const points = data.map(([, v], i) => `${PAD + i * step},${y(v)}`);
  if (points.length) svg.append(svgEl('polyline', { points: points.join(' '), fill: 'none', stroke: '#2456d6', 'stroke-width': 2 }));
  data.forEach(([label, v], i) => {
    svg.append(svgEl('circle', { cx: PAD + i * step, cy: y(v), r: 3, fill: '#2456d6', class: 'point' }));
    svg.append(svgEl('text', { x: PAD + i * step, y: H - 10, 'text-anchor': 'middle' }, label));
  });
  return svg;
}

// ---- Agents -----------------------------------------------------------------

let editing = null;

async function loadAgents() {
  const list = await api('/v1/agents');
  const body = $('#agents tbody');
  body.replaceChildren();
  for (const a of list.agents) {
    const row = el('tr', undefined, { 'data-id': a.id });
    row.append(el('td', a.name), el('td', (a.numbers || []).join(', ')));
    row.addEventListener('click', () => editAgent(a.id).catch(report));
    body.append(row);
  }
}

async function editAgent(id) {
  const agent = await api(`/v1/agents/${encodeURIComponent(id)}`);
  editing = agent;
  const form = $('#agent');
  form.hidden = false;
  const { id: _id, created_at: _c, updated_at: _u, name, greeting, system_prompt: prompt, ...rest } = agent;
  form.elements.name.value = name;
  form.elements.greeting.value = greeting || '';
  form.elements.system_prompt.value = prompt || '';
  form.elements.spec.value = JSON.stringify(rest, null, 2);
  $('#agent-saved').textContent = '';
  $('#agent-error').textContent = '';
}

$('#agent').addEventListener('submit', async (e) => {
  e.preventDefault();
  const form = e.target;
  $('#agent-error').textContent = '';
  let rest;
  try {
    rest = JSON.parse(form.elements.spec.value || '{}');
  } catch (err) {
    $('#agent-error').textContent = `The JSON does not parse: ${err.message}`;
    return;
  }
  const spec = { ...rest, name: form.elements.name.value, greeting: form.elements.greeting.value, system_prompt: form.elements.system_prompt.value };
  try {
    await api(`/v1/agents/${encodeURIComponent(editing.id)}`, { method: 'PUT', body: JSON.stringify(spec) });
    $('#agent-saved').textContent = 'Saved.';
    await loadAgents();
  } catch (err) {
    $('#agent-error').textContent = err.message;
  }
});

// ---- Desk -------------------------------------------------------------------

let current = null;
let me = null;

const STATUS = {
  ai: 'with the agent',
  waiting_for_human: 'waiting for a person',
  human: 'claimed',
  closed: 'closed',
};

async function countWaiting() {
  const waiting = await api('/v1/conversations?status=waiting_for_human');
  $('#waiting').textContent = waiting.length ? `(${waiting.length})` : '';
}

async function loadDesk() {
  const status = $('#desk-filter').value;
  const list = await api(`/v1/conversations${status ? `?status=${status}` : ''}`);
  const body = $('#conversations tbody');
  body.replaceChildren();
  for (const c of list) {
    const row = el('tr', undefined, { 'data-id': c.id, 'data-status': c.status });
    row.append(
      el('td', c.contact_name ? `${c.contact_name} (+${c.contact})` : `+${c.contact}`),
      el('td', STATUS[c.status] || c.status),
      el('td', new Date(c.last_at).toLocaleString()),
    );
    row.addEventListener('click', () => showConversation(c.id).catch(report));
    body.append(row);
  }
}

$('#desk-filter').addEventListener('change', () => loadDesk().catch(report));

async function showConversation(id) {
  const c = await api(`/v1/conversations/${encodeURIComponent(id)}`);
  current = c;
  if (!me) me = await api('/v1/me');
  $('#conversation').hidden = false;
  $('#conversation-title').textContent = c.contact_name ? `${c.contact_name} (+${c.contact})` : `+${c.contact}`;
  const mine = c.status === 'human' && c.claimed_by === me.subject;
  $('#conversation-status').textContent = c.status === 'human'
    ? (mine ? 'You have it.' : `Claimed by ${c.claimed_by}.`)
    : `This conversation is ${STATUS[c.status] || c.status}.`;
  $('#messages').replaceChildren(...c.messages.map((m) => {
    const who = { contact: 'Contact', agent: 'Agent', staff: 'Team' }[m.author] || m.author;
    const box = el('div', undefined, { class: `message ${m.author}` });
    const note = m.kind === 'voice' ? ' · voice note' : '';
    const status = m.status ? ` · ${m.status}` : '';
    box.append(el('small', `${who}${note}${status}`), document.createTextNode(m.text));
    return box;
  }));
  $('#claim').hidden = c.status === 'closed' || mine;
  $('#hand-back').hidden = c.status === 'closed' || c.status === 'ai';
  $('#close-conversation').hidden = c.status === 'closed';
  $('#reply').hidden = !mine;
  $('#desk-error').textContent = '';
}

async function act(path, body) {
  $('#desk-error').textContent = '';
  try {
    await api(`/v1/conversations/${encodeURIComponent(current.id)}/${path}`, { method: 'POST', body: body && JSON.stringify(body) });
    await showConversation(current.id);
    await loadDesk();
  } catch (err) {
    $('#desk-error').textContent = err.message;
  }
}

$('#claim').addEventListener('click', () => act('claim'));
$('#hand-back').addEventListener('click', () => act('hand-back'));
$('#close-conversation').addEventListener('click', () => act('close'));
$('#reply').addEventListener('submit', async (e) => {
  e.preventDefault();
  const text = e.target.elements.text;
  await act('messages', { text: text.value });
  if (!$('#desk-error').textContent) text.value = '';
});

/// The API's event feed, read as a stream (an EventSource cannot send the
/// token): each event refreshes what it touches. Reconnects after a drop.
async function follow() {
  while (token) {
    try {
      const r = await fetch('/v1/conversations/events', { headers: { Authorization: `Bearer ${token}` } });
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const data = buffer.slice(0, end).split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5)).join('');
          buffer = buffer.slice(end + 2);
          if (data) changed(JSON.parse(data));
        }
      }
    } catch (err) {
      report(err);
    }
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}

function changed(event) {
  countWaiting().catch(report);
  if (!$('#view-desk').hidden) loadDesk().catch(report);
  if (current && current.id === event.conversation_id) showConversation(current.id).catch(report);
}

// ---- A new account's password (the mailed link: /dashboard?set_password=…) --

const link = new URLSearchParams(location.search).get('set_password');

$('#set-password').addEventListener('submit', async (e) => {
  e.preventDefault();
  $('#set-password-error').textContent = '';
  const r = await fetch('/v1/auth/set-password', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ token: link, password: $('#new-password').value }),
  });
  if (!r.ok) {
    const body = await r.json().catch(() => ({}));
    $('#set-password-error').textContent = body.error || `Failed (${r.status})`;
    return;
  }
  // The link is used up: off the address bar, then log in with the new password.
  history.replaceState(null, '', location.pathname);
  $('#set-password').hidden = true;
  showLogin();
  $('#login-error').textContent = 'Password set. Log in.';
});

if (link) $('#set-password').hidden = false;
else if (token) start().catch(report);
else showLogin();
