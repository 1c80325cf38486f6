/* The features view: with an SAE or transcoders loaded, the top features of each token of the prompt, and
 * a feature page (searchable by index): the histogram of its activations, its top contexts, its top and
 * bottom logit effects, and a slider that generates with the feature's decoder direction added. */

import { act, getJSON, postJSON, query } from './api.js';
import { byId, clear, el, fmt, inkFor, sequential, signed, tokenSpan } from './dom.js';
import { generateInto } from './generate.js';
import { state } from './state.js';

export function setup() {
  const select = byId('ft-source');
  const sources = state.info.sources;
  clear(select, sources.map((s) => el('option', { value: s.name }, `${s.name} (${s.kind}, ${s.hook}, ${s.d_sae} features)`)));
  const none = !sources.length;
  for (const id of ['ft-run', 'ft-open', 'ft-index', 'ft-source']) byId(id).disabled = none;
  if (none) clear(byId('ft-out'), el('p', { class: 'caption' }, 'No SAE or transcoders loaded: start the server with --sae DIR or --transcoders DIR.'));
}

function source() {
  return state.info.sources.find((s) => s.name === byId('ft-source').value);
}

export async function runFeatures(button) {
  const body = { prompt: state.prompt, source: source().name, top_k: 5 };
  const view = await act(button, () => postJSON('/api/features', body));
  if (!view) return;
  const max = Math.max(1e-9, ...view.top.flat().map((f) => f.activation));
  const rows = view.tokens.map((t, i) =>
    el(
      'tr',
      {},
      el('th', { scope: 'row' }, tokenSpan(t)),
      el(
        'td',
        { class: 'chips' },
        view.top[i].map((f) =>
          el(
            'button',
            {
              type: 'button',
              class: 'chip',
              style: `background:${sequential(f.activation / max)};color:${inkFor(f.activation / max)}`,
              dataset: { feature: f.feature },
              onclick: () => openFeature(f.feature),
            },
            `#${f.feature} `,
            el('small', {}, fmt(f.activation)),
          ),
        ),
      ),
    ),
  );
  clear(
    byId('ft-tokens'),
    el('h2', {}, `Top features per token (${view.source})`),
    el('table', { class: 'token-features' }, el('thead', {}, el('tr', {}, el('th', {}, 'token'), el('th', {}, 'features (click for the feature page)'))), el('tbody', {}, rows)),
  );
}

function histogram(h) {
  const W = 360;
  const H = 120;
  const n = h.counts.length;
  const top = Math.max(1, ...h.counts);
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('viewBox', `0 0 ${W} ${H + 30}`);
  svg.setAttribute('class', 'histogram');
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', `Histogram of the non-zero activations: ${h.counts.join(', ')}`);
  const parts = h.counts.map((c, i) => {
    const x = 30 + (i * (W - 40)) / Math.max(1, n);
    const y = 4 + H - (c / top) * H;
    return `<rect x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${((W - 40) / Math.max(1, n) - 1).toFixed(1)}" height="${(4 + H - y).toFixed(1)}" fill="#3558d4"><title>${fmt(h.edges[i])} to ${fmt(h.edges[i + 1])}: ${c}</title></rect>`;
  });
  const lo = h.edges.length ? fmt(h.edges[0]) : '';
  const hi = h.edges.length ? fmt(h.edges[h.edges.length - 1]) : '';
  svg.innerHTML =
    parts.join('') +
    `<text x="30" y="${H + 20}" class="ax">${lo}</text><text x="${W - 10}" y="${H + 20}" text-anchor="end" class="ax">${hi}</text>` +
    `<text x="${W / 2}" y="${H + 28}" text-anchor="middle" class="ax">activation</text>` +
    `<text x="2" y="12" class="ax">${top}</text><text x="2" y="${H + 4}" class="ax">0</text>`;
  return svg;
}

function context(c) {
  return el(
    'div',
    { class: 'context' },
    el('span', { class: 'ctx-max' }, fmt(c.max)),
    c.tokens.map((t, i) => {
      const a = c.max > 0 ? c.activations[i] / c.max : 0;
      return tokenSpan(t, { style: `background:${sequential(a)};color:${inkFor(a)}`, title: `${JSON.stringify(t)}: ${fmt(c.activations[i])}` });
    }),
  );
}

function logitTable(items, caption) {
  return el(
    'table',
    { class: 'logits' },
    el('caption', {}, caption),
    el('tbody', {}, items.map((x) => el('tr', {}, el('td', {}, tokenSpan(x.token)), el('td', { class: 'num' }, signed(x.value))))),
  );
}

export async function openFeature(index, button) {
  const name = source().name;
  const page = await act(button, () => getJSON('/api/feature?' + query({ source: name, index })));
  if (!page) return;
  byId('ft-index').value = String(index);
  const slider = el('input', { type: 'range', id: 'ft-coef', min: '-20', max: '20', step: '0.5', value: '4', 'aria-label': 'Steering coefficient' });
  const shown = el('output', { for: 'ft-coef' }, '4');
  slider.addEventListener('input', () => { shown.textContent = slider.value; });
  const gen = el('div', { id: 'ft-gen' });
  const go = el('button', { type: 'button', id: 'ft-steer' }, 'Generate with the feature');
  go.addEventListener('click', () =>
    generateInto(gen, { prompt: state.prompt, source: name, index, coefficient: Number(slider.value), max_new_tokens: Number(byId('ft-tokens-n').value) }, go),
  );
  clear(
    byId('ft-page'),
    el('h2', { id: 'ft-title', dataset: { index: page.index } }, `${page.source} feature #${page.index}`, el('span', { class: 'caption' }, ` of ${page.d_sae}` + (page.frequency === null ? '' : ` \u00b7 fires on ${(100 * page.frequency).toFixed(2)}% of tokens`))),
    el(
      'div',
      { class: 'feature-grid' },
      el('div', {}, el('h3', {}, 'Activations over the contexts'), histogram(page.histogram)),
      el('div', {}, el('h3', {}, 'Top logit effects (decoder direction through the unembedding)'), el('div', { class: 'side-by-side' }, logitTable(page.top_logits, 'raises'), logitTable(page.bottom_logits, 'lowers'))),
    ),
    el('h3', {}, 'Top activating contexts'),
    el('div', { id: 'ft-contexts' }, page.contexts.length ? page.contexts.map(context) : el('p', { class: 'caption' }, 'No contexts: start the server with --data DIR.')),
    el(
      'div',
      { class: 'row' },
      el('label', { for: 'ft-coef' }, 'Steer: coefficient '),
      slider,
      shown,
      el('label', { for: 'ft-tokens-n' }, ' new tokens '),
      el('input', { type: 'number', id: 'ft-tokens-n', min: '1', max: String(state.info.limits.max_new_tokens), value: '12' }),
      go,
    ),
    gen,
  );
}
