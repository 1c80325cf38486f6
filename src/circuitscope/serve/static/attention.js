/* The attention view: every head's pattern on the prompt as a small image (layer rows, head columns), its
 * detector scores (previous-token, induction, duplicate-token) under it; click or Enter opens the large
 * pattern with the tokens on both axes. */

import { act, postJSON } from './api.js';
import { byId, clear, el, fmt, inkFor, legend, sequential, tokenSpan } from './dom.js';
import { heatmap } from './heatmap.js';
import { state } from './state.js';

export const attentionView = { last: null };

const SCORES = [
  ['previous_token', 'prev'],
  ['induction', 'ind'],
  ['duplicate_token', 'dup'],
];

export async function runAttention(button) {
  const view = await act(button, () => postJSON('/api/attention', { prompt: state.prompt }));
  if (!view) return;
  attentionView.last = view;
  render(view);
}

function thumbnail(pattern, size) {
  const n = pattern.length;
  const canvas = el('canvas', { width: n, height: n, style: `width:${size}px;height:${size}px`, 'aria-hidden': 'true' });
  const ctx = canvas.getContext('2d');
  const image = ctx.createImageData(n, n);
  pattern.forEach((row, q) =>
    row.forEach((v, k) => {
      const rgb = sequential(v).match(/\d+/g).map(Number);
      image.data.set([...rgb, 255], 4 * (q * n + k));
    }),
  );
  ctx.putImageData(image, 0, 0);
  return canvas;
}

function scoreLine(view, l, h) {
  return el('span', { class: 'scores' }, SCORES.map(([key, short]) => el('span', { title: `${key.replace('_', '-')} score ${fmt(view.scores[key][l][h])}` }, `${short} ${view.scores[key][l][h].toFixed(2)}`)));
}

export function openHead(l, h) {
  const view = attentionView.last;
  const pattern = view.patterns[l][h];
  const labels = () => view.tokens.map((t) => tokenSpan(t));  // a node each: the rows' and the columns' own
  clear(
    byId('attention-large'),
    el('h2', {}, `L${l}H${h}`, ' ', scoreLine(view, l, h)),
    heatmap({
      id: 'pattern',
      rows: labels(),
      cols: labels(),
      value: (q, k) => pattern[q][k],
      color: (q, k) => sequential(pattern[q][k]),
      ink: (q, k) => inkFor(pattern[q][k]),
      text: () => null,
      tip: (q, k) => `query ${JSON.stringify(view.tokens[q])} \u2192 key ${JSON.stringify(view.tokens[k])}: ${fmt(pattern[q][k])}`,
      xTitle: 'key (attended to)',
      yTitle: 'query',
      cellClass: 'cell sq',
      vertical: true,
    }),
  );
  byId('attention-large').dataset.head = `${l}.${h}`;
}

export function render(view) {
  const grid = el('div', { class: 'heads', role: 'grid', 'aria-label': 'Attention patterns: layers in rows, heads in columns' });
  grid.style.gridTemplateColumns = `3em repeat(${view.n_heads}, minmax(70px, 1fr))`;
  grid.append(el('span'), ...[...Array(view.n_heads).keys()].map((h) => el('span', { class: 'axis' }, `H${h}`)));
  for (let l = 0; l < view.n_layers; l++) {
    grid.append(el('span', { class: 'axis' }, `L${l}`));
    for (let h = 0; h < view.n_heads; h++) {
      grid.append(
        el(
          'button',
          { type: 'button', class: 'head', dataset: { layer: l, head: h }, 'aria-label': `Open L${l}H${h}`, onclick: () => openHead(l, h) },
          thumbnail(view.patterns[l][h], 56),
          scoreLine(view, l, h),
        ),
      );
    }
  }
  clear(
    byId('attention-out'),
    el('section', { class: 'card' }, el('h2', {}, 'Heads'), legend('sequential', '0', '1', 'attention weight (query rows, key columns)'), grid),
    el('section', { class: 'card', id: 'attention-large' }, el('p', { class: 'caption' }, 'Click a head for its large pattern.')),
  );
}
