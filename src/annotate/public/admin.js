// Admin dashboard: agreement figures, per-annotator quality, annotator management.
import { api, ApiError, el, fmt, pct } from './common.js';

const main = document.getElementById('main');
let csrf = null;
let timer = null;

const FLAG_TEXT = {
  low_gold_accuracy: 'fails gold',
  position_bias: 'position bias',
  too_fast: 'too fast',
  straight_lining: 'same answer',
};

async function start() {
  const token = new URLSearchParams(location.hash.slice(1)).get('token');
  history.replaceState(null, '', '/admin');
  if (token) {
    try {
      await api('/api/admin/login', { method: 'POST', body: { token } });
    } catch (e) {
      return showLogin(e.message);
    }
  }
  try {
    const me = await api('/api/admin/me');
    csrf = me.csrf;
    document.getElementById('title').textContent = `Dashboard · ${me.title}`;
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return showLogin('');
    return showError(e);
  }
  await refresh();
  timer = setInterval(() => void refresh(), 10_000);
}

function showError(e) {
  main.replaceChildren(el('section', { class: 'card center error' }, el('p', {}, e.message)));
}

function showLogin(err) {
  const input = el('input', { type: 'password', id: 'admin-token', placeholder: 'Admin token', autocomplete: 'off' });
  const form = el('form', { class: 'row' }, input, el('button', { class: 'primary', type: 'submit' }, 'Sign in'));
  const msg = el('p', { class: err ? 'error' : 'muted' }, err || 'Enter the admin token printed by "dpo annotate init" (also in the project folder, file admin-token).');
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      await api('/api/admin/login', { method: 'POST', body: { token: input.value.trim() } });
      await start();
    } catch (e) {
      msg.textContent = e.message;
      msg.className = 'error';
    }
  });
  main.replaceChildren(el('section', { class: 'card narrow-card' }, el('h1', {}, 'Admin sign-in'), msg, form));
}

function stat(label, value, hint, id) {
  return el('div', { class: 'stat', id }, el('div', { class: 'stat-value' }, value), el('div', { class: 'stat-label' }, label), hint ? el('div', { class: 'stat-hint' }, hint) : null);
}

function kappaWord(k) {
  if (k === null || k === undefined) return 'not enough overlap yet';
  if (k < 0) return 'worse than chance';
  if (k < 0.2) return 'slight';
  if (k < 0.4) return 'fair';
  if (k < 0.6) return 'moderate';
  if (k < 0.8) return 'substantial';
  return 'almost perfect';
}

