// Annotator page: consent, then one item at a time. Keys: 1–4 choose, Enter submits.
import { api, ApiError, el, randomKey, setSafeHtml } from './common.js';

const main = document.getElementById('main');
const CHOICE_TEXT = { A: 'A is better', B: 'B is better', tie: 'Tie', both_bad: 'Both bad' };
const LABEL_TO_CHOICE = { a: 'A', b: 'B', tie: 'tie', both_bad: 'both_bad' };

let me = null; // /api/me
let current = null; // { assignment, key, choice, ratings, rationale }
let submitting = false;

function show(...nodes) {
  main.replaceChildren(...nodes);
  window.scrollTo(0, 0);
}

function message(title, text, cls = '') {
  show(el('section', { class: `card center ${cls}` }, el('h1', {}, title), el('p', { class: 'muted' }, text)));
}

function setProgress(p) {
  if (!p) return;
  const total = p.done + p.remaining;
  document.getElementById('progress').hidden = false;
  document.getElementById('progress-text').textContent = `${p.done} done · ${p.remaining} left`;
  document.getElementById('progress-fill').style.width = total ? `${(100 * p.done) / total}%` : '100%';
}

async function start() {
  try {
    me = await api('/api/me');
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return message('Please sign in', 'Open the personal invite link you were sent to start labeling.');
    return message('Something went wrong', e.message, 'error');
  }
  document.getElementById('title').textContent = me.config.title;
  document.getElementById('who').textContent = me.name;
  setProgress(me.progress);
  if (!me.consented) return showConsent();
  if (me.attributes && me.attributes.length) return showAttributes();
  await loadNext();
}

/** The optional questions about the annotator, asked once after consent. Every answer is optional. */
function showAttributes() {
  const answers = {};
  const fields = me.attributes.map((a) => {
    const select = el('select', { id: `attr-${a.id}`, 'data-attribute': a.id }, el('option', { value: '' }, '— no answer —'), a.options.map((o) => el('option', { value: o }, o)));
    select.addEventListener('change', () => {
      answers[a.id] = select.value || null;
    });
    return el('label', { class: 'attr' }, el('span', {}, a.question), select);
  });
  const status = el('p', { class: 'status', 'aria-live': 'polite' });
  const send = async (body, btn) => {
    btn.disabled = true;
    try {
      await api('/api/attributes', { method: 'POST', body, csrf: me.csrf });
      me.attributes = [];
      await loadNext();
    } catch (e) {
      btn.disabled = false;
      status.textContent = `Not saved: ${e.message}`;
      status.classList.add('error');
    }
  };
  const save = el('button', { class: 'primary', id: 'attributes-save', type: 'button' }, 'Save and start');
  save.addEventListener('click', () => void send({ answers }, save));
  const skip = el('button', { id: 'attributes-skip', type: 'button', class: 'small' }, 'Skip all');
  skip.addEventListener('click', () => void send({ answers: {} }, skip));
  show(
    el(
      'section',
      { class: 'card consent', id: 'attributes' },
      el('h1', {}, 'A few optional questions'),
      el('p', { class: 'muted' }, `We ask ${me.attributesPurpose}`),
      el('div', { class: 'attrs' }, fields),
      status,
      el('div', { class: 'actions' }, skip, save),
    ),
  );
}

function showConsent() {
  const box = setSafeHtml(el('div', { class: 'md' }), me.consentHtml);
  const btn = el('button', { class: 'primary', id: 'consent-agree', type: 'button' }, 'I agree — start');
  btn.addEventListener('click', async () => {
    btn.disabled = true;
    try {
      await api('/api/consent', { method: 'POST', body: { agree: true }, csrf: me.csrf });
      // The optional questions are only sent once consent is recorded.
      me = await api('/api/me');
      if (me.attributes && me.attributes.length) return showAttributes();
      await loadNext();
    } catch (e) {
      btn.disabled = false;
      message('Could not record consent', e.message, 'error');
    }
  });
  const guide = el('details', { class: 'guidelines' }, el('summary', {}, 'Labeling guidelines'), setSafeHtml(el('div', { class: 'md' }), me.guidelinesHtml));
  show(el('section', { class: 'card consent', id: 'consent' }, box, guide, el('div', { class: 'actions' }, btn)));
}

async function loadNext() {
  let r;
  try {
    r = await api('/api/next', { method: 'POST', body: {}, csrf: me.csrf });
  } catch (e) {
    return message('Could not load the next item', e.message, 'error');
  }
  setProgress(r.progress);
  if (!r.assignment) {
    current = null;
    return message('All done — thank you!', 'There is nothing left in your queue. You can close this page.');
  }
  current = { assignment: r.assignment, key: randomKey(), choice: null, ratings: {}, rationale: '' };
  renderItem();
}

function ratingRow(crit, side) {
  const scale = me.config.ratingScale;
  const group = el('div', { class: 'rating', role: 'radiogroup', 'aria-label': `${crit.label} ${side}` });
  for (let v = 1; v <= scale; v++) {
    const b = el('button', { type: 'button', class: 'rate', 'data-crit': crit.id, 'data-side': side, 'aria-pressed': 'false' }, String(v));
    b.addEventListener('click', () => {
      current.ratings[crit.id] = { ...(current.ratings[crit.id] || {}), [side]: v };
      for (const x of group.querySelectorAll('button')) x.setAttribute('aria-pressed', String(Number(x.textContent) === v));
      updateSubmit();
    });
    group.append(b);
  }
  return group;
}

