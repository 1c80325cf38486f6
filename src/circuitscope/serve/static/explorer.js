/* The explorer page: the server's facts, the prompt bar shared by the views, the tabs (arrow keys move
 * between them) and the wiring of each view's controls. Each view lives in its own module. */

import { act, getJSON } from './api.js';
import * as attention from './attention.js';
import { byId, clear, el } from './dom.js';
import * as features from './features.js';
import * as graphs from './graphs.js';
import * as intervene from './intervene.js';
import * as jobs from './jobs.js';
import * as prompt from './prompt.js';
import * as sessions from './sessions.js';
import { on, state } from './state.js';
import * as steering from './steering.js';

/** What each tab does when it is shown with a prompt it has not yet run (null: nothing to run). */
const RUNS = {
  prompt: (b) => prompt.runPrompt(b),
  attention: (b) => attention.runAttention(b),
  intervene: (b) => intervene.update(b),
  features: (b) => (state.info.sources.length ? features.runFeatures(b) : null),
  graphs: null,
  steering: null,
  jobs: () => jobs.refresh(),
};
const ranWith = {};
let current = 'prompt';

function tabs() {
  return [...document.querySelectorAll('[role="tab"]')];
}

function key() {
  return JSON.stringify([state.prompt, state.answer, state.wrong]);
}

async function runCurrent(button) {
  const run = RUNS[current];
  if (!run || (!state.prompt && current !== 'jobs')) return;
  ranWith[current] = key();
  await run(button);
}

function show(name) {
  current = name;
  for (const t of tabs()) {
    const selected = t.dataset.tab === name;
    t.setAttribute('aria-selected', String(selected));
    t.tabIndex = selected ? 0 : -1;
    byId('panel-' + t.dataset.tab).hidden = !selected;
  }
  if (ranWith[name] !== key() || name === 'jobs') runCurrent(null);
}

function readBar() {
  state.prompt = byId('prompt').value;
  state.answer = byId('answer').value;
  state.wrong = byId('wrong').value;
}

function writeBar() {
  byId('prompt').value = state.prompt;
  byId('answer').value = state.answer;
  byId('wrong').value = state.wrong;
  clear(byId('recent'), state.prompts.map((p) => el('option', { value: p })));
}

function wire() {
  byId('prompt-bar').addEventListener('submit', (ev) => {
    ev.preventDefault();
    readBar();
    if (!RUNS[current]) show('prompt');
    else runCurrent(byId('run'));
  });
  byId('tabs').addEventListener('click', (ev) => {
    const t = ev.target.closest('[role="tab"]');
    if (t) { readBar(); show(t.dataset.tab); }
  });
  byId('tabs').addEventListener('keydown', (ev) => {
    const all = tabs();
    const i = all.findIndex((t) => t.dataset.tab === current);
    const step = { ArrowRight: 1, ArrowLeft: -1 }[ev.key];
    if (!step) return;
    const next = all[(i + step + all.length) % all.length];
    next.focus();
    readBar();
    show(next.dataset.tab);
  });
  const clicks = {
    'ft-run': (b) => features.runFeatures(b),
    'ft-open': (b) => features.openFeature(Number(byId('ft-index').value), b),
    'gr-open': (b) => graphs.openSelected(b),
    'gr-compute': (b) => { readBar(); return jobs.startGraph(b).then((s) => s && byId('tab-jobs').click()); },
    'st-build': (b) => steering.buildVector(b),
    'st-generate': (b) => { readBar(); return steering.generate(b); },
    'jb-start': (b) => { readBar(); return jobs.startGraph(b); },
    'jb-stats': (b) => jobs.startStats(b, byId('ft-source').value),
    'sw-start': (b) => { readBar(); return jobs.startSweep(b).then((s) => s && byId('tab-jobs').click()); },
    'ss-save': (b) => { readBar(); return sessions.save(b); },
    'ss-open': (b) => sessions.open(b),
  };
  for (const [id, fn] of Object.entries(clicks)) byId(id).addEventListener('click', (ev) => fn(ev.currentTarget));
  byId('ft-index').addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter') features.openFeature(Number(byId('ft-index').value), byId('ft-open'));
  });
  byId('iv-kind').addEventListener('change', () => {
    byId('iv-source-row').hidden = byId('iv-kind').value !== 'patch';
  });
  on('prompt-view', () => { ranWith.prompt = key(); writeBar(); });
  on('graphs', () => graphs.drawOpened());
  on('session', () => {
    writeBar();
    graphs.drawOpened();
    intervene.draw();
    for (const k of Object.keys(ranWith)) delete ranWith[k];
    show(current);
  });
}

async function start() {
  wire();
  const info = await act(null, () => getJSON('/api/info'));
  if (!info) return;
  state.info = info;
  byId('model').textContent = `${info.model} \u00b7 ${info.n_layers} layers \u00d7 ${info.n_heads} heads \u00b7 d_model ${info.d_model}`;
  byId('model').title = `weights fingerprint ${info.fingerprint}`;
  features.setup();
  graphs.setup();
  steering.setup();
  intervene.draw();
  await sessions.list();
  document.documentElement.dataset.ready = 'true';
}

start();