async function refresh() {
  let q, list;
  try {
    [q, list] = await Promise.all([api('/api/admin/quality'), api('/api/admin/annotators')]);
  } catch (e) {
    if (timer) clearInterval(timer);
    return e instanceof ApiError && e.status === 401 ? showLogin('Session ended, sign in again.') : showError(e);
  }
  document.getElementById('updated').textContent = `updated ${new Date().toLocaleTimeString()}`;
  const ag = q.agreement;
  const stats = el(
    'section',
    { class: 'stats', id: 'stats' },
    stat('items labeled', `${q.items.withVotes} / ${q.items.regular + q.items.gold}`, `${q.items.complete} complete · ${q.items.gold} gold`),
    stat('votes', String(q.votes), `${ag.pairableItems} items with ≥ 2 votes`),
    stat("Krippendorff's α", fmt(ag.krippendorffAlpha), kappaWord(ag.krippendorffAlpha), 'stat-alpha'),
    stat("Fleiss' κ", fmt(ag.fleissKappa), ag.fleissItems ? `${ag.fleissItems} items × ${ag.fleissRaters} raters` : 'not enough overlap yet', 'stat-fleiss'),
    stat("mean Cohen's κ", fmt(ag.meanCohenKappa), `${ag.pairwise.length} annotator pairs`, 'stat-cohen'),
  );

  const head = el('tr', {}, ...['Annotator', 'Votes', 'Gold accuracy', 'Share “A”', 'Median time', 'Agrees w/ others', 'Flags', 'Consent', ''].map((h) => el('th', {}, h)));
  const rows = q.annotators.map((a) => {
    const flags = el('td', { class: 'flags' }, a.flags.length ? a.flags.map((f) => el('span', { class: 'flag' }, FLAG_TEXT[f] || f)) : el('span', { class: 'ok' }, 'ok'));
    const actions = el('td', { class: 'row-actions' });
    const inviteBtn = el('button', { type: 'button', class: 'small' }, 'New link');
    inviteBtn.addEventListener('click', async () => {
      const r = await api(`/api/admin/annotators/${a.id}/invite`, { method: 'POST', body: {}, csrf });
      showInvite(a.name, r.inviteUrl);
    });
    const disBtn = el('button', { type: 'button', class: 'small' }, a.disabled ? 'Enable' : 'Disable');
    disBtn.addEventListener('click', async () => {
      await api(`/api/admin/annotators/${a.id}/${a.disabled ? 'enable' : 'disable'}`, { method: 'POST', body: {}, csrf });
      await refresh();
    });
    actions.append(inviteBtn, disBtn);
    return el(
      'tr',
      { class: [a.likelySpammer ? 'suspect' : '', a.disabled ? 'disabled' : ''].join(' ').trim() || undefined, 'data-pseudonym': a.pseudonym },
      el('td', {}, el('div', { class: 'name' }, a.name), el('div', { class: 'muted mono' }, a.pseudonym)),
      el('td', { class: 'num' }, String(a.votes)),
      el('td', { class: 'num' }, a.goldVotes ? `${pct(a.goldAccuracy)} (${a.goldCorrect}/${a.goldVotes})` : '—'),
      el('td', { class: 'num' }, pct(a.shareA)),
      el('td', { class: 'num' }, a.medianSeconds === null ? '—' : `${fmt(a.medianSeconds, 1)} s`),
      el('td', { class: 'num' }, a.comparedVotes ? `${pct(a.agreementWithOthers)} of ${a.comparedVotes}` : '—'),
      flags,
      el('td', {}, a.consentedAt ? new Date(a.consentedAt).toLocaleDateString() : el('span', { class: 'muted' }, 'pending')),
      actions,
    );
  });
  const table = el('div', { class: 'table-wrap' }, el('table', { id: 'annotators' }, el('thead', {}, head), el('tbody', {}, rows)));

  const name = el('input', { type: 'text', id: 'new-name', placeholder: 'Name of the new annotator', maxlength: '100' });
  const form = el('form', { class: 'row' }, name, el('button', { class: 'primary', type: 'submit' }, 'Create annotator'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (!name.value.trim()) return;
    try {
      const r = await api('/api/admin/annotators', { method: 'POST', body: { name: name.value }, csrf });
      showInvite(r.name, r.inviteUrl);
      name.value = '';
      await refresh();
    } catch (e) {
      showInvite('', '', e.message);
    }
  });
  const invite = document.getElementById('invite') || el('div', { id: 'invite' });
  const groups = groupsSection(q.groups);
  const batches = batchesSection(q.batches);
  main.replaceChildren(
    stats,
    ...(batches ? [batches] : []),
    ...(groups ? [groups] : []),
    el('section', { class: 'card' }, el('h2', {}, 'Annotators'), table, el('p', { class: 'muted legend' }, 'Flags: fails gold = accuracy on control items below the bar; position bias = picks one screen side far too often; too fast = median time per item very short; same answer = nearly always the same key. Rows in red: likely spammers (export with --exclude-gold-failing to leave them out).')),
    el('section', { class: 'card' }, el('h2', {}, 'Invite an annotator'), form, invite),
  );
}

