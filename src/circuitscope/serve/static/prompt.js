/* The prompt view: the tokens, the next-token predictions, the logit lens (layer x position, the lens's top
 * token in each cell coloured by its probability, its top 5 on hover) and, for an answer pair, the direct
 * logit attribution of the logit difference by layer and by head (diverging: blue raises the answer). */

import { act, postJSON } from './api.js';
import { byId, clear, diverging, el, fmt, inkFor, legend, maxAbs, pct, sequential, signed, tok, tokenSpan } from './dom.js';
import { heatmap } from './heatmap.js';
import { predictionsTable } from './predictions.js';
import { changed, promptBody, remember, state } from './state.js';

export const promptView = { last: null };

export async function runPrompt(button) {
  const view = await act(button, () => postJSON('/api/prompt', promptBody()));
  if (!view) return;
  promptView.last = view;
  remember(state.prompt);
  render(view);
  changed('prompt-view');
}

function short(t, n) {
  const s = tok(t);
  return s.length > n ? s.slice(0, n - 1) + '\u2026' : s;
}

function lens(view) {
  const { labels, top, top_k: topK } = view.logit_lens;
  return heatmap({
    id: 'lens',
    rows: labels,
    cols: view.tokens.map((t) => tokenSpan(t)),
    value: (r, c) => top[r][c].prob,
    color: (r, c) => sequential(top[r][c].prob),
    ink: (r, c) => inkFor(top[r][c].prob),
    text: (r, c) => short(top[r][c].token, 7),
    tip: (r, c) =>
      el(
        'div',
        {},
        el('div', { class: 'tip-head' }, `${labels[r]} at ${JSON.stringify(view.tokens[c])}`),
        el('ol', {}, topK[r][c].map((x) => el('li', {}, tokenSpan(x.token), ' ', pct(x.prob)))),
      ),
    xTitle: 'position (input token)',
    yTitle: 'layer',
    caption: 'Logit lens: the residual stream after each block read through the unembedding; each cell shows its top token, coloured by its probability. Hover or focus a cell (arrow keys move) for its top 5.',
  });
}

function dla(d, nHeads) {
  const cols = [...Array(nHeads).keys()].map((h) => `H${h}`).concat(['MLP', '\u03a3']);
  const value = (r, c) => (c < nHeads ? d.heads[r][c] : c === nHeads ? d.mlps[r] : d.layers[r]);
  const max = maxAbs([d.heads, d.mlps]);
  return heatmap({
    id: 'dla',
    rows: d.layers.map((_, l) => `L${l}`),
    cols,
    value,
    color: (r, c) => diverging(value(r, c), max),
    ink: (r, c) => inkFor(max > 0 ? value(r, c) / max : 0),
    text: (r, c) => fmt(value(r, c)),
    tip: (r, c) => `${cols[c] === '\u03a3' ? `L${r} in all` : `L${r} ${cols[c]}`}: ${signed(value(r, c))} to the logit difference`,
    xTitle: 'head, MLP, and the layer\u2019s sum',
    yTitle: 'layer',
    cellClass: 'cell num',
  });
}

export function render(view) {
  const out = byId('prompt-out');
  const parts = [
    el('section', { class: 'card' }, el('h2', {}, 'Tokens'), el('div', { class: 'tokens' }, view.tokens.map((t, i) => tokenSpan(t, { 'data-pos': i })))),
    el('section', { class: 'card' }, el('h2', {}, 'Next token'), predictionsTable(view.predictions, 'Top predictions at the last position', 'predictions')),
    el('section', { class: 'card wide' }, el('h2', {}, 'Logit lens'), legend('sequential', '0', '1', 'probability of the top token'), lens(view)),
  ];
  if (view.dla) {
    const d = view.dla;
    parts.push(
      el(
        'section',
        { class: 'card wide' },
        el('h2', {}, 'Direct logit attribution'),
        el(
          'p',
          { class: 'caption' },
          'logit(', tokenSpan(d.answer), ') \u2212 logit(', tokenSpan(d.wrong), ') = ',
          el('strong', { id: 'dla-total' }, fmt(d.logit_diff)),
          ': each component\u2019s direct share of it (its output through the final norm and the unembedding)',
          d.embed === undefined ? '.' : `; the embeddings add ${signed(d.embed)}` + (d.bias === undefined ? '.' : `, the biases ${signed(d.bias)}.`),
        ),
        legend('diverging', `\u2212${fmt(maxAbs([d.heads, d.mlps]))}`, `+${fmt(maxAbs([d.heads, d.mlps]))}`, 'favours the wrong answer \u2190 \u2192 favours the answer'),
        dla(d, state.info.n_heads),
      ),
    );
  } else {
    parts.push(el('p', { class: 'caption' }, 'Give an answer and a wrong answer (one token each) in the prompt bar for the direct logit attribution.'));
  }
  clear(out, parts);
}