function responseCard(side, html) {
  const card = el('article', { class: `card response side-${side.toLowerCase()}`, id: `response-${side.toLowerCase()}` }, el('div', { class: 'side-label' }, `Response ${side}`), setSafeHtml(el('div', { class: 'md' }), html));
  if (me.config.criteria.length) {
    const rows = me.config.criteria.map((c) => el('div', { class: 'crit' }, el('span', { class: 'crit-name', title: c.description }, c.label), ratingRow(c, side)));
    card.append(el('div', { class: 'criteria' }, rows));
  }
  return card;
}

function renderItem() {
  const a = current.assignment;
  const prompt = el('section', { class: 'card prompt', id: 'prompt' }, el('div', { class: 'side-label' }, 'Prompt'), setSafeHtml(el('div', { class: 'md' }), a.promptHtml));
  const pair = el('div', { class: 'pair' }, responseCard('A', a.aHtml), responseCard('B', a.bHtml));

  const choices = el('div', { class: 'choices', role: 'radiogroup', 'aria-label': 'Your judgement' });
  me.config.labels.forEach((label, i) => {
    const choice = LABEL_TO_CHOICE[label];
    const b = el('button', { type: 'button', class: `choice choice-${choice}`, 'data-choice': choice, 'aria-pressed': 'false' }, el('kbd', {}, String(i + 1)), ' ', CHOICE_TEXT[choice]);
    b.addEventListener('click', () => choose(choice));
    choices.append(b);
  });
  const parts = [choices];
  if (me.config.rationale !== 'off') {
    const ta = el('textarea', {
      id: 'rationale',
      rows: '2',
      maxlength: '4000',
      placeholder: me.config.rationale === 'required' ? 'Why? (required)' : 'Why? (optional)',
    });
    ta.addEventListener('input', () => {
      current.rationale = ta.value;
      updateSubmit();
    });
    parts.push(ta);
  }
  const submit = el('button', { type: 'button', class: 'primary', id: 'submit', disabled: true }, 'Submit ', el('kbd', {}, '↵'));
  submit.addEventListener('click', () => void submitVote());
  parts.push(el('div', { class: 'submit-row' }, el('span', { class: 'status', id: 'status', 'aria-live': 'polite' }), submit));

  const guide = el('details', { class: 'guidelines' }, el('summary', {}, 'Guidelines'), setSafeHtml(el('div', { class: 'md' }), me.guidelinesHtml));
  show(el('div', { class: 'item', 'data-assignment': String(a.id) }, guide, prompt, pair, el('section', { class: 'card decide', id: 'decide' }, parts)));
}

function choose(choice) {
  if (!current || submitting) return;
  current.choice = choice;
  for (const b of document.querySelectorAll('.choice')) b.setAttribute('aria-pressed', String(b.dataset.choice === choice));
  updateSubmit();
}

function missing() {
  if (!current.choice) return 'choose 1–4';
  for (const c of me.config.criteria) {
    const r = current.ratings[c.id];
    if (!r || !r.A || !r.B) return `rate “${c.label}” for A and B`;
  }
  if (me.config.rationale === 'required' && !current.rationale.trim()) return 'add a reason';
  return null;
}

function updateSubmit() {
  const m = missing();
  document.getElementById('submit').disabled = m !== null || submitting;
  document.getElementById('status').textContent = m ? `To submit: ${m}` : '';
}

async function submitVote() {
  if (!current || submitting || missing()) return;
  submitting = true;
  updateSubmit();
  const status = document.getElementById('status');
  status.textContent = 'Saving…';
  const body = { assignmentId: current.assignment.id, choice: current.choice, ratings: current.ratings, rationale: current.rationale, idempotencyKey: current.key };
  // Retry network failures with the same idempotency key: the server records the vote once.
  for (let attempt = 0; ; attempt++) {
    try {
      const r = await api('/api/vote', { method: 'POST', body, csrf: me.csrf });
      setProgress(r.progress);
      submitting = false;
      await loadNext();
      return;
    } catch (e) {
      const retriable = !(e instanceof ApiError) || e.status >= 500;
      if (!retriable || attempt >= 5) {
        submitting = false;
        updateSubmit();
        status.textContent = `Not saved: ${e.message}`;
        status.classList.add('error');
        return;
      }
      status.textContent = 'Connection problem, retrying…';
      await new Promise((ok) => setTimeout(ok, 500 * 2 ** attempt));
    }
  }
}

document.addEventListener('keydown', (ev) => {
  if (!current || ev.altKey || ev.metaKey) return;
  const inText = ev.target instanceof HTMLTextAreaElement || ev.target instanceof HTMLInputElement;
  if (ev.key === 'Enter' && (!inText || ev.ctrlKey)) {
    ev.preventDefault();
    void submitVote();
    return;
  }
  if (inText || ev.ctrlKey) return;
  const n = Number(ev.key);
  if (Number.isInteger(n) && n >= 1 && n <= me.config.labels.length) {
    ev.preventDefault();
    choose(LABEL_TO_CHOICE[me.config.labels[n - 1]]);
  }
});

void start();