/** Items per source: each `dpo loop` round is one ("loop NAME round-K"); the loop waits for its round to complete. */
function batchesSection(b) {
  if (!b || !b.some((x) => x.source.startsWith('loop '))) return null;
  const head = el('tr', {}, ...['Batch', 'Items', 'Complete', 'Votes'].map((h) => el('th', {}, h)));
  const rows = b.map((x) =>
    el('tr', { 'data-batch': x.source, class: x.source.startsWith('loop ') && x.complete < x.items ? 'current' : undefined },
      el('td', {}, x.source || '(no source)', x.source.startsWith('loop ') && x.complete < x.items ? el('span', { class: 'flag' }, 'the loop is waiting') : null),
      el('td', { class: 'num' }, String(x.items)),
      el('td', { class: 'num' }, `${x.complete} (${pct(x.items ? x.complete / x.items : 0)})`),
      el('td', { class: 'num' }, String(x.votes))));
  return el('section', { class: 'card', id: 'batches' }, el('h2', {}, 'Batches'), el('div', { class: 'table-wrap' }, el('table', {}, el('thead', {}, head), el('tbody', {}, rows))),
    el('p', { class: 'muted legend' }, 'Complete: items with their overlap of votes from enabled annotators. A `dpo loop` round waits until its batch is complete (or its deadline), then exports it with --exclude-gold-failing and trains.'));
}

/** Per-group figures for each annotator attribute (groups below the minimum size already merged into "other"). */
function groupsSection(g) {
  if (!g || !g.attributes.length) return null;
  const parts = [el('h2', {}, 'Groups')];
  for (const a of g.attributes) {
    parts.push(el('h3', {}, a.question));
    for (const w of a.warnings) parts.push(el('p', { class: 'error group-warning' }, w));
    const head = el('tr', {}, ...['Group', 'Annotators', 'Votes', 'Vote share', 'Agreement within (alpha)'].map((h) => el('th', {}, h)));
    const rows = a.groups.map((x) =>
      el('tr', { 'data-group': x.group },
        el('td', {}, x.group),
        el('td', { class: 'num' }, `${x.annotators} (${pct(x.annotatorShare)})`),
        el('td', { class: 'num' }, String(x.votes)),
        el('td', { class: 'num' }, pct(x.voteShare)),
        el('td', { class: 'num' }, x.pairableItems ? fmt(x.alphaWithin) : '—'),
      ),
    );
    parts.push(el('div', { class: 'table-wrap' }, el('table', { class: 'groups', 'data-attribute': a.attribute }, el('thead', {}, head), el('tbody', {}, rows))));
    const across = a.across.filter((p) => p.items > 0).map((p) => `${p.a} vs ${p.b}: ${pct(p.agreement)} of ${p.items} items`);
    parts.push(el('p', { class: 'muted' }, `Majorities agree across groups — ${across.length ? across.join('; ') : 'no items with majorities in two groups yet'}. ` +
      `Items where the groups' majorities differ: ${a.disagreements.count}${a.disagreements.items.length ? ` (e.g. item ${a.disagreements.items.slice(0, 5).map((d) => d.itemId).join(', ')})` : ''}.`));
  }
  parts.push(el('p', { class: 'muted legend' }, `Groups with fewer than ${g.minGroupSize} annotators are merged into “other”; “not stated” = no answer or “prefer not to say”.`));
  return el('section', { class: 'card', id: 'groups' }, parts);
}

function showInvite(name, url, err) {
  const box = document.getElementById('invite');
  if (!box) return;
  if (err) return box.replaceChildren(el('p', { class: 'error' }, err));
  const input = el('input', { type: 'text', readonly: true, value: url, class: 'mono', id: 'invite-url' });
  const copy = el('button', { type: 'button', class: 'small' }, 'Copy');
  copy.addEventListener('click', async () => {
    input.select();
    try {
      await navigator.clipboard.writeText(url);
      copy.textContent = 'Copied';
    } catch {
      document.execCommand('copy');
    }
  });
  box.replaceChildren(el('p', {}, `Personal invite link for ${name} (anyone with it can label as ${name}; send it privately):`), el('div', { class: 'row' }, input, copy));
}

void start();
